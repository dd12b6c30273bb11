package netboot

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Real DHCP clients (busybox udhcpc, ISC dhclient) against the service in a
// namespace of the test's own: each obtains its reservation with the
// expected next-server and boot file, for BIOS (no option 93) and x86-64
// UEFI (option 93 = 7), and obtains the same address again from a new
// Service after a restart.

// nsDHCPConfig is a DHCP-only Config for the namespace rig: nsClientMAC
// reserved at nsLeaseIP.
func nsDHCPConfig() Config {
	return Config{
		DHCPAddr: "0.0.0.0:67",
		ServerIP: nsServerIP,
		Reservations: StaticReservations{nsClientMAC: {
			Node: "r09n01", Rack: "r09", IP: net.ParseIP(nsLeaseIP).To4(),
			Mask: net.CIDRMask(24, 32), Router: net.ParseIP(nsServerIP).To4(), Lease: 10 * time.Minute,
		}},
	}
}

// dhcpLease is what a client's script was handed on a successful lease.
type dhcpLease struct {
	reason                     string // the script event: bound (udhcpc), BOUND or REBOOT (dhclient)
	ip, nextServer, bootFile   string // yiaddr, siaddr, file field
	option66, option67, server string // TFTP server name, boot file name option, server identifier
	vars                       map[string]string
}

// recordingScript writes an executable shell script into dir that appends
// the event name to dir/events and dumps its environment to
// dir/<event>.env. (Debian's udhcpc needs a script; neither client's
// script here configures the interface.)
func recordingScript(t *testing.T, dir, event string) string {
	t.Helper()
	script := fmt.Sprintf("#!/bin/sh\nev=\"%s\"\necho \"$ev\" >> '%s/events'\nenv > '%s/'\"$ev\".env\nexit 0\n", event, dir, dir)
	p := filepath.Join(dir, "record.sh")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// readEnv reads a file of NAME=value lines.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vars[k] = v
		}
	}
	return vars
}

func lastEvent(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "events"))
	lines := strings.Fields(string(b))
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// udhcpc runs busybox udhcpc once on the client end (-n: give up without a
// lease, -q: exit once bound) with extra arguments and returns the lease.
func udhcpc(t *testing.T, n *nsNet, extra ...string) dhcpLease {
	t.Helper()
	dir := t.TempDir()
	script := recordingScript(t, dir, "$1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"udhcpc", "-i", nsClientIf, "-n", "-q", "-f", "-s", script, "-t", "5", "-T", "1"}, extra...)
	out, err := n.clientCmd(ctx, "busybox", args...).CombinedOutput()
	t.Logf("udhcpc %s:\n%s", strings.Join(extra, " "), out)
	if err != nil {
		t.Fatalf("udhcpc: %v (events: %q)", err, lastEvent(dir))
	}
	if ev := lastEvent(dir); ev != "bound" {
		t.Fatalf("udhcpc exited without a lease: last script event %q", ev)
	}
	v := readEnv(t, filepath.Join(dir, "bound.env"))
	return dhcpLease{reason: "bound", ip: v["ip"], nextServer: v["siaddr"], bootFile: v["boot_file"],
		option66: v["tftp"], option67: v["bootfile"], server: v["serverid"], vars: v}
}

// dhclient runs ISC dhclient in the foreground on the client end, with its
// lease and pid files in leaseDir (reuse leaseDir to make it remember a
// lease) and conf as its configuration, until its script reports a lease;
// then it is killed (by its own pid) and the lease returned.
func dhclient(t *testing.T, n *nsNet, leaseDir, conf string) dhcpLease {
	t.Helper()
	dir := t.TempDir()
	script := recordingScript(t, dir, "$reason")
	cf := filepath.Join(dir, "dhclient.conf")
	// timeout bounds the whole attempt; -1 makes dhclient exit when it runs out.
	if err := os.WriteFile(cf, []byte("timeout 20;\nretry 1;\ninitial-interval 1;\n"+conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out syncBuffer
	cmd := n.clientCmd(ctx, "dhclient", "-4", "-d", "-1", "-v", "-sf", script, "-cf", cf,
		"-lf", filepath.Join(leaseDir, "dhclient.leases"), "-pf", filepath.Join(leaseDir, "dhclient.pid"), nsClientIf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { t.Logf("dhclient:\n%s", out.String()) }()
	for {
		switch ev := lastEvent(dir); ev {
		case "BOUND", "REBOOT", "RENEW", "REBIND":
			// The script logs the event before it dumps its environment, and
			// dhclient runs the script before it writes the lease file: let
			// both finish (up to 3 s each), so that a later run remembers
			// the lease.
			var v map[string]string
			for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if _, err := os.Stat(filepath.Join(dir, ev+".env")); err == nil {
					if v = readEnv(t, filepath.Join(dir, ev+".env")); v["new_ip_address"] != "" || time.Now().After(deadline) {
						break
					}
				} else if time.Now().After(deadline) {
					v = map[string]string{}
					break
				}
			}
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if b, _ := os.ReadFile(filepath.Join(leaseDir, "dhclient.leases")); strings.Contains(string(b), "fixed-address "+v["new_ip_address"]+";") {
					break
				}
			}
			_ = cmd.Process.Kill()
			<-exited
			return dhcpLease{reason: ev, ip: v["new_ip_address"], nextServer: v["new_next_server"], bootFile: v["new_filename"],
				option66: v["new_tftp_server_name"], option67: v["new_bootfile_name"], server: v["new_dhcp_server_identifier"], vars: v}
		}
		select {
		case err := <-exited:
			t.Fatalf("dhclient exited without a lease (%v); script events: %q", err, lastEvent(dir))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func checkNSLease(t *testing.T, l dhcpLease, wantFile string) {
	t.Helper()
	checks := []struct{ what, got, want string }{
		{"leased address (yiaddr)", l.ip, nsLeaseIP},
		{"next-server (siaddr)", l.nextServer, nsServerIP},
		{"boot file (file field)", l.bootFile, wantFile},
		{"server identifier (option 54)", l.server, nsServerIP},
		{"TFTP server name (option 66)", l.option66, nsServerIP},
		{"boot file name (option 67)", l.option67, wantFile},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q (script variables: %v)", c.what, c.got, c.want, l.vars)
		}
	}
}

func TestRealClientUdhcpc(t *testing.T) {
	requireRealClients(t, "busybox")
	n := newNSNet(t, false)
	cfg := nsDHCPConfig()
	svc := n.startService(t, cfg)

	t.Run("BIOS", func(t *testing.T) {
		checkNSLease(t, udhcpc(t, n), "undionly.kpxe")
	})
	t.Run("UEFI option 93 = 7", func(t *testing.T) {
		checkNSLease(t, udhcpc(t, n, "-x", "0x5d:0007"), "ipxe.efi")
	})
	t.Run("same address after a restart", func(t *testing.T) {
		svc.stop()
		n.startService(t, cfg)
		// -r: ask for the address it had (option 50 in the DISCOVER).
		checkNSLease(t, udhcpc(t, n, "-r", nsLeaseIP), "undionly.kpxe")
	})
}

func TestRealClientDhclient(t *testing.T) {
	requireRealClients(t, "dhclient")
	n := newNSNet(t, false)
	cfg := nsDHCPConfig()
	svc := n.startService(t, cfg)

	t.Run("BIOS", func(t *testing.T) {
		checkNSLease(t, dhclient(t, n, t.TempDir(), ""), "undionly.kpxe")
	})
	t.Run("UEFI option 93 = 7", func(t *testing.T) {
		// ISC dhclient knows option 93 as pxe-system-type.
		checkNSLease(t, dhclient(t, n, t.TempDir(), "send pxe-system-type 7;\n"), "ipxe.efi")
	})
	t.Run("same address after a restart", func(t *testing.T) {
		leases := t.TempDir()
		first := dhclient(t, n, leases, "")
		checkNSLease(t, first, "undionly.kpxe")
		svc.stop()
		n.startService(t, cfg)
		// dhclient remembers the lease: INIT-REBOOT, a REQUEST for it.
		again := dhclient(t, n, leases, "")
		checkNSLease(t, again, "undionly.kpxe")
		if again.reason != "REBOOT" {
			t.Errorf("second lease came through %s, want REBOOT (INIT-REBOOT with the remembered address)", again.reason)
		}
	})
}
