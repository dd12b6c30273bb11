package devtemporal

import (
	"context"
	"fmt"
	"net"
	"time"
)

// checkPortFree reports whether ip:port can be bound right now, by binding
// and closing it. what names the listener in the error, e.g. "frontend".
func checkPortFree(what, ip string, port int) error {
	addr := hostPort(ip, port)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("devtemporal: %s address %s is not available (another Temporal server or `rackflow dev` running?): %w", what, addr, err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("devtemporal: %s address %s: closing probe listener: %w", what, addr, err)
	}
	return nil
}

// freePort asks the kernel for a free TCP port on ip. Another process can
// take the port before the server binds it; the window is a few seconds.
func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", hostPort(ip, 0))
	if err != nil {
		return 0, fmt.Errorf("devtemporal: picking a free port on %s: %w", ip, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("devtemporal: picking a free port on %s: %w", ip, err)
	}
	return port, nil
}

// waitListening dials addr until it accepts a TCP connection, ctx ends, or
// done is closed (the serving goroutine returned).
func waitListening(ctx context.Context, addr string, done <-chan struct{}) error {
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to listen: %w (last dial error: %v)", addr, ctx.Err(), err)
		case <-done:
			return fmt.Errorf("server on %s stopped before it listened", addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
