package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rackflow/rackflow/netboot/swarm"
)

// roleEnv names the role of a re-executed benchmark binary ("server" or
// "client"); unset in the benchmark itself.
const roleEnv = "RACKFLOW_SWARMBENCH_ROLE"

// Ports in the testbed's namespaces.
const (
	httpPort = "8080" // image (web seed) and tracker, on the server
	peerPort = "6881" // BitTorrent, on the server and every client
)

// serverReady is the server's first line on stdout.
type serverReady struct {
	URL     string `json:"url"`     // the image over HTTP
	Torrent string `json:"torrent"` // path of the .torrent ("" for HTTP)
}

// serverDone is the server's last line, once its stdin is closed.
type serverDone struct {
	SeederSent int64 `json:"seeder_sent"` // piece data the seeder sent to peers, bytes
}

// clientResult is a client's line once its download is complete.
type clientResult struct {
	Seconds   float64 `json:"seconds"` // from "go" to the last verified byte
	Bytes     int64   `json:"bytes"`
	FromPeers int64   `json:"from_peers"`
	FromWeb   int64   `json:"from_web"` // web seed (swarm) or plain HTTP body
	ToPeers   int64   `json:"to_peers"`
}

// childMain runs a re-executed binary's role and returns its exit code.
func childMain(role string, args []string) int {
	var err error
	switch role {
	case "server":
		err = serverMain(args)
	case "client":
		err = clientMain(args)
	default:
		err = fmt.Errorf("unknown %s %q", roleEnv, role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		return 1
	}
	return 0
}

// serverMain serves the image over HTTP (with a tracker at /announce) and,
// with -swarm, seeds it; it writes serverReady, waits for stdin to close,
// then writes serverDone.
func serverMain(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	image := fs.String("image", "", "image file")
	digest := fs.String("digest", "", `image digest "sha256:<hex>"`)
	useSwarm := fs.Bool("swarm", false, "seed the image and write its .torrent")
	torrentPath := fs.String("torrent", "", "where to write the .torrent (with -swarm)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(serverIP, httpPort))
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String() + "/image"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /image", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, *image) })
	tracker := swarm.NewTracker(0)
	mux.Handle("GET /announce", tracker)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	ready := serverReady{URL: url}
	var seeder *swarm.Seeder
	if *useSwarm {
		seeder, err = swarm.NewSeeder(swarm.SeederConfig{
			ListenAddr: net.JoinHostPort(serverIP, peerPort),
			Announce:   "http://" + ln.Addr().String() + "/announce",
		})
		if err != nil {
			return err
		}
		defer seeder.Close()
		mi, err := seeder.Seed(context.Background(), "bench", *image, *digest, url)
		if err != nil {
			return err
		}
		// Clients that announce before the seeder would not hear of it
		// for a minute (the library's shortest re-announce interval).
		if err := awaitSeed(tracker, mi.HashInfoBytes().HexString(), 10*time.Second); err != nil {
			return err
		}
		data, err := swarm.Encode(mi)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*torrentPath, data, 0o644); err != nil {
			return err
		}
		ready.Torrent = *torrentPath
	}
	if err := json.NewEncoder(os.Stdout).Encode(ready); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	var done serverDone
	if seeder != nil {
		st, _ := seeder.Stats(*digest)
		done.SeederSent = st.Sent
	}
	return json.NewEncoder(os.Stdout).Encode(done)
}

// awaitSeed waits until tracker counts a seed of the info hash ih (hex).
func awaitSeed(tracker *swarm.Tracker, ih string, within time.Duration) error {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, seeds := tracker.Peers(ih); seeds > 0 {
			return nil
		}
	}
	return fmt.Errorf("the seeder did not announce %s within %s", ih, within)
}

// clientMain downloads the image once "go" arrives on stdin, into -out,
// over plain HTTP (checking its SHA-256) or through the swarm (every piece
// SHA-1 checked); it writes a clientResult, then (swarm) keeps seeding
// until stdin closes.
func clientMain(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	method := fs.String("method", "", "http or swarm")
	url := fs.String("url", "", "image URL (http)")
	torrentPath := fs.String("torrent", "", ".torrent file (swarm)")
	out := fs.String("out", "", "file to download into")
	digest := fs.String("digest", "", `expected "sha256:<hex>" (http)`)
	size := fs.Int64("size", 0, "expected size, bytes")
	timeout := fs.Duration("timeout", time.Hour, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer os.Remove(*out)
	defer f.Close()
	stdin := bufio.NewReader(os.Stdin)
	emit := json.NewEncoder(os.Stdout).Encode

	switch *method {
	case "http":
		if err := emit(map[string]bool{"ready": true}); err != nil {
			return err
		}
		if err := awaitGo(stdin); err != nil {
			return err
		}
		start := time.Now()
		n, err := httpGet(ctx, *url, f, *digest, *size)
		if err != nil {
			return err
		}
		return emit(clientResult{Seconds: time.Since(start).Seconds(), Bytes: n, FromWeb: n})
	case "swarm":
		data, err := os.ReadFile(*torrentPath)
		if err != nil {
			return err
		}
		mi, _, err := swarm.Decode(data, "")
		if err != nil {
			return err
		}
		ip, err := ownIP()
		if err != nil {
			return err
		}
		l, err := swarm.NewLeecher(swarm.LeecherConfig{ListenAddr: net.JoinHostPort(ip, peerPort)})
		if err != nil {
			return err
		}
		defer l.Close()
		if err := emit(map[string]bool{"ready": true}); err != nil {
			return err
		}
		if err := awaitGo(stdin); err != nil {
			return err
		}
		start := time.Now()
		x, err := l.Add(mi, f, swarm.Options{})
		if err != nil {
			return err
		}
		if err := x.Wait(ctx, 0, nil); err != nil {
			return err
		}
		p := x.Progress()
		if err := emit(clientResult{Seconds: time.Since(start).Seconds(), Bytes: p.Bytes,
			FromPeers: p.FromPeers, FromWeb: p.FromWebSeeds, ToPeers: p.ToPeers}); err != nil {
			return err
		}
		// Seed until the benchmark closes stdin (every client is done).
		_, _ = io.Copy(io.Discard, stdin)
		return nil
	default:
		return fmt.Errorf("-method %q: want http or swarm", *method)
	}
}

// awaitGo reads stdin's next line, which must be "go".
func awaitGo(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("waiting for go: %w", err)
	}
	if strings.TrimSpace(line) != "go" {
		return fmt.Errorf("waiting for go: got %q", line)
	}
	return nil
}

// httpGet downloads url into w, checking its size and SHA-256.
func httpGet(ctx context.Context, url string, w io.Writer, digest string, size int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: %w", url, err)
	}
	if n != size {
		return n, fmt.Errorf("GET %s: %d bytes, want %d", url, n, size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return n, fmt.Errorf("GET %s: digest %s, want %s", url, got, digest)
	}
	return n, nil
}

// ownIP returns the address of linkDev in the current namespace.
func ownIP() (string, error) {
	ifc, err := net.InterfaceByName(linkDev)
	if err != nil {
		return "", err
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("%s has no IPv4 address", linkDev)
}

// child is a re-executed benchmark binary running in a namespace: JSON
// lines on its stdout, commands on its stdin.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan []byte // closed at EOF
	errb  *tailBuffer
}

// startChild runs self with role in namespace ns (ip netns exec), with
// GOMAXPROCS=1 and GOGC=400: every simulated host gets one P and collects
// garbage less often, since they all share this host's few cores (more Ps
// per process only add scheduler wake-ups: 32 swarm clients, 256 KiB
// pieces, used 104 CPU-seconds with the default, 89 with one; GOGC=400
// took 32 clients of 32 MiB from 51–57 to 42–49 CPU-seconds). ctx ending
// kills it.
func startChild(ctx context.Context, name, ns, self, role string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, self}, args...)...)
	env := []string{roleEnv + "=" + role, "GOMAXPROCS=1", "GOGC=400"}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.Contains(strings.ToLower(k), "proxy") && k != roleEnv && k != "GOMAXPROCS" && k != "GOGC" {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	c := &child{name: name, cmd: cmd, lines: make(chan []byte, 4), errb: &tailBuffer{max: 4096}}
	cmd.Stderr = c.errb
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- append([]byte(nil), sc.Bytes()...)
		}
	}()
	return c, nil
}

// next decodes the child's next line into v.
func (c *child) next(ctx context.Context, v any) error {
	select {
	case line, ok := <-c.lines:
		if !ok {
			return fmt.Errorf("%s exited early: %s", c.name, c.errText())
		}
		if err := json.Unmarshal(line, v); err != nil {
			return fmt.Errorf("%s: bad line %q: %w", c.name, line, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", c.name, context.Cause(ctx))
	}
}

// send writes one line to the child's stdin.
func (c *child) send(line string) error {
	_, err := io.WriteString(c.stdin, line+"\n")
	return err
}

// finish closes the child's stdin and waits for it to exit (at most
// grace, then it is killed); it returns its CPU time (user + system).
func (c *child) finish(grace time.Duration) (time.Duration, error) {
	_ = c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		err = errors.Join(fmt.Errorf("%s did not exit within %s: killed", c.name, grace), <-done)
	}
	var cpu time.Duration
	if ps := c.cmd.ProcessState; ps != nil {
		cpu = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		return cpu, fmt.Errorf("%s: %w: %s", c.name, err, c.errText())
	}
	return cpu, nil
}

func (c *child) errText() string { return strings.TrimSpace(c.errb.String()) }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	mu  sync.Mutex
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
