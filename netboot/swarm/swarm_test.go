package swarm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
)

// rig is an image file, an HTTP server (tracker at /announce, the image at
// /image.raw as its web seed, counting the bytes it serves) and a seeder,
// all on loopback.
type rig struct {
	dir, path string
	data      []byte
	digest    string
	tracker   *Tracker
	srv       *httptest.Server
	served    atomic.Int64 // image bytes sent over HTTP
	onImage   func()       // called on every image request, if set
	seeder    *Seeder
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func newRig(t *testing.T, size int, seed bool) *rig {
	t.Helper()
	r := &rig{dir: t.TempDir(), data: make([]byte, size), tracker: NewTracker(time.Minute)}
	if _, err := rand.Read(r.data); err != nil {
		t.Fatal(err)
	}
	r.digest = digestOf(r.data)
	r.path = filepath.Join(r.dir, "image.raw")
	if err := os.WriteFile(r.path, r.data, 0o644); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /announce", r.tracker)
	mux.HandleFunc("GET /image.raw", func(w http.ResponseWriter, req *http.Request) {
		if r.onImage != nil {
			r.onImage()
		}
		cw := &countingWriter{ResponseWriter: w, n: &r.served}
		http.ServeFile(cw, req, r.path)
	})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	if seed {
		r.startSeeder(t, 0)
	}
	return r
}

// startSeeder starts the rig's seeder, its upload capped at rate bytes/s
// (0 = none).
func (r *rig) startSeeder(t *testing.T, rate int64) {
	t.Helper()
	s, err := NewSeeder(SeederConfig{ListenAddr: "127.0.0.1:0", Announce: r.srv.URL + "/announce", UploadRate: rate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	r.seeder = s
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

// metaInfo returns the rig's .torrent: from the seeder when there is one,
// else built here; web seed as asked.
func (r *rig) metaInfo(t *testing.T, webSeed bool) *metainfo.MetaInfo {
	t.Helper()
	ws := ""
	if webSeed {
		ws = r.srv.URL + "/image.raw"
	}
	if r.seeder != nil {
		mi, err := r.seeder.Seed(context.Background(), "n1", r.path, r.digest, ws)
		if err != nil {
			t.Fatal(err)
		}
		r.awaitSeederAnnounce(t, mi.HashInfoBytes().HexString())
		return mi
	}
	info, err := Build(context.Background(), r.path)
	if err != nil {
		t.Fatal(err)
	}
	var seeds []string
	if ws != "" {
		seeds = []string{ws}
	}
	mi, err := NewMetaInfo(info, r.srv.URL+"/announce", seeds)
	if err != nil {
		t.Fatal(err)
	}
	return mi
}

// awaitSeederAnnounce waits until the tracker knows the seeder of ih: the
// seeder announces in the background, and a leecher that announces first
// hears of no peer and (anacrolix waits at least a minute between
// announces) would not ask again within a test's time.
func (r *rig) awaitSeederAnnounce(t *testing.T, ih string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, seeds := r.tracker.Peers(ih); seeds > 0 {
			return
		}
	}
	t.Fatalf("the seeder of %s did not announce within 10 s", ih)
}

// buffer is an in-memory Target.
type buffer struct {
	mu sync.Mutex
	b  []byte
}

func newBuffer(n int) *buffer { return &buffer{b: make([]byte, n)} }

func (b *buffer) ReadAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return copy(p, b.b[off:]), nil
}

func (b *buffer) WriteAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return copy(b.b[off:], p), nil
}

func (b *buffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.b...)
}

func newLeecher(t *testing.T, cfg LeecherConfig) *Leecher {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	l, err := NewLeecher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func download(t *testing.T, ctx context.Context, l *Leecher, mi *metainfo.MetaInfo, size int, o Options) (*buffer, Progress) {
	t.Helper()
	buf := newBuffer(size)
	x, err := l.Add(mi, buf, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Wait(ctx, 0, nil); err != nil {
		t.Fatalf("download: %v (progress %+v)", err, x.Progress())
	}
	return buf, x.Progress()
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestSeederAndPeers: four leechers at once, seeder and tracker only (no
// web seed); every copy is byte-identical and the seeder sent less than
// four copies' worth when the leechers shared pieces.
func TestSeederAndPeers(t *testing.T) {
	const size = 6<<20 + 12345
	r := newRig(t, size, true)
	mi := r.metaInfo(t, false)
	ctx := testCtx(t, time.Minute)
	start := time.Now()
	var wg sync.WaitGroup
	res := make([]Progress, 4)
	bufs := make([]*buffer, 4)
	for i := range res {
		l := newLeecher(t, LeecherConfig{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufs[i], res[i] = download(t, ctx, l, mi, size, Options{})
		}()
	}
	wg.Wait()
	for i, b := range bufs {
		if b == nil || !bytes.Equal(b.bytes(), r.data) {
			t.Fatalf("leecher %d: copy differs", i)
		}
	}
	st, ok := r.seeder.Stats(r.digest)
	if !ok {
		t.Fatal("seeder lost the torrent")
	}
	var fromPeers int64
	for _, p := range res {
		fromPeers += p.FromPeers
	}
	t.Logf("4 leechers of %d bytes in %v; seeder sent %d bytes (%.2f copies), peers received %d", size, time.Since(start), st.Sent, float64(st.Sent)/size, fromPeers)
	if r.served.Load() != 0 {
		t.Errorf("HTTP served %d image bytes without a web seed", r.served.Load())
	}
}

// TestWebSeedFallback: the web seed is the fallback of a node that gets
// no pieces from the swarm, from the start (no seeder) or when its
// seeder goes away; by default (< 0) or while the seeder feeds the node
// the image server's HTTP sends nothing.
func TestWebSeedFallback(t *testing.T) {
	const size = 3<<20 + 777
	for _, tc := range []struct {
		name      string
		seed      bool
		seedRate  int64         // seeder upload cap, bytes/s (0 = none)
		stopAfter time.Duration // seeder closes this long after the start (0 = never)
		stall     time.Duration // Options.WebSeedStall
		wantPeers bool          // some bytes from the seeder
		wantWeb   bool          // some bytes over HTTP
	}{
		{name: "seeder feeds, HTTP idle", seed: true, wantPeers: true},
		{name: "no seeder, HTTP after the stall", stall: 300 * time.Millisecond, wantWeb: true},
		{name: "no seeder, HTTP from the start", stall: -1, wantWeb: true},
		{name: "seeder gone, HTTP finishes", seed: true, seedRate: 256 << 10, stopAfter: time.Second,
			stall: 300 * time.Millisecond, wantPeers: true, wantWeb: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, size, false)
			var firstHTTP atomic.Int64 // unix ns of the first image request
			r.onImage = func() { firstHTTP.CompareAndSwap(0, time.Now().UnixNano()) }
			if tc.seed {
				r.startSeeder(t, tc.seedRate)
			}
			mi := r.metaInfo(t, true)
			l := newLeecher(t, LeecherConfig{})
			if tc.stopAfter > 0 {
				time.AfterFunc(tc.stopAfter, func() { _ = r.seeder.Close() })
			}
			start := time.Now()
			buf := newBuffer(size)
			x, err := l.Add(mi, buf, Options{WebSeedStall: tc.stall})
			if err != nil {
				t.Fatal(err)
			}
			if err := x.Wait(testCtx(t, time.Minute), 0, nil); err != nil {
				t.Fatalf("download: %v (progress %+v)", err, x.Progress())
			}
			p := x.Progress()
			if !bytes.Equal(buf.bytes(), r.data) {
				t.Fatal("copy differs")
			}
			if (p.FromPeers > 0) != tc.wantPeers || (p.FromWebSeeds > 0) != tc.wantWeb {
				t.Errorf("from peers %d, from web seeds %d; want peers %v, web %v", p.FromPeers, p.FromWebSeeds, tc.wantPeers, tc.wantWeb)
			}
			if !tc.wantWeb && r.served.Load() != 0 {
				t.Errorf("HTTP served %d image bytes to a node the seeder fed", r.served.Load())
			}
			if first := firstHTTP.Load(); tc.stall > 0 && first != 0 && time.Unix(0, first).Sub(start) < tc.stall {
				t.Errorf("first web-seed request %v after the start, before the %v stall", time.Unix(0, first).Sub(start), tc.stall)
			}
			t.Logf("%d bytes in %v: %d from peers, %d from web seeds, HTTP served %d", size, time.Since(start), p.FromPeers, p.FromWebSeeds, r.served.Load())
		})
	}
}

// TestSeederRequestCap: a node keeps at most seederRequests requests
// outstanding at the image server's seeder (which advertises 1024) and
// the library's 1024 at other peers. The node's download is rate-limited
// so that its connections can be looked at while it lasts (two complete
// peers close theirs).
func TestSeederRequestCap(t *testing.T) {
	const size = 1 << 20
	r := newRig(t, size, true)
	mi := r.metaInfo(t, false)
	done := newLeecher(t, LeecherConfig{})
	download(t, testCtx(t, time.Minute), done, mi, size, Options{})
	l := newLeecher(t, LeecherConfig{DownloadRate: 256 << 10})
	x, err := l.Add(mi, newBuffer(size), Options{Peers: []string{done.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	caps := map[string]int{} // peer's client version → its request cap
	err = x.Wait(testCtx(t, time.Minute), 20*time.Millisecond, func(Progress) {
		for _, pc := range x.t.PeerConns() {
			if name, ok := pc.PeerClientName.Load().(string); ok {
				caps[name] = int(pc.PeerMaxRequests)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 2 || caps[seederVersion] != seederRequests || caps[leecherVersion] != maxQueuedRequests {
		t.Fatalf("request caps by peer %v, want %q: %d, %q: %d", caps, seederVersion, seederRequests, leecherVersion, maxQueuedRequests)
	}
}

// corrupting reads like r but flips one byte in every read.
type corrupting struct{ r *os.File }

func (c corrupting) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	if n > 0 {
		p[n/2] ^= 0xff
	}
	return n, err
}

// TestCorruptPeer: a peer that claims every piece and sends flipped bytes
// is caught by the piece hashes; the download still completes from the
// honest (rate-limited) seeder with the right digest. The two peers have
// their own loopback addresses, as hosts of a rack have.
func TestCorruptPeer(t *testing.T) {
	const size = 2 << 20
	r := newRig(t, size, false)
	info, err := Build(context.Background(), r.path)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := NewMetaInfo(info, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	honest, err := NewSeeder(SeederConfig{ListenAddr: "127.0.0.1:0", UploadRate: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = honest.Close() })
	if _, err := honest.Seed(context.Background(), "n1", r.path, r.digest, ""); err != nil {
		t.Fatal(err)
	}
	evil := evilSeeder(t, mi, info, r.path)
	l := newLeecher(t, LeecherConfig{})
	start := time.Now()
	buf, p := download(t, testCtx(t, 2*time.Minute), l, mi, size, Options{Peers: []string{evil, honest.Addr()}})
	if got := digestOf(buf.bytes()); got != r.digest {
		t.Fatalf("digest %s, want %s", got, r.digest)
	}
	if p.BadPieces == 0 {
		t.Fatal("no piece failed its hash check: the corrupting peer sent nothing")
	}
	t.Logf("%d failed piece hash checks (per dirtying connection); %d bytes in %v", p.BadPieces, size, time.Since(start))
}

// evilSeeder seeds mi from a storage that corrupts every read and returns
// its address.
func evilSeeder(t *testing.T, mi *metainfo.MetaInfo, info metainfo.Info, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	// Its own address: the library bans a corrupting peer by IP.
	cl, err := newClient(clientConfig{listen: "127.0.0.2:0", acceptOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	spec, err := torrent.TorrentSpecFromMetaInfoErr(mi)
	if err != nil {
		t.Fatal(err)
	}
	spec.Storage = newSpan(corrupting{f}, nil, info.NumPieces(), true)
	if _, _, err := cl.AddTorrentSpec(spec); err != nil {
		t.Fatal(err)
	}
	return listenAddr(cl)
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "unreadable")
	if err := os.WriteFile(unreadable, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path string }{
		{"missing", filepath.Join(dir, "nope")},
		{"directory", dir},
		{"empty", empty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(context.Background(), tc.path)
			if !errors.Is(err, ErrImage) {
				t.Fatalf("Build(%s) = %v, want ErrImage", tc.path, err)
			}
		})
	}
	s, err := NewSeeder(SeederConfig{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Seed(context.Background(), "n1", filepath.Join(dir, "nope"), "sha256:00", ""); !errors.Is(err, ErrImage) {
		t.Fatalf("Seed of a missing file = %v, want ErrImage", err)
	}
}

func TestDecode(t *testing.T) {
	r := newRig(t, 100<<10, false)
	mi := r.metaInfo(t, true)
	good, err := Encode(mi)
	if err != nil {
		t.Fatal(err)
	}
	ih := mi.HashInfoBytes().HexString()
	other := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name string
		data []byte
		want string
		err  error
	}{
		{"match", good, ih, nil},
		{"any", good, "", nil},
		{"mismatch", good, other, ErrInfoHashMismatch},
		{"garbage", []byte("not bencode"), "", ErrMetaInfo},
		{"truncated", good[:len(good)/2], "", ErrMetaInfo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, info, err := Decode(tc.data, tc.want)
			if !errors.Is(err, tc.err) || (tc.err != nil) != (err != nil) {
				t.Fatalf("Decode = %v, want %v", err, tc.err)
			}
			if err == nil && info.Length != 100<<10 {
				t.Errorf("length %d", info.Length)
			}
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /t", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(good) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if _, _, err := Fetch(context.Background(), srv.Client(), srv.URL+"/t", ih); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if _, _, err := Fetch(context.Background(), srv.Client(), srv.URL+"/t", other); !errors.Is(err, ErrInfoHashMismatch) {
		t.Fatalf("Fetch with another info hash = %v, want ErrInfoHashMismatch", err)
	}
	if _, _, err := Fetch(context.Background(), srv.Client(), srv.URL+"/missing", ih); !errors.Is(err, ErrMetaInfo) {
		t.Fatalf("Fetch of a 404 = %v, want ErrMetaInfo", err)
	}
}

// TestSeederSharesDigest: two keys of one digest share a torrent; it
// lives until both are stopped.
func TestSeederSharesDigest(t *testing.T) {
	r := newRig(t, 64<<10, true)
	a, err := r.seeder.Seed(context.Background(), "n1", r.path, r.digest, "http://x/exports/n1/image.raw")
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(r.dir, "copy.raw")
	if err := os.WriteFile(copyPath, r.data, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := r.seeder.Seed(context.Background(), "n2", copyPath, r.digest, "http://x/exports/n2/image.raw")
	if err != nil {
		t.Fatal(err)
	}
	if a.HashInfoBytes() != b.HashInfoBytes() {
		t.Fatal("two exports of one digest got different info hashes")
	}
	if a.UrlList[0] == b.UrlList[0] {
		t.Fatal("web seeds not per export")
	}
	short := filepath.Join(r.dir, "short.raw")
	if err := os.WriteFile(short, r.data[:10], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.seeder.Seed(context.Background(), "n3", short, r.digest, ""); !errors.Is(err, ErrImage) {
		t.Fatalf("Seed of a file of another size = %v, want ErrImage", err)
	}
	r.seeder.Stop("n1")
	if st, ok := r.seeder.Stats(r.digest); !ok || st.Sources != 1 {
		t.Fatalf("after stopping n1: %+v, %v", st, ok)
	}
	r.seeder.Stop("n2")
	if _, ok := r.seeder.Stats(r.digest); ok {
		t.Fatal("torrent still seeded without sources")
	}
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func TestKeepSeeding(t *testing.T) {
	var gone atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if gone.Load() {
			http.NotFound(w, nil)
		}
	}))
	defer srv.Close()
	if got := KeepSeeding(context.Background(), srv.Client(), srv.URL, 50*time.Millisecond, 10*time.Millisecond); got != StopTime {
		t.Fatalf("KeepSeeding = %q, want %q", got, StopTime)
	}
	gone.Store(true)
	if got := KeepSeeding(context.Background(), srv.Client(), srv.URL, time.Minute, 10*time.Millisecond); got != StopWithdrawn {
		t.Fatalf("KeepSeeding = %q, want %q", got, StopWithdrawn)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := KeepSeeding(ctx, srv.Client(), srv.URL, time.Minute, time.Minute); got != StopContext {
		t.Fatalf("KeepSeeding = %q, want %q", got, StopContext)
	}
}
