package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/rackflow/rackflow/netboot"
)

// The benchmark re-executes itself inside a namespace for the parts that
// must live there wholly (pin/tftp opens a socket per transfer from
// whichever thread serves it, so a process outside the namespace cannot
// host TFTP faithfully): the environment variable roleEnv names the role,
// the arguments are the role's flags.
const roleEnv = "RACKFLOW_BENCH_NETBOOT_ROLE"

// Roles.
const (
	roleServer = "rackflow-server" // the netboot service (serverRole)
	roleDHCP   = "dhcp-load"       // the DHCP load generator (dhcpLoadRole)
	roleStorm  = "boot-storm"      // the boot-storm clients (stormRole)
)

// runRole runs role with args; it returns the exit status.
func runRole(role string, args []string) int {
	var err error
	switch role {
	case roleServer:
		err = serverRole(args)
	case roleDHCP:
		err = dhcpLoadRole(args)
	case roleStorm:
		err = stormRole(args)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		return 1
	}
	return 0
}

// readyLine is what a role prints on stdout once it serves.
const readyLine = "bench-role ready"

// serverRole runs the netboot service (by default DHCP on 0.0.0.0:67, TFTP
// on serverIP:69, HTTP on serverIP:8880; "" turns one off) with a
// reservation for each of -macs simulated clients, until its stdin closes.
func serverRole(args []string) error {
	fs := flag.NewFlagSet(roleServer, flag.ContinueOnError)
	macs := fs.Int("macs", 0, "reservations for simulated clients 0..macs-1")
	tftpRoot := fs.String("tftp-root", "", "TFTP root")
	artifacts := fs.String("artifacts", "", "artifacts directory")
	store := fs.String("store", "", "boot-profile store")
	logPath := fs.String("log", "", "log file")
	debug := fs.Bool("debug", false, "log at Debug level (every request), not Info")
	dhcpAddr := fs.String("dhcp", "0.0.0.0:67", "DHCP listen address")
	tftpAddr := fs.String("tftp", serverIP+":69", "TFTP listen address")
	httpAddr := fs.String("http", serverIP+":8880", "HTTP listen address")
	anticipate := fs.Uint("tftp-anticipate", 0, "netboot.Config.TFTPAnticipate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logf, err := os.Create(*logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	res := netboot.StaticReservations{}
	for i := range *macs {
		res[macOf(i).String()] = netboot.Reservation{Node: fmt.Sprintf("n%05d", i), Rack: "bench",
			IP: ipOf(i), Mask: net.CIDRMask(16, 32), Lease: time.Hour}
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	svc, err := netboot.New(netboot.Config{
		DHCPAddr: *dhcpAddr, TFTPAddr: *tftpAddr, HTTPAddr: *httpAddr, ServerIP: serverIP,
		TFTPRoot: *tftpRoot, TFTPAnticipate: *anticipate, ArtifactsDir: *artifacts, StoreDir: *store,
		CheckInKey: key, Reservations: res, Signaler: refuseCheckIns{},
		Logger: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		cancel()
		return err
	}
	if svc.HTTPAddr() == "" && svc.TFTPAddr() == "" { // Ready after a failed bind
		cancel()
		return <-done
	}
	fmt.Println(readyLine)
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	return <-done
}

// refuseCheckIns is the benchmark's Signaler: no node checks in.
type refuseCheckIns struct{}

func (refuseCheckIns) CheckIn(context.Context, netboot.CheckIn) error {
	return netboot.ErrNoOperation
}

// roleProcess is a role running in a namespace.
type roleProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	waited chan error
}

// roleCmd is this benchmark's own executable run as role with args in
// namespace ns, its stderr to stderr.
func roleCmd(ctx context.Context, ns, role string, stderr io.Writer, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := cmdIn(ctx, ns, self, args...)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.Stderr = stderr
	return cmd, nil
}

// startRole starts role with args in namespace ns, its stderr to stderr,
// and waits up to 30 s for its ready line; stop ends it.
func startRole(ctx context.Context, ns, role string, stderr io.Writer, args ...string) (*roleProcess, error) {
	cmd, err := roleCmd(ctx, ns, role, stderr, args...)
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &roleProcess{cmd: cmd, stdin: stdin, waited: make(chan error, 1)}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			if sc.Text() == readyLine && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		p.waited <- cmd.Wait()
	}()
	select {
	case ok := <-ready:
		if ok {
			return p, nil
		}
		return nil, fmt.Errorf("%s exited before it was ready: %w", role, <-p.waited)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-p.waited
		return nil, fmt.Errorf("%s not ready after 30s", role)
	}
}

// stop closes the role's stdin and waits up to 30 s for it to exit (then
// kills it).
func (p *roleProcess) stop() error {
	_ = p.stdin.Close()
	select {
	case err := <-p.waited:
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.waited
		return errors.New("did not stop within 30s; killed")
	}
}
