package swarm

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestAria2Interop: aria2c (Debian's aria2, the client HaDeS used) fetches
// the .torrent by URL and downloads the image from a rackflow seeder found
// through the rackflow tracker, plus the web seed; the file is
// byte-identical; once with the web seed in the .torrent, once without
// (every byte from the seeder). DHT, LPD and PEX are off so nothing leaves
// loopback.
func TestAria2Interop(t *testing.T) {
	aria2, err := exec.LookPath("aria2c")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("aria2c not found (Debian package aria2, installed by .ci/run)")
		}
		t.Skip("aria2c not found (Debian package aria2)")
	}
	for _, webSeed := range []bool{true, false} {
		name := "tracker+webseed"
		if !webSeed {
			name = "tracker-only"
		}
		t.Run(name, func(t *testing.T) { aria2Download(t, aria2, webSeed) })
	}
}

func aria2Download(t *testing.T, aria2 string, webSeed bool) {
	const size = 8<<20 + 4321
	r := newRig(t, size, true)
	mi := r.metaInfo(t, webSeed)
	waitAnnounced(t, r, mi.HashInfoBytes().HexString())
	torrentFile, err := Encode(mi)
	if err != nil {
		t.Fatal(err)
	}
	srv := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-bittorrent")
		_, _ = w.Write(torrentFile)
	}), ReadHeaderTimeout: 5 * time.Second}
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, aria2,
		"--dir", out, "--follow-torrent=mem", "--seed-time=0",
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--disable-ipv6=true", "--no-conf=true", "--summary-interval=0",
		"--console-log-level=warn", "--allow-overwrite=true", "--auto-file-renaming=false",
		"http://"+l.Addr().String()+"/image.raw.torrent")
	cmd.WaitDelay = 5 * time.Second
	msg, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("aria2c: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(filepath.Join(out, "image.raw"))
	if err != nil {
		t.Fatalf("aria2c wrote no image.raw: %v\n%s", err, msg)
	}
	if !bytes.Equal(got, r.data) {
		t.Fatalf("aria2c's copy differs (%d bytes, want %d)", len(got), size)
	}
	st, _ := r.seeder.Stats(r.digest)
	t.Logf("aria2c: %d bytes in %v; from the seeder %d bytes, from the web seed %d bytes", size, elapsed, st.Sent, r.served.Load())
	if st.Sent+r.served.Load() < size {
		t.Errorf("seeder (%d) and web seed (%d) sent less than the image (%d)", st.Sent, r.served.Load(), size)
	}
	if !webSeed && st.Sent < size {
		t.Errorf("without a web seed the seeder sent %d bytes, want at least %d", st.Sent, size)
	}
}

// waitAnnounced waits (≤ 10 s) until the seeder is in the tracker's swarm.
func waitAnnounced(t *testing.T, r *rig, infoHash string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, seeds := r.tracker.Peers(infoHash); seeds > 0 {
			return
		}
	}
	t.Fatal("the seeder did not announce within 10 s")
}
