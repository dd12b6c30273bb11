//go:build linux

package main

import (
	"errors"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestSystemIdentity applies an identity for real: in a new network and
// UTS namespace (on a thread of its own, never returned to the scheduler),
// on the namespace's own loopback interface, so the host keeps its
// addresses and name.
func TestSystemIdentity(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root (new network and UTS namespaces), as CI runs")
		}
		t.Skip("needs root (new network and UTS namespaces)")
	}
	type result struct {
		addrs    []string
		hostname string
		err      error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var r result
		defer func() { done <- r }()
		if r.err = unix.Unshare(unix.CLONE_NEWNET | unix.CLONE_NEWUTS); r.err != nil {
			return
		}
		addr := &net.IPNet{IP: net.IPv4(10, 1, 0, 13).To4(), Mask: net.CIDRMask(24, 32)}
		for range 2 { // applying twice is harmless (a retried boot)
			if r.err = (systemIdentity{}).applyIdentity("lo", addr, "r01n13"); r.err != nil {
				return
			}
		}
		link, err := netlink.LinkByName("lo")
		if r.err = err; err != nil {
			return
		}
		as, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if r.err = err; err != nil {
			return
		}
		for _, a := range as {
			if !a.IP.IsLoopback() {
				r.addrs = append(r.addrs, a.IPNet.String())
			}
		}
		var u unix.Utsname
		if r.err = unix.Uname(&u); r.err == nil {
			r.hostname = unix.ByteSliceToString(u.Nodename[:])
		}
		if err := (systemIdentity{}).applyIdentity("missing0", addr, "r01n13"); err == nil {
			r.err = errors.New("an identity applied to a missing interface")
		}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.addrs) != 1 || r.addrs[0] != "10.1.0.13/24" || r.hostname != "r01n13" {
		t.Fatalf("after applying: addresses %v hostname %q; want [10.1.0.13/24] r01n13", r.addrs, r.hostname)
	}
}
