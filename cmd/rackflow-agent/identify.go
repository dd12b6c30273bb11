package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/rackflow/rackflow/netboot"
)

// Identify mode (USB-identify, Purdue "Steele", LISA '08): a new machine
// boots the identify profile (kernel words rackflow.identify=<URL>,
// rackflow.scope=<scope>, rackflow.token=<scope token>) with a temporary
// address, and its agent waits for an operator to insert a USB drive. The
// agent that sees a new USB disk asks POST /v1/identify for its identity
// (the next position of the scope's address plan, in rack order), applies
// the production address and hostname, and confirms from the production
// address; then the machine waits for provisioning.

// identifyMode runs identify mode. Its fields are the knobs main sets from
// flags and tests set directly.
type identifyMode struct {
	sysBlock string        // normally /sys/block
	devDir   string        // normally /dev
	usbWait  time.Duration // how long to wait for a USB drive
	usbPoll  time.Duration // how often to look for one
	client   *http.Client  // the identify call
	// confirmClient returns the client of the confirmation, whose
	// connections leave from local (the production address).
	confirmClient func(local net.IP) *http.Client
	retry         retryPolicy // network errors, 5xx, and 409 "no-identify" (the operator has not started yet)
	apply         identityApplier
	hwAddr        func(iface string) (net.HardwareAddr, error) // the interface's MAC (ifaceMAC)
}

// identityApplier gives the machine its identity: add addr to iface and
// set the hostname (identity_linux.go).
type identityApplier interface {
	applyIdentity(iface string, addr *net.IPNet, hostname string) error
}

// identity is what the identify call answered, checked and ready to apply.
type identity struct {
	netboot.IdentifyAssignment
	addr *net.IPNet
}

// identify runs identify mode after the command line was read; it prints
// the step lines and returns true once the identity is applied and
// confirmed. Errors are printed as "FAILED <step>: ..." (steps args:,
// iface:, link:, dhcp:, usb:, identify:, apply:, confirm:); there is no
// check-in (no run or token): the operator sees the machine in
// `rackflow identify status` or not at all.
func (a *agent) identify(ctx context.Context, words []string) bool {
	im := a.ident
	args, err := netboot.ParseIdentifyArgs(words)
	if err != nil {
		a.con.failed(fmt.Errorf("args: %w", err))
		return false
	}
	opts, err := parseAgentOptions(words)
	if err != nil {
		a.con.failed(err)
		return false
	}
	iface, warning, err := waitForIface(ctx, opts, a.deviceWait)
	if err != nil {
		a.con.failed(err)
		return false
	}
	mac, err := im.hwAddr(iface)
	if err != nil {
		a.con.failed(err)
		return false
	}
	a.con.step("identify scope=%s iface=%s mac=%s", args.Scope, iface, mac)
	for _, w := range opts.Warnings {
		a.con.step("warning %s", w)
	}
	if warning != "" {
		a.con.step("warning %s", warning)
	}
	prefixBits := 0 // of the temporary address, for a plan address without one
	if a.noDHCP {
		a.con.step("network skipped (--no-dhcp)")
	} else {
		cfg, err := a.net.bringUp(ctx, iface)
		if err != nil {
			a.con.failed(err)
			return false
		}
		prefixBits, _ = cfg.Addr.Mask.Size()
	}

	disk, err := im.waitForUSB(ctx, a.con)
	if err != nil {
		a.con.failed(err)
		return false
	}
	a.con.step("usb drive %s", disk)

	start := time.Now()
	req := netboot.IdentifyRequest{MAC: mac.String(), Scope: args.Scope, Token: args.Token}
	id, status, err := im.call(ctx, im.client, args.URL, req, prefixBits, a.con)
	if err != nil {
		a.con.failed(err)
		return false
	}
	a.con.step("identified slot %d name %s ip %s (HTTP %d) in %s", id.Slot, id.Name, id.addr, status, seconds(time.Since(start)))
	if err := im.apply.applyIdentity(iface, id.addr, id.Name); err != nil {
		a.con.failed(fmt.Errorf("apply: %w", err))
		return false
	}
	a.con.step("applied hostname %s address %s on %s", id.Name, id.addr, iface)

	req.Confirm = true
	confirmed, status, err := im.call(ctx, im.confirmClient(id.addr.IP), args.URL, req, prefixBits, a.con)
	if err == nil && (confirmed.Slot != id.Slot || confirmed.Name != id.Name || !confirmed.addr.IP.Equal(id.addr.IP)) {
		err = fmt.Errorf("the confirmation answered slot %d %s %s, not slot %d %s %s (undone meanwhile?)",
			confirmed.Slot, confirmed.Name, confirmed.IP, id.Slot, id.Name, id.IP)
	}
	if err != nil {
		a.con.failed(errors.New("confirm: " + strings.TrimPrefix(err.Error(), "identify: ")))
		return false
	}
	a.con.step("confirmed from %s (HTTP %d)", id.addr.IP, status)
	return true
}

// ifaceMAC returns the hardware address of iface (6 bytes).
func ifaceMAC(iface string) (net.HardwareAddr, error) {
	i, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("iface: %w", err)
	}
	if len(i.HardwareAddr) != 6 {
		return nil, fmt.Errorf("iface: %s has no Ethernet address (%q)", iface, i.HardwareAddr)
	}
	return i.HardwareAddr, nil
}

// usbBusRE matches the sysfs path element of a USB bus ("usb1").
var usbBusRE = regexp.MustCompile(`^usb[0-9]+$`)

// usbDisks returns the block devices under sysBlock that sit on a USB bus
// (their resolved sysfs path has a "usb<N>" element, as
// /sys/devices/pci0000:00/0000:00:04.0/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0/block/sda
// does), hold a medium (size > 0) and have their device node in devDir,
// sorted by name, each with its removable attribute.
func usbDisks(sysBlock, devDir string) (map[string]bool, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, fmt.Errorf("usb: %w", err)
	}
	disks := map[string]bool{}
	for _, e := range entries {
		dir := filepath.Join(sysBlock, e.Name())
		real, err := filepath.EvalSymlinks(dir)
		if err != nil || !slices.ContainsFunc(strings.Split(real, string(filepath.Separator)), usbBusRE.MatchString) {
			continue
		}
		size, err := os.ReadFile(filepath.Join(dir, "size"))
		if err != nil || strings.TrimSpace(string(size)) == "0" {
			continue
		}
		if _, err := os.Stat(filepath.Join(devDir, e.Name())); err != nil {
			continue
		}
		rem, _ := os.ReadFile(filepath.Join(dir, "removable"))
		disks[e.Name()] = strings.TrimSpace(string(rem)) == "1"
	}
	return disks, nil
}

// waitForUSB notes the USB disks present now, then looks every usbPoll for
// one more, for at most usbWait. It returns "<name> (<removable|fixed>,
// /dev/<name>) after <s>s". A disk present from the start does not count:
// the operator's insertion is the act that identifies the machine.
func (im *identifyMode) waitForUSB(ctx context.Context, con *console) (string, error) {
	present, err := usbDisks(im.sysBlock, im.devDir)
	if err != nil {
		return "", err
	}
	start := time.Now()
	con.step("waiting for a USB drive (up to %s; present: %s)", im.usbWait, orNone(strings.Join(slices.Sorted(maps.Keys(present)), ",")))
	tick := time.NewTicker(im.usbPoll)
	defer tick.Stop()
	deadline := time.NewTimer(im.usbWait)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("usb: %w", context.Cause(ctx))
		case <-deadline.C:
			return "", fmt.Errorf("usb: no USB drive inserted within %s", im.usbWait)
		case <-tick.C:
		}
		now, err := usbDisks(im.sysBlock, im.devDir)
		if err != nil {
			return "", err
		}
		for _, name := range slices.Sorted(maps.Keys(now)) {
			if _, old := present[name]; old {
				continue
			}
			kind := "fixed"
			if now[name] {
				kind = "removable"
			}
			return fmt.Sprintf("%s (%s, %s) after %s", name, kind, filepath.Join(im.devDir, name), seconds(time.Since(start))), nil
		}
	}
}

// errNoIdentifyYet marks the 409 "no-identify" answer: no identification
// runs for the scope yet, so the call is retried.
var errNoIdentifyYet = errors.New("no identification running for the scope yet")

// call POSTs req to url and checks the answer: the MAC's own assignment,
// with a valid name and address. A plan address without a prefix gets
// prefixBits (the temporary address's), or /32 without one. Network
// errors, 5xx and 409 "no-identify" are retried per im.retry; other
// answers are final. Errors start with "identify:".
func (im *identifyMode) call(ctx context.Context, hc *http.Client, url string, req netboot.IdentifyRequest, prefixBits int, con *console) (identity, int, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return identity{}, 0, fmt.Errorf("identify: %w", err)
	}
	step := "identify"
	if req.Confirm {
		step = "confirm"
	}
	var status int
	a, err := backoff.Retry(ctx, func() (netboot.IdentifyAssignment, error) {
		var a netboot.IdentifyAssignment
		var err error
		status, err = postIdentify(ctx, hc, url, body, &a)
		return a, err
	}, im.retry.options(im.retry.reporter(con, step))...)
	if err != nil {
		return identity{}, status, fmt.Errorf("identify: %w", err)
	}
	id, err := checkAssignment(a, req, prefixBits)
	if err != nil {
		return identity{}, status, fmt.Errorf("identify: %w", err)
	}
	return id, status, nil
}

// postIdentify makes one call; errors wrapped in backoff.Permanent are
// final.
func postIdentify(ctx context.Context, hc *http.Client, url string, body []byte, into *netboot.IdentifyAssignment) (int, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, backoff.Permanent(err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("User-Agent", userAgent)
	resp, err := hc.Do(hreq)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody))
	switch c := resp.StatusCode; {
	case c == http.StatusOK:
		if err := json.Unmarshal(answer, into); err != nil {
			return c, backoff.Permanent(fmt.Errorf("unreadable answer from %s: %w", url, err))
		}
		return c, nil
	case c >= 500:
		return c, fmt.Errorf("HTTP %s from %s%s", resp.Status, url, serverMessage(answer))
	case c == http.StatusConflict && errorCode(answer) == netboot.IdentifyCodeNoIdentify:
		return c, fmt.Errorf("%w (HTTP %d from %s)", errNoIdentifyYet, c, url)
	default:
		return c, backoff.Permanent(fmt.Errorf("refused with HTTP %s by %s%s", resp.Status, url, serverMessage(answer)))
	}
}

// errorCode returns the "code" of a netboot error body, or "".
func errorCode(body []byte) string {
	var e struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Code
}

// checkAssignment refuses an answer the machine cannot take: another MAC's
// or scope's, a name that is not a valid hostname, an address that is not
// a specific IPv4 address.
func checkAssignment(a netboot.IdentifyAssignment, req netboot.IdentifyRequest, prefixBits int) (identity, error) {
	mac, err := netboot.CanonicalMAC(a.MAC)
	if err != nil || mac != strings.ToLower(req.MAC) {
		return identity{}, fmt.Errorf("the answer is for MAC %q, not %s", a.MAC, req.MAC)
	}
	if a.Scope != req.Scope {
		return identity{}, fmt.Errorf("the answer is for scope %q, not %s", a.Scope, req.Scope)
	}
	if err := netboot.ValidName(a.Name); err != nil {
		return identity{}, fmt.Errorf("the answer's name: %w", err)
	}
	var p netip.Prefix
	if strings.Contains(a.IP, "/") {
		p, err = netip.ParsePrefix(a.IP)
	} else {
		var addr netip.Addr
		addr, err = netip.ParseAddr(a.IP)
		bits := prefixBits
		if bits <= 0 || bits > 32 {
			bits = 32
		}
		p = netip.PrefixFrom(addr, bits)
	}
	if err != nil || !p.Addr().Is4() || p.Addr().IsUnspecified() || p.Addr().IsMulticast() || p.Bits() < 1 {
		return identity{}, fmt.Errorf("the answer's address %q is not a specific IPv4 address with an optional prefix", a.IP)
	}
	return identity{IdentifyAssignment: a, addr: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}, nil
}
