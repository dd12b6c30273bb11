// Package devtemporal runs an embedded Temporal server (frontend, history,
// matching and worker services in one process, SQLite persistence) and,
// optionally, the Temporal Web UI. It backs `rackflow dev` and the
// integration tests; production points at a real Temporal cluster instead.
//
// The package lives in dev/temporal but is named devtemporal so that it does
// not clash with go.temporal.io/sdk/temporal or go.temporal.io/server/temporal
// in importing files.
package devtemporal

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
)

// Defaults applied by Start and suggested for command-line flags.
const (
	// DefaultFrontendAddr is the gRPC address of the frontend when
	// Config.FrontendAddr is empty.
	DefaultFrontendAddr = "127.0.0.1:7233"
	// DefaultUIAddr is the address `rackflow dev` should give the Web UI.
	// Start does not fill it in: an empty Config.UIAddr means "no UI".
	DefaultUIAddr = "127.0.0.1:8233"
	// DefaultNamespace is used when Config.Namespace is empty.
	DefaultNamespace = "default"
	// DefaultRetention is used when Config.Retention is zero.
	DefaultRetention = 30 * 24 * time.Hour
	// MinRetention is the smallest retention Start accepts (the server's
	// own lower bound is one day).
	MinRetention = 24 * time.Hour
	// DBFileName is the SQLite file created inside Config.StateDir.
	DBFileName = "temporal.db"
)

// Config describes one embedded server. The zero value is valid: an
// in-memory server on DefaultFrontendAddr with no UI.
type Config struct {
	// StateDir holds the SQLite database (<StateDir>/temporal.db, WAL
	// journal, plus temporal.db-wal and -shm beside it). It is created if
	// missing. "" keeps everything in memory (tests): nothing survives Stop.
	StateDir string
	// FrontendAddr is the frontend's gRPC listen address, "IP:port".
	// "" means DefaultFrontendAddr; "localhost" is read as 127.0.0.1; port 0
	// picks a free port (read it back with Server.FrontendAddr).
	FrontendAddr string
	// UIAddr is the Web UI's HTTP listen address, "IP:port"; "" runs no UI.
	// Port 0 picks a free port (read it back with Server.UIURL).
	UIAddr string
	// Namespace is created if missing; "" means DefaultNamespace.
	Namespace string
	// Retention of closed workflows in Namespace, set at every start;
	// 0 means DefaultRetention (30 days). Must be at least MinRetention.
	Retention time.Duration
	// SearchAttributes are custom search attributes registered in Namespace
	// at every start; ones that already exist with the same type are kept.
	// SQLite visibility allows at most 10 Keyword and 3 each of Int, Bool,
	// Double, Datetime, KeywordList and Text per namespace.
	SearchAttributes map[string]enumspb.IndexedValueType
	// Logger receives the server's own log records at Warn and above.
	// nil logs to stderr (text, Warn and above); nothing goes to stdout.
	Logger *slog.Logger
}

// resolved is Config after defaults, with addresses split and validated.
type resolved struct {
	Config
	frontendIP   string
	frontendPort int
	uiIP         string
	uiPort       int // 0 with uiIP == "" means no UI
}

// resolve applies the defaults and validates cfg. It does not touch the
// network: ports that are 0 stay 0 here.
func resolve(cfg Config) (resolved, error) {
	r := resolved{Config: cfg}
	if r.FrontendAddr == "" {
		r.FrontendAddr = DefaultFrontendAddr
	}
	var err error
	if r.frontendIP, r.frontendPort, err = splitIPPort(r.FrontendAddr); err != nil {
		return resolved{}, fmt.Errorf("devtemporal: frontend address: %w", err)
	}
	if r.UIAddr != "" {
		if r.uiIP, r.uiPort, err = splitIPPort(r.UIAddr); err != nil {
			return resolved{}, fmt.Errorf("devtemporal: UI address: %w", err)
		}
	}
	if r.Namespace == "" {
		r.Namespace = DefaultNamespace
	}
	switch {
	case r.Retention == 0:
		r.Retention = DefaultRetention
	case r.Retention < MinRetention:
		return resolved{}, fmt.Errorf("devtemporal: retention %s is below the minimum %s", r.Retention, MinRetention)
	}
	for name, typ := range r.SearchAttributes {
		if name == "" {
			return resolved{}, errors.New("devtemporal: search attribute with an empty name")
		}
		if _, ok := enumspb.IndexedValueType_name[int32(typ)]; !ok || typ == enumspb.INDEXED_VALUE_TYPE_UNSPECIFIED {
			return resolved{}, fmt.Errorf("devtemporal: search attribute %q has no valid type (%d)", name, typ)
		}
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return r, nil
}

// splitIPPort parses "IP:port". The Temporal server needs an IP literal, so
// "localhost" becomes 127.0.0.1 and any other host name is rejected.
func splitIPPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", addr, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", 0, fmt.Errorf("%q: host must be an IP address, not a name", addr)
	}
	if ip.IsUnspecified() {
		return "", 0, fmt.Errorf("%q: bind a specific IP (clients and the UI dial this address)", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: invalid port", addr)
	}
	return ip.String(), port, nil
}

// hostPort joins ip and port, bracketing IPv6 literals.
func hostPort(ip string, port int) string {
	return net.JoinHostPort(ip, strconv.Itoa(port))
}
