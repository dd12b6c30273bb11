package vrack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rackflow/rackflow/netboot"
)

// USB-identify on the virtual rack: a node booted into the identify profile
// plays the agent's identify mode. Its USB port is the file <USBDir>/<node>
// (the rack's Config.USBDir): InsertUSB (`rackflow dev usb-insert`, from
// any process) writes a new drive serial into it, and the node, which
// looks at the file every usbPoll, takes a serial it did not see at boot
// as the operator's insertion. It then asks POST /v1/identify from its
// leased address, takes the answered hostname and production address
// (NodeState.Identity), and confirms from the production address when
// that is a loopback address it can bind.

// Identify steps.
const (
	StepUSB      Step = "usb"      // a USB drive appeared in identify mode
	StepIdentify Step = "identify" // POST /v1/identify answered with an identity
	StepConfirm  Step = "confirm"  // the identity was confirmed
)

// Identity is what a node in identify mode was given.
type Identity struct {
	Scope     string
	Slot      int
	Name      string // the node's hostname from now on
	IP        string // production address, as the plan gives it
	Confirmed bool
	Time      time.Time // of the confirmation (or of the answer, unconfirmed)
}

// usbPoll is how often a node in identify mode looks at its USB port.
const usbPoll = 100 * time.Millisecond

// identifyTries bounds the identify call's attempts (network errors, 5xx,
// 409 "no-identify"), one a second.
const identifyTries = 120

// InsertUSB plugs a new virtual USB drive into node's port under usbDir
// (creating the folder): a fresh serial written atomically to
// <usbDir>/<node>. It is what `rackflow dev usb-insert` does on the
// virtual rack, from any process.
func InsertUSB(usbDir, node string) (serial string, err error) {
	if err := netboot.ValidName(node); err != nil {
		return "", fmt.Errorf("usb insert: %w", err)
	}
	if err := os.MkdirAll(usbDir, 0o755); err != nil {
		return "", fmt.Errorf("usb insert: %w", err)
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	serial = "RF" + strings.ToUpper(hex.EncodeToString(b))
	tmp, err := os.CreateTemp(usbDir, ".usb-*")
	if err != nil {
		return "", fmt.Errorf("usb insert: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(serial + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("usb insert: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("usb insert: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(usbDir, node)); err != nil {
		return "", fmt.Errorf("usb insert: %w", err)
	}
	return serial, nil
}

// usbSerial reads the drive serial in node's port ("" when empty).
func (n *Node) usbSerial() string {
	if n.rack.cfg.USBDir == "" {
		return ""
	}
	b, _ := os.ReadFile(filepath.Join(n.rack.cfg.USBDir, n.spec.Name))
	return strings.TrimSpace(string(b))
}

// runIdentify plays the agent's identify mode with the kernel words args,
// from the leased address local. It returns the phase the node ends in:
// up once identified and confirmed.
func (n *Node) runIdentify(ctx context.Context, gen uint64, hc *http.Client, args []string) Phase {
	a, err := netboot.ParseIdentifyArgs(args)
	if !n.step(gen, StepAgent, err, nil, "mode", "identify", "scope", a.Scope) || err != nil {
		return PhaseFailed
	}
	if n.rack.cfg.USBDir == "" {
		n.step(gen, StepUSB, errors.New("the rack has no USB ports (Config.USBDir)"), nil)
		return PhaseFailed
	}
	present := n.usbSerial()
	start := time.Now()
	wait := n.rack.cfg.IdentifyWait
	tick := time.NewTicker(usbPoll)
	defer tick.Stop()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var serial string
	for serial == "" || serial == present {
		select {
		case <-ctx.Done():
			return PhaseFailed
		case <-deadline.C:
			n.step(gen, StepUSB, fmt.Errorf("no USB drive inserted within %s", wait), nil)
			return PhaseFailed
		case <-tick.C:
		}
		serial = n.usbSerial()
	}
	n.step(gen, StepUSB, nil, nil, "serial", serial, "after", time.Since(start))

	req := netboot.IdentifyRequest{MAC: n.spec.MAC.String(), Scope: a.Scope, Token: a.Token}
	got, err := n.postIdentify(ctx, hc, a.URL, req)
	if ctx.Err() != nil {
		return PhaseFailed
	}
	var prod netip.Addr
	if err == nil {
		prod, err = assignedAddr(got, req)
	}
	id := &Identity{Scope: got.Scope, Slot: got.Slot, Name: got.Name, IP: got.IP, Time: time.Now()}
	if !n.step(gen, StepIdentify, err, func(s *NodeState) { s.Identity = id }, "slot", got.Slot, "name", got.Name, "ip", got.IP) || err != nil {
		return PhaseFailed
	}

	// Confirm from the production address when the node can bind it
	// (loopback), else from the leased one.
	chc := hc
	if local := bindIP(prod.AsSlice()); local != nil {
		chc = newHTTPClient(local)
		defer chc.CloseIdleConnections()
	}
	req.Confirm = true
	conf, err := n.postIdentify(ctx, chc, a.URL, req)
	if err == nil && (conf.Slot != got.Slot || conf.Name != got.Name) {
		err = fmt.Errorf("the confirmation answered slot %d %s, not slot %d %s", conf.Slot, conf.Name, got.Slot, got.Name)
	}
	if ctx.Err() != nil {
		return PhaseFailed
	}
	if !n.step(gen, StepConfirm, err, func(s *NodeState) {
		c := *id
		c.Confirmed, c.Time = err == nil, time.Now()
		s.Identity = &c
	}, "from", prod) || err != nil {
		return PhaseFailed
	}
	return PhaseUp
}

// assignedAddr checks the answer is this node's and returns its address.
func assignedAddr(a netboot.IdentifyAssignment, req netboot.IdentifyRequest) (netip.Addr, error) {
	if a.MAC != req.MAC || a.Scope != req.Scope {
		return netip.Addr{}, fmt.Errorf("the answer is for %s in %s, not %s in %s", a.MAC, a.Scope, req.MAC, req.Scope)
	}
	if err := netboot.ValidName(a.Name); err != nil {
		return netip.Addr{}, err
	}
	s, _, _ := strings.Cut(a.IP, "/")
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("the answer's address %q: %w", a.IP, err)
	}
	return addr, nil
}

// postIdentify POSTs req and decodes the 200 answer; network errors, 5xx
// and 409 "no-identify" are retried once a second, identifyTries times.
func (n *Node) postIdentify(ctx context.Context, hc *http.Client, url string, req netboot.IdentifyRequest) (netboot.IdentifyAssignment, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return netboot.IdentifyAssignment{}, err
	}
	for attempt := 1; ; attempt++ {
		a, retry, err := identifyOnce(ctx, hc, url, body)
		if err == nil || !retry || attempt == identifyTries {
			return a, err
		}
		n.log.Debug("vrack identify retry", "attempt", attempt, "err", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return a, ctx.Err()
		}
	}
}

func identifyOnce(ctx context.Context, hc *http.Client, url string, body []byte) (a netboot.IdentifyAssignment, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return a, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rackflow-vrack")
	resp, err := hc.Do(req)
	if err != nil {
		return a, true, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return a, false, json.Unmarshal(answer, &a)
	}
	var e struct{ Error, Code string }
	_ = json.Unmarshal(answer, &e)
	err = fmt.Errorf("identify: HTTP %d: %s", resp.StatusCode, e.Error)
	return a, resp.StatusCode >= 500 || (resp.StatusCode == http.StatusConflict && e.Code == netboot.IdentifyCodeNoIdentify), err
}

// identifyMode reports whether the kernel words boot the identify profile.
func identifyMode(args []string) bool {
	for _, w := range args {
		if strings.HasPrefix(w, netboot.ArgIdentify+"=") {
			return true
		}
	}
	return false
}
