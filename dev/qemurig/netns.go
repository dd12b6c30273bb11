package qemurig

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// InNamespace runs fn in a new goroutine locked to an OS thread that has
// entered the rig's network namespace, and returns once the thread is
// there. Sockets fn creates belong to the namespace and keep serving from
// any goroutine, so a service whose Run binds its listeners before serving
// (netboot.Service) can be run this way. The thread is never returned to the
// runtime: it exits with the goroutine.
func (r *Rig) InNamespace(fn func()) error {
	ns, err := netns.GetFromName(r.ns)
	if err != nil {
		return fmt.Errorf("qemu rig: namespace %s: %w", r.ns, err)
	}
	entered := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread's namespace differs from every other's
		err := netns.Set(ns)
		ns.Close()
		entered <- err
		if err == nil {
			fn()
		}
	}()
	if err := <-entered; err != nil {
		return fmt.Errorf("qemu rig: entering namespace %s: %w", r.ns, err)
	}
	return nil
}

// DialContext dials addr from inside the rig's namespace: a thread enters
// it for the connect, and the connection stays in the namespace (for
// clients that run outside it, such as the swarm seeder's tracker
// announces).
func (r *Rig) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	if err := r.InNamespace(func() {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}); err != nil {
		return nil, err
	}
	res := <-ch
	return res.c, res.err
}
