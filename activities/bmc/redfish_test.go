package bmc_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackflow/rackflow/activities/bmc"
	"github.com/rackflow/rackflow/dev/vrack/redfishemu"
)

// emulated is one Redfish BMC emulator with the power transitions it reported.
type emulated struct {
	srv     *redfishemu.Server
	machine *redfishemu.Machine

	mu      sync.Mutex
	changes []redfishemu.Change
}

func (e *emulated) Changes() []redfishemu.Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]redfishemu.Change(nil), e.changes...)
}

func startEmulator(t *testing.T) *emulated {
	t.Helper()
	e := &emulated{}
	e.machine = redfishemu.NewMachine("", func(c redfishemu.Change) {
		e.mu.Lock()
		e.changes = append(e.changes, c)
		e.mu.Unlock()
	})
	srv, err := redfishemu.Start(redfishemu.Config{
		Addr: "127.0.0.1:0", Username: "admin", Password: "s3cret", Machine: e.machine, Name: "r01n01",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	e.srv = srv
	return e
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openRedfish(t *testing.T, e *emulated) *bmc.Client {
	t.Helper()
	c, err := bmc.Open(testCtx(t), bmc.Config{Driver: "redfish", Address: e.srv.Addr(), Username: "admin", Password: "s3cret"}, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func wantPower(t *testing.T, c *bmc.Client, want string) {
	t.Helper()
	got, err := c.PowerState(testCtx(t))
	if err != nil {
		t.Fatalf("PowerState: %v", err)
	}
	if got != want {
		t.Fatalf("PowerState = %q, want %q", got, want)
	}
}

func TestRedfishPower(t *testing.T) {
	e := startEmulator(t)
	c := openRedfish(t, e)
	ctx := testCtx(t)

	wantPower(t, c, "off")
	steps := []struct {
		name      string
		do        func(context.Context) error
		wantPower string
		wantReset string // ResetType of the transition this step causes ("" = none)
	}{
		{"on", c.PowerOn, "on", "On"},
		{"on again is a no-op", c.PowerOn, "on", ""},
		{"off", c.PowerOff, "off", "ForceOff"},
		{"off again is a no-op", c.PowerOff, "off", ""},
		{"cycle when off powers on", c.PowerCycle, "on", "On"},
		{"cycle when on", c.PowerCycle, "on", "PowerCycle"},
		{"reset when on", c.PowerReset, "on", "ForceRestart"},
		{"off before reset", c.PowerOff, "off", "ForceOff"},
		{"reset when off powers on", c.PowerReset, "on", "On"},
	}
	for _, st := range steps {
		before := len(e.Changes())
		if err := st.do(ctx); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		wantPower(t, c, st.wantPower)
		changes := e.Changes()[before:]
		switch {
		case st.wantReset == "" && len(changes) != 0:
			t.Fatalf("%s: unexpected transitions %+v", st.name, changes)
		case st.wantReset != "" && (len(changes) != 1 || changes[0].Reset != st.wantReset):
			t.Fatalf("%s: transitions %+v, want one %s", st.name, changes, st.wantReset)
		}
	}
}

func TestRedfishBootDevice(t *testing.T) {
	e := startEmulator(t)
	c := openRedfish(t, e)
	ctx := testCtx(t)
	tests := []struct {
		device     string
		persistent bool
		want       redfishemu.Boot
	}{
		{"pxe", false, redfishemu.Boot{Enabled: "Once", Target: "Pxe", Mode: "Legacy"}},
		{"disk", true, redfishemu.Boot{Enabled: "Continuous", Target: "Hdd", Mode: "Legacy"}},
		{"pxe", true, redfishemu.Boot{Enabled: "Continuous", Target: "Pxe", Mode: "Legacy"}},
	}
	for _, tt := range tests {
		if err := c.SetBootDevice(ctx, tt.device, tt.persistent); err != nil {
			t.Fatalf("SetBootDevice(%s, %v): %v", tt.device, tt.persistent, err)
		}
		if _, got, _ := e.machine.State(); got != tt.want {
			t.Fatalf("SetBootDevice(%s, %v): boot = %+v, want %+v", tt.device, tt.persistent, got, tt.want)
		}
	}
	// A Once override is used by the next boot and then cleared.
	if err := c.SetBootDevice(ctx, "pxe", false); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerCycle(ctx); err != nil {
		t.Fatal(err)
	}
	ch := e.Changes()
	if len(ch) != 1 || ch[0].Target != "Pxe" {
		t.Fatalf("boot after SetBootDevice(pxe, once): %+v", ch)
	}
	if _, got, _ := e.machine.State(); got.Enabled != "Disabled" {
		t.Fatalf("Once override not cleared after boot: %+v", got)
	}

	if err := c.SetBootDevice(ctx, "cdrom", false); !errors.Is(err, bmc.ErrInvalid) {
		t.Fatalf("SetBootDevice(cdrom) = %v, want ErrInvalid", err)
	}
}

// Only the Redfish provider talks to a redfish BMC, and Close logs out.
func TestRedfishOnlyProviderAndLogout(t *testing.T) {
	e := startEmulator(t)
	start := time.Now()
	c, err := bmc.Open(testCtx(t), bmc.Config{Driver: "redfish", Address: e.srv.Addr(), Username: "admin", Password: "s3cret"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Open took %v", time.Since(start))
	if _, err := c.PowerState(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	reqs := e.srv.Requests()
	t.Logf("requests of Open + PowerState + Close: %q", reqs)
	for _, r := range reqs {
		if !strings.Contains(r, " /redfish/v1") {
			t.Errorf("non-Redfish request %q", r)
		}
	}
	if last := reqs[len(reqs)-1]; !strings.HasPrefix(last, "DELETE /redfish/v1/SessionService/Sessions/") || !strings.HasSuffix(last, " 204") {
		t.Errorf("last request %q, want the session DELETE", last)
	}
}

// Close logs out even when the caller's context is already done.
func TestRedfishCloseAfterCancel(t *testing.T) {
	e := startEmulator(t)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := bmc.Open(ctx, bmc.Config{Driver: "redfish", Address: e.srv.Addr(), Username: "admin", Password: "s3cret"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := e.srv.Requests()
	if last := reqs[len(reqs)-1]; !strings.HasPrefix(last, "DELETE /redfish/v1/SessionService/Sessions/") || !strings.HasSuffix(last, " 204") {
		t.Errorf("last request %q, want the session DELETE", last)
	}
}

func TestOpenErrors(t *testing.T) {
	e := startEmulator(t)

	// A port with nothing listening: connection refused.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	_ = closed.Close()

	// A listener that accepts and never answers the TLS handshake.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() })
		}
	}()

	tests := []struct {
		name    string
		cfg     bmc.Config
		timeout time.Duration
		want    error
	}{
		{"bad password", bmc.Config{Driver: "redfish", Address: e.srv.Addr(), Username: "admin", Password: "wrong"}, 10 * time.Second, bmc.ErrAuth},
		{"bad user", bmc.Config{Driver: "redfish", Address: e.srv.Addr(), Username: "root", Password: "s3cret"}, 10 * time.Second, bmc.ErrAuth},
		{"unknown driver", bmc.Config{Driver: "amt", Address: e.srv.Addr()}, 10 * time.Second, bmc.ErrDriver},
		{"empty address", bmc.Config{Driver: "redfish"}, 10 * time.Second, bmc.ErrInvalid},
		{"connection refused", bmc.Config{Driver: "redfish", Address: closedAddr, Username: "admin", Password: "never-sent-pw"}, 10 * time.Second, bmc.ErrUnreachable},
		{"no answer", bmc.Config{Driver: "redfish", Address: silent.Addr().String(), Username: "admin", Password: "never-sent-pw"}, 300 * time.Millisecond, bmc.ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			c, err := bmc.Open(ctx, tt.cfg, nil)
			if !errors.Is(err, tt.want) {
				if c != nil {
					_ = c.Close(ctx)
				}
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
			if tt.cfg.Password != "" && strings.Contains(err.Error(), tt.cfg.Password) {
				t.Fatalf("error text contains the password: %v", err)
			}
		})
	}
}

// Cancelling the caller's context aborts an in-flight Redfish request.
func TestRedfishCancel(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() })
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := bmc.Open(ctx, bmc.Config{Driver: "redfish", Address: silent.Addr().String(), Username: "a", Password: "b"}, nil)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Open after cancel = %v, want context.Canceled in the chain", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open did not return after cancel")
	}
}
