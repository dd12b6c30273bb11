package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackflow/rackflow/netboot"
)

// fakeSys is a /sys/block and /dev in a temporary directory, with block
// devices on a PCI or a USB path as the kernel lays them out.
type fakeSys struct {
	t                *testing.T
	root, block, dev string
}

func newFakeSys(t *testing.T) *fakeSys {
	root := t.TempDir()
	s := &fakeSys{t: t, root: root, block: filepath.Join(root, "sys", "block"), dev: filepath.Join(root, "dev")}
	for _, d := range []string{s.block, s.dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// add creates the device dir under devPath (relative to sys/devices), its
// /sys/block link, its attributes and, with node, its /dev entry. It may
// run in a goroutine (a drive plugged in later), so it reports with Error.
func (s *fakeSys) add(name, devPath, removable, size string, node bool) {
	s.t.Helper()
	dir := filepath.Join(s.root, "sys", "devices", devPath, "block", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Error(err)
		return
	}
	for f, v := range map[string]string{"removable": removable, "size": size, "ro": "0"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v+"\n"), 0o644); err != nil {
			s.t.Error(err)
			return
		}
	}
	rel, _ := filepath.Rel(s.block, dir)
	if err := os.Symlink(rel, filepath.Join(s.block, name)); err != nil {
		s.t.Error(err)
		return
	}
	if node {
		if err := os.WriteFile(filepath.Join(s.dev, name), nil, 0o600); err != nil {
			s.t.Error(err)
			return
		}
	}
}

const (
	pciDisk = "pci0000:00/0000:00:05.0/virtio2"
	usbDisk = "pci0000:00/0000:00:04.0/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0"
)

func TestUSBDisks(t *testing.T) {
	s := newFakeSys(t)
	s.add("vda", pciDisk, "0", "2048", true)
	s.add("sda", usbDisk, "1", "2048", true)
	s.add("sdb", "pci0000:00/0000:00:04.0/usb3/3-2/3-2:1.0/host1/target1:0:0/1:0:0:0", "0", "4096", true)
	s.add("sdc", "pci0000:00/0000:00:04.0/usb3/3-3/3-3:1.0/host2/target2:0:0/2:0:0:0", "1", "0", true)   // card reader, no card
	s.add("sdd", "pci0000:00/0000:00:04.0/usb3/3-4/3-4:1.0/host3/target3:0:0/3:0:0:0", "1", "64", false) // no /dev node yet
	s.add("sde", "pci0000:00/0000:00:1f.2/ata1/host4/target4:0:0/4:0:0:0", "0", "64", true)              // SATA, not USB
	got, err := usbDisks(s.block, s.dev)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"sda": true, "sdb": false}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("usbDisks = %v, want %v", got, want)
	}
	if _, err := usbDisks(filepath.Join(s.root, "missing"), s.dev); err == nil || !strings.HasPrefix(err.Error(), "usb:") {
		t.Errorf("missing /sys/block: %v", err)
	}
}

func TestCheckAssignment(t *testing.T) {
	req := netboot.IdentifyRequest{MAC: "52:54:00:aa:bb:01", Scope: "r01"}
	good := netboot.IdentifyAssignment{Scope: "r01", Slot: 3, Name: "r01n03", IP: "10.1.0.13/24", MAC: "52:54:00:AA:BB:01"}
	tests := []struct {
		name   string
		mod    func(*netboot.IdentifyAssignment)
		prefix int
		want   string // address, or "" for an error
	}{
		{"with prefix", func(*netboot.IdentifyAssignment) {}, 16, "10.1.0.13/24"},
		{"no prefix: the lease's", func(a *netboot.IdentifyAssignment) { a.IP = "10.1.0.13" }, 16, "10.1.0.13/16"},
		{"no prefix, no lease", func(a *netboot.IdentifyAssignment) { a.IP = "10.1.0.13" }, 0, "10.1.0.13/32"},
		{"another MAC", func(a *netboot.IdentifyAssignment) { a.MAC = "52:54:00:aa:bb:02" }, 24, ""},
		{"another scope", func(a *netboot.IdentifyAssignment) { a.Scope = "r02" }, 24, ""},
		{"bad name", func(a *netboot.IdentifyAssignment) { a.Name = "R01 n03" }, 24, ""},
		{"IPv6", func(a *netboot.IdentifyAssignment) { a.IP = "fd00::13/64" }, 24, ""},
		{"unspecified", func(a *netboot.IdentifyAssignment) { a.IP = "0.0.0.0/24" }, 24, ""},
		{"not an address", func(a *netboot.IdentifyAssignment) { a.IP = "r01n03" }, 24, ""},
		{"zero prefix", func(a *netboot.IdentifyAssignment) { a.IP = "10.1.0.13/0" }, 24, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := good
			tt.mod(&a)
			id, err := checkAssignment(a, req, tt.prefix)
			switch {
			case tt.want == "" && err == nil:
				t.Fatalf("accepted %+v as %s", a, id.addr)
			case tt.want != "" && (err != nil || id.addr.String() != tt.want):
				t.Fatalf("got %v, %v; want %s", id.addr, err, tt.want)
			}
		})
	}
}

// identifyServer plays POST /v1/identify: answers from a plan in order,
// records confirmations and where they came from, and first answers
// noIdentify times 409 "no-identify".
type identifyServer struct {
	mu         sync.Mutex
	noIdentify int
	refuse     bool // answer 422 "mac-refused"
	assigned   map[string]netboot.IdentifyAssignment
	confirms   []string // remote IPs of confirmations
	calls      int
}

func (s *identifyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	var req netboot.IdentifyRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Token != "tok" || req.Scope != "r01" {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	if s.noIdentify > 0 {
		s.noIdentify--
		reply(http.StatusConflict, map[string]string{"error": "no identification running", "code": netboot.IdentifyCodeNoIdentify})
		return
	}
	if s.refuse {
		reply(http.StatusUnprocessableEntity, map[string]string{"error": "MAC refused: already identified elsewhere", "code": netboot.IdentifyCodeMACRefused})
		return
	}
	a, ok := s.assigned[req.MAC]
	if req.Confirm {
		if !ok {
			reply(http.StatusUnprocessableEntity, map[string]string{"error": "no assignment", "code": netboot.IdentifyCodeMACRefused})
			return
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		s.confirms = append(s.confirms, host)
	} else if !ok {
		a = netboot.IdentifyAssignment{Scope: req.Scope, Slot: 7, Name: "r01n07", IP: "127.0.0.57", MAC: req.MAC}
		s.assigned[req.MAC] = a
	}
	reply(http.StatusOK, a)
}

type recordedIdentity struct {
	iface, addr, hostname string
}

type recordingApplier struct {
	mu      sync.Mutex
	applied []recordedIdentity
}

func (r *recordingApplier) applyIdentity(iface string, addr *net.IPNet, hostname string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, recordedIdentity{iface, addr.String(), hostname})
	return nil
}

// identifyRig runs the agent in identify mode with --no-dhcp against an
// identifyServer, on fake sysfs, with a recording applier.
type identifyRig struct {
	sys     *fakeSys
	server  *identifyServer
	srv     *httptest.Server
	applier *recordingApplier
}

func newIdentifyRig(t *testing.T) *identifyRig {
	r := &identifyRig{sys: newFakeSys(t), server: &identifyServer{assigned: map[string]netboot.IdentifyAssignment{}}, applier: &recordingApplier{}}
	r.srv = httptest.NewServer(r.server)
	t.Cleanup(r.srv.Close)
	r.sys.add("vda", pciDisk, "0", "2048", true)
	return r
}

func (r *identifyRig) run(t *testing.T, words []string, usbWait time.Duration) (bool, []string) {
	t.Helper()
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(cmdline, []byte(strings.Join(words, " ")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	con, buf := testConsole()
	a := &agent{
		con: con, cmdlinePath: cmdline, timeout: 30 * time.Second, noDHCP: true,
		ident: &identifyMode{
			sysBlock: r.sys.block, devDir: r.sys.dev, usbWait: usbWait, usbPoll: 5 * time.Millisecond,
			client: r.srv.Client(),
			confirmClient: func(local net.IP) *http.Client {
				return &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}).DialContext}}
			},
			retry:  fastRetry(5),
			apply:  r.applier,
			hwAddr: func(string) (net.HardwareAddr, error) { return net.ParseMAC("52:54:00:aa:bb:01") },
		},
	}
	ok := a.run(context.Background())
	t.Logf("output:\n%s", buf.String())
	return ok, buf.lines()
}

// insertLater plugs a USB drive in 50 ms from now, once the agent is
// looking.
func (r *identifyRig) insertLater(name string) {
	done := make(chan struct{})
	r.sys.t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		time.Sleep(50 * time.Millisecond)
		r.sys.add(name, usbDisk, "1", "2048", true)
	}()
}

func (r *identifyRig) words() []string {
	a := netboot.IdentifyArgs{URL: r.srv.URL + "/v1/identify", Scope: "r01", Token: "tok"}
	return append([]string{"console=ttyS0", "rackflow.iface=lo"}, a.Encode()...)
}

func TestIdentifyMode(t *testing.T) {
	r := newIdentifyRig(t)
	r.server.noIdentify = 2 // the operator starts the identification late
	// A USB disk present at boot is not the insertion.
	r.sys.add("sdb", "pci0000:00/0000:00:04.0/usb1/1-1/1-1:1.0/host1/target1:0:0/1:0:0:0", "1", "64", true)
	r.insertLater("sda")
	ok, lines := r.run(t, r.words(), 10*time.Second)
	if !ok || lines[len(lines)-1] != "rackflow-agent: done" {
		t.Fatalf("identify mode failed: %v", lines)
	}
	for _, want := range []string{
		"identify scope=r01 iface=lo mac=52:54:00:aa:bb:01",
		"waiting for a USB drive (up to 10s; present: sdb)",
		"usb drive sda (removable, " + filepath.Join(r.sys.dev, "sda") + ") after ",
		"retry identify: no identification running for the scope yet",
		"identified slot 7 name r01n07 ip 127.0.0.57/32 (HTTP 200)",
		"applied hostname r01n07 address 127.0.0.57/32 on lo",
		"confirmed from 127.0.0.57 (HTTP 200)",
	} {
		if !strings.Contains(strings.Join(lines, "\n"), want) {
			t.Errorf("no line with %q", want)
		}
	}
	if len(r.applier.applied) != 1 || r.applier.applied[0] != (recordedIdentity{"lo", "127.0.0.57/32", "r01n07"}) {
		t.Errorf("applied %+v", r.applier.applied)
	}
	// The confirmation came from the production address.
	if len(r.server.confirms) != 1 || r.server.confirms[0] != "127.0.0.57" {
		t.Errorf("confirmations from %v, want [127.0.0.57]", r.server.confirms)
	}
}

func TestIdentifyModeFailures(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(*identifyRig)
		words   func(*identifyRig) []string
		wait    time.Duration
		failed  string // the FAILED line's start
		applied bool
	}{
		{"no USB drive", func(*identifyRig) {}, (*identifyRig).words, 50 * time.Millisecond,
			"FAILED usb: no USB drive inserted within 50ms", false},
		{"MAC refused", func(r *identifyRig) { r.server.refuse = true; r.insertLater("sda") }, (*identifyRig).words, 5 * time.Second,
			"FAILED identify: refused with HTTP 422", false},
		{"missing scope", func(*identifyRig) {}, func(r *identifyRig) []string {
			return []string{"rackflow.identify=" + r.srv.URL + "/v1/identify", "rackflow.token=tok"}
		}, time.Second, "FAILED args: agent arguments: missing rackflow.scope", false},
		{"bad iface", func(*identifyRig) {}, func(r *identifyRig) []string {
			return append(r.words(), "rackflow.iface=a/b")
		}, time.Second, "FAILED args: invalid rackflow.iface=a/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newIdentifyRig(t)
			tt.setup(r)
			ok, lines := r.run(t, tt.words(r), tt.wait)
			out := strings.Join(lines, "\n")
			if ok || lines[len(lines)-1] != "rackflow-agent: failed" || !strings.Contains(out, tt.failed) {
				t.Fatalf("want a failure with %q, got:\n%s", tt.failed, out)
			}
			if got := len(r.applier.applied) > 0; got != tt.applied {
				t.Errorf("applied %+v", r.applier.applied)
			}
		})
	}
}
