package devtemporal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	"go.temporal.io/server/temporal"
)

// readyTimeout bounds the wait for the frontend and the namespace set-up
// when the caller's context has no earlier deadline.
const readyTimeout = 2 * time.Minute

// Server is a running embedded Temporal server (and Web UI, if configured).
type Server struct {
	frontendAddr string
	uiURL        string
	namespace    string

	server  temporal.Server
	ui      *uiserver.Server
	logMin  *slog.LevelVar
	unlock  func() error // releases the state-dir lock
	stopped sync.Once
	stopErr error
}

// Start starts the server described by cfg and returns once the frontend
// answers gRPC calls, cfg.Namespace exists with cfg.Retention, every
// attribute of cfg.SearchAttributes is registered in it, and the UI (if
// any) accepts connections.
//
// A state dir that already holds a database is reused as is: its
// workflows, timers and task queues carry on (workers reconnect to the new
// server). Retention and search attributes are applied through the API at
// every start, so a state dir made by an older build gains new attributes.
//
// Errors: invalid cfg; a frontend or UI address that is in use (checked
// before anything starts, the message names the address); a state dir in
// use by another server (flock on <StateDir>/temporal.lock); database or
// server start failures; ctx ending first. On error nothing is left
// running except what the SQLite plugin keeps open (see Stop) and, if the
// Temporal server itself failed half-way through its start, whatever it had
// started by then.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	r, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	p, uiPort, err := choosePorts(r)
	if err != nil {
		return nil, err
	}
	unlock, err := prepareStateDir(r)
	if err != nil {
		return nil, err
	}
	sqlCfg, err := sqlConfig(r)
	if err == nil {
		err = createNamespace(sqlCfg, r)
	}
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("devtemporal: %w", ctx.Err())
	}
	if err != nil {
		return nil, errors.Join(err, unlock())
	}

	logMin := new(slog.LevelVar)
	logMin.Set(slog.LevelWarn)
	quiet := newQuietLogger(r.Logger, logMin)

	s := &Server{
		frontendAddr: hostPort(r.frontendIP, p.frontend),
		namespace:    r.Namespace,
		logMin:       logMin,
		unlock:       unlock,
	}
	s.server, err = startServer(serverOptions(r, p, sqlCfg, serverLogger{l: quiet}))
	if err != nil {
		return nil, errors.Join(err, unlock())
	}
	ok := false
	defer func() {
		if !ok {
			_ = s.Stop()
		}
	}()

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := s.setUp(ctx, r, quiet); err != nil {
		return nil, err
	}
	if r.uiIP != "" {
		uiAddr := hostPort(r.uiIP, uiPort)
		if s.ui, err = startUI(ctx, r, uiAddr, s.frontendAddr, uiPort); err != nil {
			return nil, err
		}
		s.uiURL = "http://" + uiAddr
	}
	ok = true
	return s, nil
}

// setUp waits for the frontend, then applies retention and search
// attributes. When either changed it waits until every service's namespace
// cache has picked the change up, so that a workflow started right after
// Start can already use a new attribute.
func (s *Server) setUp(ctx context.Context, r resolved, logger *slog.Logger) error {
	c, err := dial(ctx, s.frontendAddr, r.Namespace, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	retentionChanged, err := ensureNamespace(ctx, c.WorkflowService(), r.Namespace, r.Retention)
	if err != nil {
		return err
	}
	added, err := ensureSearchAttributes(ctx, c.OperatorService(), r.Namespace, r.SearchAttributes)
	if err != nil {
		return err
	}
	if !retentionChanged && len(added) == 0 {
		return nil
	}
	select {
	case <-time.After(2*nsCacheRefresh + 250*time.Millisecond):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("devtemporal: waiting for namespace caches: %w", ctx.Err())
	}
}

// FrontendAddr is the frontend's gRPC address, "IP:port", for
// client.Options.HostPort.
func (s *Server) FrontendAddr() string { return s.frontendAddr }

// UIURL is the Web UI's base URL ("http://127.0.0.1:8233"), or "" without UI.
func (s *Server) UIURL() string { return s.uiURL }

// Namespace is the namespace Start set up.
func (s *Server) Namespace() string { return s.namespace }

// Stop stops the UI and the server; it is safe to call more than once and
// returns the first call's result. Workflows stay in the database: a later
// Start on the same state dir resumes them. The server's log output is
// silenced from here on (it logs canceled calls as errors while stopping).
//
// The SQLite plugin keeps its database handles open for the life of the
// process, so an in-memory database's memory is not returned and a state
// dir's file stays open (a later Start in the same process reuses it).
func (s *Server) Stop() error {
	s.stopped.Do(func() {
		// Shutdown routinely logs canceled polls and persistence calls
		// as errors; a real failure is returned instead.
		s.logMin.Set(slog.LevelError + 4)
		if s.ui != nil {
			s.ui.Stop()
		}
		s.stopErr = errors.Join(stopServer(s.server), s.unlock())
	})
	return s.stopErr
}

// startServer builds and starts the Temporal services. Fatal log calls
// made while starting (they panic with fatalError) become errors.
func startServer(opts []temporal.ServerOption) (srv temporal.Server, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicError("starting", v)
		}
	}()
	srv, err = temporal.NewServer(opts...)
	if err != nil {
		return nil, fmt.Errorf("devtemporal: creating server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("devtemporal: starting server: %w", err)
	}
	return srv, nil
}

func stopServer(srv temporal.Server) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicError("stopping", v)
		}
	}()
	if err := srv.Stop(); err != nil {
		return fmt.Errorf("devtemporal: stopping server: %w", err)
	}
	return nil
}

func panicError(when string, v any) error {
	var fe fatalError
	if e, ok := v.(error); ok && errors.As(e, &fe) {
		return fmt.Errorf("devtemporal: %s server: %w", when, fe)
	}
	return fmt.Errorf("devtemporal: %s server: panic: %v", when, v)
}

// choosePorts checks the requested frontend and UI ports and picks free
// ports for the rest (and for any requested as 0). The returned UI port is
// 0 when there is no UI.
func choosePorts(r resolved) (ports, int, error) {
	taken := map[int]bool{}
	pick := func(ip string) (int, error) {
		for range 20 {
			port, err := freePort(ip)
			if err != nil {
				return 0, err
			}
			if !taken[port] {
				taken[port] = true
				return port, nil
			}
		}
		return 0, fmt.Errorf("devtemporal: no distinct free port on %s", ip)
	}
	want := func(what, ip string, port int) (int, error) {
		if port == 0 {
			return pick(ip)
		}
		if taken[port] {
			return 0, fmt.Errorf("devtemporal: %s port %d is used twice", what, port)
		}
		if err := checkPortFree(what, ip, port); err != nil {
			return 0, err
		}
		taken[port] = true
		return port, nil
	}

	var p ports
	var err error
	// Requested ports first, so that picked ones cannot collide with them.
	if r.frontendPort != 0 {
		if p.frontend, err = want("frontend", r.frontendIP, r.frontendPort); err != nil {
			return ports{}, 0, err
		}
	}
	uiPort := 0
	if r.uiIP != "" && r.uiPort != 0 {
		if uiPort, err = want("UI", r.uiIP, r.uiPort); err != nil {
			return ports{}, 0, err
		}
	}
	if p.frontend == 0 {
		if p.frontend, err = pick(r.frontendIP); err != nil {
			return ports{}, 0, err
		}
	}
	if r.uiIP != "" && uiPort == 0 {
		if uiPort, err = pick(r.uiIP); err != nil {
			return ports{}, 0, err
		}
	}
	for _, dst := range []*int{&p.frontendHTTP, &p.history, &p.matching, &p.worker} {
		if *dst, err = pick(r.frontendIP); err != nil {
			return ports{}, 0, err
		}
	}
	return p, uiPort, nil
}
