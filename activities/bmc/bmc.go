// Package bmc drives a node's baseboard management controller through
// bmclib v2: power state, power on/off/cycle/reset and the next boot device.
//
// One Config selects exactly one bmclib provider: Driver "redfish" registers
// only bmclib's gofish provider (HTTPS, session auth), Driver "ipmi" only its
// ipmitool provider (the ipmitool binary on PATH, lanplus, cipher suite 3).
// No other provider is ever tried, so a BMC never sees probes of protocols it
// was not configured for.
//
// Errors are wrapped with %w and classified: ErrAuth (the BMC refused the
// credentials), ErrUnreachable (no answer, connection refused, timeout),
// ErrDriver (unknown driver, or its tool missing), ErrInvalid (bad address or
// boot device). Passwords are never logged nor put in error text.
package bmc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	bmclib "github.com/bmc-toolbox/bmclib/v2"
	"github.com/bmc-toolbox/bmclib/v2/providers/ipmitool"
	"github.com/bmc-toolbox/bmclib/v2/providers/redfish"
	"github.com/go-logr/logr"
	"github.com/jacobweinstock/registrar"
)

// Drivers accepted in Config.Driver.
const (
	DriverRedfish = "redfish" // DMTF Redfish over HTTPS (bmclib provider "gofish"), default port 443
	DriverIPMI    = "ipmi"    // IPMI v2 lanplus through ipmitool (bmclib provider "ipmitool"), default port 623
)

// IPMICipherSuite is the lanplus cipher suite passed to ipmitool (-C 3,
// HMAC-SHA1 / AES-CBC-128). Without an explicit suite ipmitool spends ~10 s
// negotiating, and bmclib retries a failed command with suite 17.
const IPMICipherSuite = "3"

var (
	// ErrAuth means the BMC answered and refused the credentials (Redfish
	// 401/403, ipmitool RAKP errors). Retrying cannot fix it.
	ErrAuth = errors.New("bmc: authentication failed")
	// ErrUnreachable means the BMC did not answer: connection refused,
	// network error, or the context/HTTP timeout expired.
	ErrUnreachable = errors.New("bmc: unreachable")
	// ErrDriver means Config.Driver is unknown or its tool is unavailable
	// (ipmitool not on PATH).
	ErrDriver = errors.New("bmc: driver unavailable")
	// ErrInvalid means an argument is malformed: Config.Address, or a boot
	// device other than "pxe" / "disk".
	ErrInvalid = errors.New("bmc: invalid argument")
)

// Config says how to reach one BMC.
type Config struct {
	Driver   string // DriverRedfish or DriverIPMI
	Address  string // "host" or "host:port" ("[v6]:port"); default port 443 (redfish) / 623 (ipmi)
	Username string
	Password string // never logged
}

// LogValue renders the Config for slog without the credentials.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("driver", c.Driver), slog.String("address", c.Address))
}

// Client is an open connection to one BMC. Its methods are safe for
// concurrent use; calls are serialised (one request at a time per BMC).
type Client struct {
	driver string
	addr   string // host:port actually used
	log    *slog.Logger

	mu  sync.Mutex
	bmc *bmclib.Client
	tr  *ctxTransport // redfish only: binds each HTTP request to the caller's ctx
}

// Open connects to the BMC described by cfg and authenticates: for redfish it
// reads the service root and creates a session; for ipmi it runs
// `chassis power status`. ctx bounds the whole call (and, for redfish, its
// remaining time becomes the per-request HTTP timeout of later calls).
// Errors wrap ErrDriver, ErrInvalid, ErrAuth or ErrUnreachable when they
// apply. log may be nil.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, port, err := splitAddress(cfg.Address, cfg.Driver)
	if err != nil {
		return nil, err
	}
	c := &Client{driver: cfg.Driver, addr: net.JoinHostPort(host, port), log: log.With("bmc", cfg.Address, "driver", cfg.Driver)}
	lr := logr.FromSlogHandler(c.log.Handler())
	reg := registrar.NewRegistry(registrar.WithLogger(lr))
	switch cfg.Driver {
	case DriverRedfish:
		c.tr = newCtxTransport()
		hc := &http.Client{Transport: c.tr, Timeout: defaultHTTPTimeout}
		conn := redfish.New(bracketV6(host), cfg.Username, cfg.Password, lr,
			redfish.WithHttpClient(hc), redfish.WithPort(port))
		reg.Register(redfish.ProviderName, redfish.ProviderProtocol, redfish.Features, nil, conn)
	case DriverIPMI:
		conn, err := ipmitool.New(bracketV6(host), cfg.Username, cfg.Password,
			ipmitool.WithLogger(lr), ipmitool.WithPort(port), ipmitool.WithCipherSuite(IPMICipherSuite))
		if err != nil {
			return nil, fmt.Errorf("%w: ipmi needs the ipmitool binary: %w", ErrDriver, err)
		}
		reg.Register(ipmitool.ProviderName, ipmitool.ProviderProtocol, ipmitool.Features, nil, conn)
	default:
		return nil, fmt.Errorf("%w: unknown driver %q (want %q or %q)", ErrDriver, cfg.Driver, DriverRedfish, DriverIPMI)
	}
	// With a pre-filled registry bmclib registers none of its other providers.
	c.bmc = bmclib.NewClient(host, cfg.Username, cfg.Password, bmclib.WithRegistry(reg), bmclib.WithLogger(lr))

	start := time.Now()
	if err := c.call(ctx, func(ctx context.Context) error { return c.bmc.Open(ctx) }); err != nil {
		if cfg.Driver == DriverIPMI && errors.Is(err, ErrUnreachable) && ctx.Err() == nil {
			err = diagnoseIPMISession(ctx, host, port, cfg, err)
		}
		c.log.Warn("bmc open failed", "err", err, "elapsed", time.Since(start))
		return nil, fmt.Errorf("bmc %s: open: %w", c.addr, err)
	}
	c.log.Debug("bmc open", "elapsed", time.Since(start))
	return c, nil
}

// Close ends the BMC session (redfish: DELETE of the session; ipmi:
// nothing). When ctx is already done the logout still gets up to 5 s.
func (c *Client) Close(ctx context.Context) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), closeGrace)
		defer cancel()
	}
	err := c.call(ctx, func(ctx context.Context) error { return c.bmc.Close(ctx) })
	if err != nil {
		return fmt.Errorf("bmc %s: close: %w", c.addr, err)
	}
	return nil
}

// closeGrace bounds the logout of Close called with a done context.
const closeGrace = 5 * time.Second

// defaultHTTPTimeout bounds one Redfish HTTP request when Open's ctx has no
// deadline (with a deadline, bmclib overwrites it with the time left).
const defaultHTTPTimeout = 30 * time.Second

// call runs fn with the client lock held and the transport bound to ctx, and
// classifies its error.
func (c *Client) call(ctx context.Context, fn func(context.Context) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tr != nil {
		c.tr.bind(ctx)
		defer c.tr.bind(nil)
	}
	if err := fn(ctx); err != nil {
		return classify(ctx, err)
	}
	return nil
}

// splitAddress returns host and port of a "host" or "host:port" address,
// filling the driver's default port.
func splitAddress(addr, driver string) (host, port string, err error) {
	if strings.TrimSpace(addr) == "" {
		return "", "", fmt.Errorf("%w: empty BMC address", ErrInvalid)
	}
	port = "443"
	if driver == DriverIPMI {
		port = "623"
	}
	h, p, err := net.SplitHostPort(addr)
	switch {
	case err == nil:
		host, port = h, p
	case strings.Count(addr, ":") > 1 || !strings.Contains(addr, ":"):
		host = strings.Trim(addr, "[]") // bare IPv6 or bare host
	default:
		return "", "", fmt.Errorf("%w: BMC address %q: %w", ErrInvalid, addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, "/ ") {
		return "", "", fmt.Errorf("%w: BMC address %q", ErrInvalid, addr)
	}
	return host, port, nil
}

// bracketV6 puts an IPv6 literal in brackets: both bmclib providers join
// host and port with a plain ":".
func bracketV6(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}
