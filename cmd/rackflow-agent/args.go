package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/rackflow/rackflow/netboot"
)

// Kernel command-line words only the agent reads (netboot.ParseAgentArgs
// reads the rackflow.node/checkin/run/token/image/digest words).
const (
	argDisk   = "rackflow.disk"  // target block device, "/dev/vda" or "vda"
	argIface  = "rackflow.iface" // network interface to configure
	argBootIF = "BOOTIF"         // "01-aa-bb-cc-dd-ee-ff", set by PXELINUX/iPXE
)

// agentOptions are the agent-only kernel command-line words.
type agentOptions struct {
	Disk     string           // device path from rackflow.disk; "" = pick one
	Iface    string           // rackflow.iface; "" = pick one
	BootIF   net.HardwareAddr // MAC from BOOTIF; nil when absent or invalid
	Warnings []string         // problems that do not stop the agent
}

// readCmdline returns the words of the kernel command line in path.
func readCmdline(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("args: read kernel command line: %w", err)
	}
	return strings.Fields(string(b)), nil
}

// lastValue returns the value of the last "key=value" word, as the kernel
// does for repeated keys, and whether the key appeared at all.
func lastValue(words []string, key string) (string, bool) {
	val, found := "", false
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if ok && k == key {
			val, found = v, true
		}
	}
	return val, found
}

// diskNameRE is a bare device name such as "vda" or "nvme0n1".
var diskNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// parseAgentOptions reads rackflow.disk, rackflow.iface and BOOTIF from the
// command-line words. A bare disk name gets "/dev/" prepended. An invalid
// disk or interface is an error; an invalid BOOTIF is only a warning (the
// interface is then picked by name).
func parseAgentOptions(words []string) (agentOptions, error) {
	var o agentOptions
	if v, ok := lastValue(words, argDisk); ok {
		switch {
		case v == "":
			return o, fmt.Errorf("args: empty %s", argDisk)
		case strings.Contains(v, "/"):
			if !filepath.IsAbs(v) || filepath.Clean(v) != v {
				return o, fmt.Errorf("args: invalid %s=%s: want an absolute device path like /dev/vda", argDisk, v)
			}
			o.Disk = v
		case diskNameRE.MatchString(v):
			o.Disk = "/dev/" + v
		default:
			return o, fmt.Errorf("args: invalid %s=%s: want a device path like /dev/vda or a name like vda", argDisk, v)
		}
	}
	if v, ok := lastValue(words, argIface); ok {
		if err := validIfaceName(v); err != nil {
			return o, fmt.Errorf("args: invalid %s=%s: %w", argIface, v, err)
		}
		o.Iface = v
	}
	if v, ok := lastValue(words, argBootIF); ok {
		mac, err := parseBootIF(v)
		if err != nil {
			o.Warnings = append(o.Warnings, fmt.Sprintf("ignoring %s=%s: %v", argBootIF, v, err))
		} else {
			o.BootIF = mac
		}
	}
	return o, nil
}

// validIfaceName applies the kernel's rules for interface names: 1 to 15
// bytes, not "." or "..", no '/', ':' or white space.
func validIfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("empty interface name")
	case len(name) > 15:
		return errors.New("interface names have at most 15 bytes")
	case name == "." || name == "..":
		return errors.New(`"." and ".." are not interface names`)
	case strings.ContainsAny(name, "/: \t\n"):
		return errors.New("interface names contain no '/', ':' or white space")
	}
	return nil
}

// parseBootIF parses the PXE BOOTIF value "01-aa-bb-cc-dd-ee-ff" (ARP
// hardware type 1, Ethernet, then the MAC) into the MAC.
func parseBootIF(v string) (net.HardwareAddr, error) {
	rest, ok := strings.CutPrefix(strings.ToLower(v), "01-")
	if !ok {
		return nil, errors.New(`want "01-" (Ethernet) followed by the MAC`)
	}
	mac, err := net.ParseMAC(strings.ReplaceAll(rest, "-", ":"))
	if err != nil || len(mac) != 6 {
		return nil, errors.New("want a 6-byte MAC like 01-aa-bb-cc-dd-ee-ff")
	}
	return mac, nil
}

// checkInFallback gathers the check-in fields from the command line when
// netboot.ParseAgentArgs refused it (for instance over a bad digest), so
// the failure can still be reported. It returns false when there is nothing
// to check in to: the check-in URL is missing or not absolute http(s), or
// the node, run or token is missing.
func checkInFallback(words []string) (netboot.AgentArgs, bool) {
	var a netboot.AgentArgs
	a.Node, _ = lastValue(words, netboot.ArgNode)
	a.CheckInURL, _ = lastValue(words, netboot.ArgCheckIn)
	a.Run, _ = lastValue(words, netboot.ArgRun)
	a.Token, _ = lastValue(words, netboot.ArgToken)
	a.ImageURL, _ = lastValue(words, netboot.ArgImage)
	a.Digest, _ = lastValue(words, netboot.ArgDigest)
	u, err := url.Parse(a.CheckInURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return a, false
	}
	return a, a.Node != "" && a.Run != "" && a.Token != ""
}
