package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rackflow/rackflow/netboot"
)

// agentRig is an image server, a check-in server and a disk file for
// running the whole agent with --no-dhcp.
type agentRig struct {
	img     []byte
	images  *imageServer
	checkIn *checkInServer
	srv     *httptest.Server
	disk    string
}

func newAgentRig(t *testing.T, checkInStatuses ...int) *agentRig {
	t.Helper()
	r := &agentRig{img: testImage(200000), checkIn: &checkInServer{statuses: checkInStatuses}}
	r.images = &imageServer{img: r.img}
	mux := http.NewServeMux()
	mux.Handle("/v1/checkin", r.checkIn)
	mux.Handle("/", r.images)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	r.disk = emptyFile(t, "disk.img")
	return r
}

// args returns valid rackflow.* words plus extra words.
func (r *agentRig) args(extra ...string) []string {
	a := netboot.AgentArgs{
		Node:       "r01n01",
		CheckInURL: r.srv.URL + "/v1/checkin",
		Run:        "run-1",
		Token:      "tok",
		ImageURL:   r.srv.URL + "/image.raw",
		Digest:     digestOf(r.img),
	}
	words := append([]string{"console=ttyS0,115200", "BOOTIF=01-52-54-00-aa-bb-01"}, a.Encode()...)
	return append(append(words, "rackflow.disk="+r.disk), extra...)
}

// run runs the agent on the command line words and returns its result
// and output lines.
func (r *agentRig) run(t *testing.T, words []string) (bool, []string) {
	t.Helper()
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(cmdline, []byte(strings.Join(words, " ")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	con, buf := testConsole()
	a := &agent{
		con:            con,
		cmdlinePath:    cmdline,
		sysBlock:       filepath.Join(t.TempDir(), "no-sys-block"),
		devDir:         "/dev",
		timeout:        30 * time.Second,
		checkInTimeout: 30 * time.Second,
		noDHCP:         true,
		image:          &imageFetcher{client: r.srv.Client(), retry: fastRetry(3), stallTimeout: 5 * time.Second, con: con},
		swarm: &swarmFetcher{client: r.srv.Client(), retry: fastRetry(3), listen: "127.0.0.1:0",
			withdrawPoll: 50 * time.Millisecond, con: con},
		checkIn: &checkInPoster{client: r.srv.Client(), retry: fastRetry(3), con: con},
	}
	ok := a.run(context.Background())
	t.Logf("output:\n%s", buf.String())
	return ok, buf.lines()
}

// stepLineRE is the stable step-line format a test harness parses.
var stepLineRE = regexp.MustCompile(`^rackflow-agent: \[ *[0-9]+\.[0-9]{2}\] (start|network skipped|image written|image swarm|digest ok|check-in accepted|seeding for up to|seeding stopped:|FAILED|cannot check in:|warning|retry) `)

// checkLines fails unless lines match the want patterns one to one.
func checkLines(t *testing.T, lines []string, want ...string) {
	t.Helper()
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if !regexp.MustCompile(w).MatchString(lines[i]) {
			t.Errorf("line %d = %q, want match for %q", i, lines[i], w)
		}
		if i < len(lines)-1 && !stepLineRE.MatchString(lines[i]) {
			t.Errorf("line %d = %q is not a step line", i, lines[i])
		}
	}
}

func TestAgentSuccess(t *testing.T) {
	r := newAgentRig(t, http.StatusAccepted)
	ok, lines := r.run(t, r.args())
	if !ok {
		t.Fatal("run failed")
	}
	checkLines(t, lines,
		`^rackflow-agent: \[   1\.50\] start node=r01n01 run=run-1 disk=/.*/disk\.img iface=none$`,
		`^rackflow-agent: \[   1\.50\] network skipped \(--no-dhcp\)$`,
		`^rackflow-agent: \[   1\.50\] image written 200000 bytes in [0-9]+\.[0-9]{2}s \([0-9]+\.[0-9] MB/s\)$`,
		`^rackflow-agent: \[   1\.50\] digest ok `+regexp.QuoteMeta(digestOf(r.img))+`$`,
		`^rackflow-agent: \[   1\.50\] check-in accepted \(HTTP 202\)$`,
		`^rackflow-agent: done$`,
	)
	bodies, problems := r.checkIn.received()
	if len(problems) > 0 || len(bodies) != 1 {
		t.Fatalf("check-ins %+v, problems %q", bodies, problems)
	}
	want := netboot.CheckIn{Node: "r01n01", Run: "run-1", Token: "tok", Status: "ok", Digest: digestOf(r.img)}
	if bodies[0] != want {
		t.Errorf("check-in = %+v, want %+v", bodies[0], want)
	}
	got, _ := os.ReadFile(r.disk)
	if !bytes.Equal(got, r.img) {
		t.Errorf("disk holds %d bytes, want the image", len(got))
	}
}

func TestAgentReportsFailures(t *testing.T) {
	tests := []struct {
		name      string
		words     func(r *agentRig) []string
		failed    string // the FAILED line's reason, a regexp
		wantStart bool
	}{
		{
			name:   "image missing",
			words:  func(r *agentRig) []string { return r.args("rackflow.image=" + r.srv.URL + "/missing.raw") },
			failed: `image: HTTP 404 Not Found from http://127\.0\.0\.1:[0-9]+/missing\.raw`,
		},
		{
			name:   "digest mismatch",
			words:  func(r *agentRig) []string { return r.args("rackflow.digest=" + digestOf([]byte("other"))) },
			failed: `digest mismatch: image from http://\S+ is sha256:[0-9a-f]{64}, want sha256:[0-9a-f]{64}`,
		},
		{
			name:   "bad digest argument",
			words:  func(r *agentRig) []string { return r.args("rackflow.digest=md5:1234") },
			failed: `args: agent arguments: invalid rackflow\.digest: .*`,
		},
		{
			name:   "missing disk",
			words:  func(r *agentRig) []string { return r.args("rackflow.disk=/nonexistent/vdz") },
			failed: `disk: stat /nonexistent/vdz: no such file or directory`,
		},
		{
			name:   "bad disk word",
			words:  func(r *agentRig) []string { return r.args("rackflow.disk=") },
			failed: `args: empty rackflow\.disk`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newAgentRig(t, http.StatusAccepted)
			ok, lines := r.run(t, tt.words(r))
			if ok {
				t.Fatal("run succeeded")
			}
			var failedLines []string
			for _, l := range lines {
				if strings.Contains(l, "] FAILED ") {
					failedLines = append(failedLines, l)
				}
			}
			if len(failedLines) != 1 || !regexp.MustCompile(`\] FAILED `+tt.failed+`$`).MatchString(failedLines[0]) {
				t.Fatalf("FAILED lines = %q, want one matching %q", failedLines, tt.failed)
			}
			if !strings.HasSuffix(lines[len(lines)-2], "check-in accepted (HTTP 202)") || lines[len(lines)-1] != "rackflow-agent: failed" {
				t.Errorf("last lines = %q", lines[len(lines)-2:])
			}
			bodies, problems := r.checkIn.received()
			if len(problems) > 0 || len(bodies) != 1 {
				t.Fatalf("check-ins %+v, problems %q", bodies, problems)
			}
			c := bodies[0]
			reason := strings.SplitN(failedLines[0], "] FAILED ", 2)[1]
			if c.Status != netboot.CheckInError || c.Message != reason || c.Node != "r01n01" || c.Run != "run-1" || c.Token != "tok" {
				t.Errorf("check-in = %+v, want status error with message %q", c, reason)
			}
		})
	}
}

func TestAgentCannotReport(t *testing.T) {
	r := newAgentRig(t, http.StatusAccepted)
	var words []string
	for _, w := range r.args() {
		if !strings.HasPrefix(w, netboot.ArgCheckIn+"=") {
			words = append(words, w)
		}
	}
	ok, lines := r.run(t, words)
	if ok {
		t.Fatal("run succeeded")
	}
	checkLines(t, lines,
		`\] FAILED args: agent arguments: missing rackflow\.checkin$`,
		`\] cannot check in: `,
		`^rackflow-agent: failed$`,
	)
	if bodies, _ := r.checkIn.received(); len(bodies) != 0 || r.images.count() != 0 {
		t.Errorf("made %d check-ins and %d image requests", len(bodies), r.images.count())
	}
}

func TestAgentCheckInRefused(t *testing.T) {
	r := newAgentRig(t, http.StatusForbidden)
	ok, lines := r.run(t, r.args())
	if ok {
		t.Fatal("run succeeded")
	}
	n := len(lines)
	if n < 2 || !regexp.MustCompile(`\] FAILED check-in: refused with HTTP 403 Forbidden by \S+: token does not verify for this node and run$`).MatchString(lines[n-2]) ||
		lines[n-1] != "rackflow-agent: failed" {
		t.Fatalf("last lines = %q", lines)
	}
	if bodies, _ := r.checkIn.received(); len(bodies) != 1 {
		t.Errorf("check-ins = %d, want 1 (403 is final)", len(bodies))
	}
}

func TestAgentCheckInRetried(t *testing.T) {
	r := newAgentRig(t, http.StatusBadGateway, http.StatusAccepted)
	ok, lines := r.run(t, r.args())
	if !ok {
		t.Fatal("run failed")
	}
	if n := len(lines); !strings.Contains(lines[n-3], "] retry check-in: HTTP 502 Bad Gateway") || lines[n-1] != "rackflow-agent: done" {
		t.Fatalf("lines = %q", lines)
	}
}

func TestRealMain(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := realMain([]string{"--bogus"}, &out, &errOut); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if code := realMain([]string{"extra"}, &out, &errOut); code != 2 {
		t.Errorf("positional argument: exit %d, want 2", code)
	}
	if code := realMain([]string{"--timeout=0s"}, &out, &errOut); code != 2 {
		t.Errorf("zero timeout: exit %d, want 2", code)
	}
	out.Reset()
	missing := filepath.Join(t.TempDir(), "cmdline")
	if code := realMain([]string{"--no-dhcp", "--cmdline", missing}, &out, &errOut); code != 1 {
		t.Errorf("missing command line: exit %d, want 1", code)
	}
	if !strings.Contains(out.String(), "] FAILED args: read kernel command line: ") || !strings.HasSuffix(out.String(), "rackflow-agent: failed\n") {
		t.Errorf("output = %q", out.String())
	}
}
