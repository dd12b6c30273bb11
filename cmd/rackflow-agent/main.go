// Command rackflow-agent is the rackflow node agent. It runs inside the
// netbooted initramfs (as root, as a child of the busybox /init, with
// /proc, /sys and /dev mounted and the drivers loaded), writes the node's
// disk image and checks in with the netboot service. It is a static
// binary (CGO_ENABLED=0).
//
// # Steps
//
//  1. Read the kernel command line (/proc/cmdline, or --cmdline FILE) and
//     parse the rackflow.node, rackflow.checkin, rackflow.run,
//     rackflow.token, rackflow.image and rackflow.digest words
//     (netboot.ParseAgentArgs). Agent-only words:
//     rackflow.disk=/dev/vda (or =vda) names the target block device; by
//     default the agent takes the first whole disk in /sys/block named
//     vd*, then sd*, then nvme*n*, then xvd* (kernel naming order within
//     each) that is not removable, not read-only and not empty.
//     rackflow.iface=NAME names the interface; by default the one whose MAC
//     is BOOTIF=01-aa-bb-cc-dd-ee-ff, else the first non-loopback Ethernet
//     interface in natural name order. The agent waits up to 10 s for the
//     disk and the interface to appear.
//  2. Set the interface up, wait for carrier (20 s), obtain a DHCPv4 lease
//     (--dhcp-timeout, default 60 s) and apply its address, mask and
//     default route (netlink).
//  3. With rackflow.torrent and rackflow.infohash (the swarm transport,
//     package netboot/swarm): GET the .torrent (retried like the image
//     below), refuse it unless its info hash is rackflow.infohash, and
//     download it onto the disk from the tracker's peers and from
//     rackflow.image as web seed, each piece checked against its SHA-1
//     before it is written; peers are served from port <random> of every
//     address, at most rackflow.uploadrate bytes/s. Without them: GET
//     rackflow.image and stream it onto the disk while hashing it with
//     sha256. An image larger than the disk is refused before writing when
//     the server sends Content-Length (the .torrent always gives the size).
//     Network errors, 5xx, 408, 429 and stalls (60 s without data) are
//     retried with exponential backoff (5 tries within 2 minutes), resuming
//     with a Range request when the server supports it.
//  4. fsync, flush the device's buffer cache (BLKFLSBUF), read the written
//     bytes back from the device and compare their sha256 with
//     rackflow.digest.
//  5. POST the netboot.CheckIn JSON to rackflow.checkin: status "ok" with
//     the read-back digest, or status "error" with a one-line message
//     naming the failed step. Network errors and 5xx are retried (8 tries
//     within 3 minutes); other non-2xx answers are final.
//  6. After a swarm download, keep seeding from the disk for
//     rackflow.seedfor, or until the .torrent is withdrawn (HTTP 404: the
//     rollout that provisioned the node has ended, or the node's export is
//     gone), checked every 15 s.
//
// # Identify mode
//
// When the command line has rackflow.identify=<URL> (with rackflow.scope
// and rackflow.token, netboot.IdentifyArgs: the identify boot profile),
// the agent identifies the machine instead (USB-identify, Purdue
// "Steele"): it brings the network up as in step 2 (the temporary
// address), notes the USB disks present, then looks /sys/block over every
// 250 ms, for up to --identify-wait, for a new block device on a USB bus
// (its sysfs path has a usb<N> element) with a medium and a /dev node: the
// operator's thumb drive. It then POSTs netboot.IdentifyRequest {mac,
// scope, token} to the URL (network errors, 5xx and 409 "no-identify" are
// retried for 30 minutes), adds the answered production address to the
// interface (with the temporary address's prefix length when the plan
// gives none) and sets the hostname, and confirms with the same request
// plus "confirm": true sent from the production address. Its lines:
//
//	rackflow-agent: [   7.62] identify scope=<scope> iface=<iface> mac=<mac>
//	rackflow-agent: [   8.31] dhcp ok ...
//	rackflow-agent: [   8.32] waiting for a USB drive (up to <d>; present: <names|none>)
//	rackflow-agent: [  30.10] usb drive <name> (<removable|fixed>, /dev/<name>) after <s>s
//	rackflow-agent: [  30.40] identified slot <n> name <name> ip <ip/prefix> (HTTP 200) in <s>s
//	rackflow-agent: [  30.41] applied hostname <name> address <ip/prefix> on <iface>
//	rackflow-agent: [  30.60] confirmed from <ip> (HTTP 200)
//	rackflow-agent: done
//
// Failures print "FAILED <step>: ..." with the steps args:, iface:, link:,
// dhcp:, usb:, identify:, apply:, confirm:, then "failed" (exit 1). There
// is no check-in in identify mode.
//
// Errors in steps 1 and 3–4 are reported through the check-in. The agent
// cannot report when the check-in URL, node, run or token is missing, or
// when the network does not come up; it then prints why and exits 1 (the
// workflow's check-in timeout takes over).
//
// # Console output
//
// Every line starts with "rackflow-agent: ". Step lines then carry the
// seconds since boot from /proc/uptime, formatted "[%7.2f]", and one step
// word. These formats are stable (a test harness parses the uptime and the
// words start, dhcp ok, image written, digest ok, check-in accepted):
//
//	rackflow-agent: [   7.62] start node=<node> run=<run> disk=<path> iface=<name>
//	rackflow-agent: [   7.90] link <iface> up in <s>s
//	rackflow-agent: [   8.31] dhcp ok <ip>/<prefix> via <router|none> server <ip> iface <iface> in <s>s
//	rackflow-agent: [   9.53] image written <bytes> bytes in <s>s (<rate> MB/s)
//	rackflow-agent: [   9.80] digest ok sha256:<hex>
//	rackflow-agent: [   9.82] check-in accepted (HTTP <status>)
//	rackflow-agent: done
//
// "none" stands for an unknown value in the start line; with --no-dhcp the
// line "network skipped (--no-dhcp)" replaces the link and dhcp lines. On a
// failure the agent prints
//
//	rackflow-agent: [  12.00] FAILED <step>: <reason>
//
// where the reason starts with the step (args:, disk:, iface:, link:,
// dhcp:, image:, digest:, check-in:), except "digest mismatch: ..." and
// "image is <size>, disk <path> is <size> ..."; the check-in then reports
// that message with status "error" and, when accepted, the agent prints
// "check-in accepted (HTTP 202)" and finally
//
//	rackflow-agent: failed
//
// Informational lines may appear between the steps:
//
//	rackflow-agent: [  10.00] retry <step>: <error> (attempt <n>[ of <max>], next in <s>s)
//	rackflow-agent: [  20.00] image progress <bytes> of <total> bytes (<pct>%) at <rate> MB/s
//	rackflow-agent: [  21.00] image swarm <bytes> bytes from peers, <bytes> from web seeds, <n> bad pieces
//	rackflow-agent: [  21.50] seeding for up to <duration>
//	rackflow-agent: [  80.00] seeding stopped: time|withdrawn|context
//	rackflow-agent: [   7.62] warning <text>
//	rackflow-agent: [   8.00] cannot check in: <why>
//
// Uptimes are seconds with two decimals, durations "<s>s" with two
// decimals, rates in MB/s (10^6 bytes) with one decimal.
//
// # Exit status
//
// 0 when the check-in was accepted with status "ok"; 1 otherwise; 2 on a
// command-line flag error.
//
// # Flags
//
//	--cmdline FILE          kernel command line to read (default /proc/cmdline)
//	--timeout DURATION      bound on disk, network, image and digest steps (default 1h)
//	--dhcp-timeout DURATION how long to try for a DHCP lease (default 60s)
//	--no-dhcp               leave the network as it is (already configured)
//	--identify-wait DURATION identify mode: how long to wait for a USB drive (default 2h)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/rackflow/rackflow/netboot/swarm"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain parses the flags, runs the agent and returns the exit status.
func realMain(argv []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rackflow-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmdline := fs.String("cmdline", "/proc/cmdline", "kernel command line `file` to read")
	timeout := fs.Duration("timeout", time.Hour, "bound on the disk, network, image and digest steps")
	dhcpTimeout := fs.Duration("dhcp-timeout", 60*time.Second, "how long to try for a DHCP lease")
	noDHCP := fs.Bool("no-dhcp", false, "leave the network as it is (already configured)")
	identifyWait := fs.Duration("identify-wait", 2*time.Hour, "identify mode: how long to wait for a USB drive")
	if err := fs.Parse(argv); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rackflow-agent: unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return 2
	}
	if *timeout <= 0 || *dhcpTimeout <= 0 || *identifyWait <= 0 {
		fmt.Fprintln(stderr, "rackflow-agent: --timeout, --dhcp-timeout and --identify-wait must be positive")
		return 2
	}

	con := newConsole(stdout, "/proc/uptime")
	a := &agent{
		con:            con,
		cmdlinePath:    *cmdline,
		sysBlock:       "/sys/block",
		devDir:         "/dev",
		deviceWait:     10 * time.Second,
		timeout:        *timeout,
		checkInTimeout: 4 * time.Minute,
		noDHCP:         *noDHCP,
		net: &networkSetup{
			carrierWait: 20 * time.Second,
			dhcpTimeout: *dhcpTimeout,
			replyWait:   4 * time.Second,
			dhcpRetry:   exponential(500*time.Millisecond, 4*time.Second, 0, 0),
			resolvConf:  "/etc/resolv.conf",
			con:         con,
		},
		image: &imageFetcher{
			client:        &http.Client{Transport: newTransport()},
			retry:         exponential(time.Second, 30*time.Second, 5, 2*time.Minute),
			stallTimeout:  60 * time.Second,
			progressEvery: 10 * time.Second,
			con:           con,
		},
		swarm: &swarmFetcher{
			client:        &http.Client{Transport: newTransport(), Timeout: 30 * time.Second},
			retry:         exponential(time.Second, 30*time.Second, 5, 2*time.Minute),
			listen:        "0.0.0.0:0",
			progressEvery: 10 * time.Second,
			withdrawPoll:  swarm.DefaultWithdrawPoll,
			con:           con,
		},
		checkIn: &checkInPoster{
			client: &http.Client{Transport: newTransport(), Timeout: 15 * time.Second},
			retry:  exponential(time.Second, 30*time.Second, 8, 3*time.Minute),
			con:    con,
		},
		ident: &identifyMode{
			sysBlock: "/sys/block",
			devDir:   "/dev",
			usbWait:  *identifyWait,
			usbPoll:  250 * time.Millisecond,
			// The identify update waits up to 30 s for the workflow.
			client: &http.Client{Transport: newTransport(), Timeout: 45 * time.Second},
			confirmClient: func(local net.IP) *http.Client {
				t := newTransport()
				t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: local}}).DialContext
				return &http.Client{Transport: t, Timeout: 45 * time.Second}
			},
			// The operator may start the identification after the
			// machines are up: "no-identify" is retried for 30 minutes.
			retry:  exponential(time.Second, 30*time.Second, 0, 30*time.Minute),
			apply:  systemIdentity{},
			hwAddr: ifaceMAC,
		},
	}
	if !a.run(context.Background()) {
		return 1
	}
	return 0
}

// newTransport returns the HTTP transport of the agent: no proxy from the
// environment, no transparent decompression (the image bytes are written
// as served), bounded connect and header waits.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
}
