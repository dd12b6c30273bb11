package netboot

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netns"
)

// TestRouterAdvertisement solicits a router on one end of a veth pair, in a
// network namespace of the test's own, and expects the empty advertisement
// from the responder on the other end: lifetime 0, no prefixes, no DHCPv6
// flags, the responder's link-layer address.
func TestRouterAdvertisement(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and a veth pair")
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := "rfra-" + hex.EncodeToString(suffix)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ip("netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ip("-n", name, "link", "add", "ra0", "type", "veth", "peer", "name", "ra1")
	ip("-n", name, "link", "set", "ra0", "up")
	ip("-n", name, "link", "set", "ra1", "up")

	var (
		ra     *raResponder
		client *ndp.Conn
		err    error
	)
	inNamespace(t, name, func() {
		if ra, err = listenRA("ra0", slog.New(slog.DiscardHandler)); err != nil {
			return
		}
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName("ra1"); err != nil {
			return
		}
		for deadline := time.Now().Add(raListenWait); ; time.Sleep(100 * time.Millisecond) {
			if client, _, err = ndp.Listen(ifi, ndp.LinkLocal); err == nil || time.Now().After(deadline) {
				break
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	served := make(chan error, 1)
	go func() { served <- ra.serve() }()

	if err := client.WriteTo(&ndp.RouterSolicitation{}, nil, netip.MustParseAddr("ff02::2")); err != nil {
		t.Fatal(err)
	}
	if err := client.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		m, _, _, err := client.ReadFrom()
		if err != nil {
			t.Fatalf("no router advertisement: %v", err)
		}
		adv, ok := m.(*ndp.RouterAdvertisement)
		if !ok {
			continue
		}
		if adv.RouterLifetime != 0 || adv.ManagedConfiguration || adv.OtherConfiguration {
			t.Errorf("advertisement %+v: want lifetime 0 and no M/O flags", adv)
		}
		if len(adv.Options) != 1 {
			t.Fatalf("options %v: want only the source link-layer address", adv.Options)
		}
		if lla, ok := adv.Options[0].(*ndp.LinkLayerAddress); !ok || lla.Addr.String() != ra.ifi.HardwareAddr.String() {
			t.Errorf("option %v: want the source link-layer address %s", adv.Options[0], ra.ifi.HardwareAddr)
		}
		break
	}
	ra.close()
	if err := <-served; err != nil {
		t.Fatalf("serve after close: %v", err)
	}
}

// inNamespace runs fn on a thread inside the named network namespace and
// returns the thread to the host's namespace (the thread is discarded if
// that fails).
func inNamespace(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromName(name)
		if err != nil {
			done <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			done <- err
			return
		}
		fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
