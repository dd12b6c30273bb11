package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cenkalti/backoff/v5"
)

// ifaceInfo is what interface selection needs to know of a network
// interface.
type ifaceInfo struct {
	Name     string
	MAC      net.HardwareAddr
	Loopback bool
}

// errNoIface is wrapped by chooseIface when no interface qualifies.
var errNoIface = errors.New("no network interface")

// chooseIface picks the interface to configure: the one named by
// rackflow.iface, else the one whose MAC is BOOTIF, else the first
// non-loopback Ethernet interface (6-byte MAC) in natural name order (eth2
// before eth10). When BOOTIF names no interface it falls back to the first
// one and returns a warning.
func chooseIface(ifs []ifaceInfo, opts agentOptions) (name, warning string, err error) {
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	if opts.Iface != "" {
		for _, i := range ifs {
			if i.Name == opts.Iface {
				return i.Name, "", nil
			}
		}
		return "", "", fmt.Errorf("iface: %w named %s (have %s)", errNoIface, opts.Iface, listOrNone(names))
	}
	var cands []ifaceInfo
	for _, i := range ifs {
		if !i.Loopback && len(i.MAC) == 6 {
			cands = append(cands, i)
		}
	}
	slices.SortFunc(cands, func(a, b ifaceInfo) int { return naturalCompare(a.Name, b.Name) })
	if opts.BootIF != nil {
		for _, i := range cands {
			if bytes.Equal(i.MAC, opts.BootIF) {
				return i.Name, "", nil
			}
		}
	}
	if len(cands) == 0 {
		return "", "", fmt.Errorf("iface: %w with an Ethernet address (have %s)", errNoIface, listOrNone(names))
	}
	if opts.BootIF != nil {
		warning = fmt.Sprintf("no interface has the BOOTIF MAC %s; using %s", opts.BootIF, cands[0].Name)
	}
	return cands[0].Name, warning, nil
}

// listOrNone joins names with ", ", or returns "none".
func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// naturalCompare compares strings treating runs of digits as numbers, so
// "eth2" sorts before "eth10".
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		ra, restA := leadingRun(a)
		rb, restB := leadingRun(b)
		na, errA := strconv.ParseUint(ra, 10, 64)
		nb, errB := strconv.ParseUint(rb, 10, 64)
		switch {
		case errA == nil && errB == nil && na != nb:
			if na < nb {
				return -1
			}
			return 1
		case ra != rb:
			return strings.Compare(ra, rb)
		}
		a, b = restA, restB
	}
	return len(a) - len(b)
}

// leadingRun splits s after its leading run of digits or of non-digits.
func leadingRun(s string) (run, rest string) {
	digit := unicode.IsDigit(rune(s[0]))
	i := 1
	for i < len(s) && unicode.IsDigit(rune(s[i])) == digit {
		i++
	}
	return s[:i], s[i:]
}

// systemIfaces lists the host's interfaces.
func systemIfaces() ([]ifaceInfo, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]ifaceInfo, 0, len(ifs))
	for _, i := range ifs {
		out = append(out, ifaceInfo{Name: i.Name, MAC: i.HardwareAddr, Loopback: i.Flags&net.FlagLoopback != 0})
	}
	return out, nil
}

// waitForIface calls chooseIface on the host's interfaces until one
// qualifies or wait has passed (NIC drivers may still be probing).
func waitForIface(ctx context.Context, opts agentOptions, wait time.Duration) (name, warning string, err error) {
	tries := uint(0)
	if wait <= 0 {
		tries = 1
	}
	name, err = backoff.Retry(ctx, func() (string, error) {
		ifs, err := systemIfaces()
		if err != nil {
			return "", backoff.Permanent(fmt.Errorf("iface: %w", err))
		}
		var n string
		n, warning, err = chooseIface(ifs, opts)
		return n, err
	}, constant(500*time.Millisecond, tries, wait).options(nil)...)
	return name, warning, err
}
