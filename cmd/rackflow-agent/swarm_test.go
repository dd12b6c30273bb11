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
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/netboot/swarm"
)

// swarmRig adds to an agentRig what the netboot service serves for the
// swarm transport: a tracker, a seeder of the image and the run's .torrent
// (web seed: the rig's image URL), which is withdrawn (404) once fetched
// when withdrawAfterFetch (the rollout ended right after the download). It
// returns the agent arguments.
func swarmRig(t *testing.T, r *agentRig, infoHash func(real string) string, seedFor time.Duration, withdrawAfterFetch bool) []string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "image.raw")
	if err := os.WriteFile(file, r.img, 0o644); err != nil {
		t.Fatal(err)
	}
	tracker := swarm.NewTracker(time.Minute)
	var torrent []byte
	mux := http.NewServeMux()
	mux.Handle("GET /announce", tracker)
	var withdrawn atomic.Bool
	mux.HandleFunc("GET /torrents/r01n01/run-1.torrent", func(w http.ResponseWriter, r *http.Request) {
		if withdrawn.Load() {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(torrent)
		withdrawn.Store(withdrawAfterFetch && r.Method == http.MethodGet)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	seeder, err := swarm.NewSeeder(swarm.SeederConfig{ListenAddr: "127.0.0.1:0", Announce: srv.URL + "/announce"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = seeder.Close() })
	mi, err := seeder.Seed(context.Background(), "r01n01", file, digestOf(r.img), r.srv.URL+"/image.raw")
	if err != nil {
		t.Fatal(err)
	}
	if torrent, err = swarm.Encode(mi); err != nil {
		t.Fatal(err)
	}
	ih := mi.HashInfoBytes().HexString()
	if infoHash != nil {
		ih = infoHash(ih)
	}
	return r.args(netboot.ArgTorrent+"="+srv.URL+"/torrents/r01n01/run-1.torrent", netboot.ArgInfoHash+"="+ih,
		netboot.ArgSeedFor+"="+seedFor.String(), netboot.ArgUpload+"=0")
}

func TestAgentSwarm(t *testing.T) {
	r := newAgentRig(t, http.StatusAccepted)
	ok, lines := r.run(t, swarmRig(t, r, nil, 200*time.Millisecond, false))
	if !ok {
		t.Fatal("run failed")
	}
	checkLines(t, lines,
		`^rackflow-agent: \[   1\.50\] start node=r01n01 run=run-1 disk=/.*/disk\.img iface=none$`,
		`^rackflow-agent: \[   1\.50\] network skipped \(--no-dhcp\)$`,
		`^rackflow-agent: \[   1\.50\] image swarm [0-9]+ bytes from peers, [0-9]+ from web seeds, 0 bad pieces$`,
		`^rackflow-agent: \[   1\.50\] image written 200000 bytes in [0-9]+\.[0-9]{2}s \([0-9]+\.[0-9] MB/s\)$`,
		`^rackflow-agent: \[   1\.50\] digest ok `+regexp.QuoteMeta(digestOf(r.img))+`$`,
		`^rackflow-agent: \[   1\.50\] check-in accepted \(HTTP 202\)$`,
		`^rackflow-agent: \[   1\.50\] seeding for up to 200ms$`,
		`^rackflow-agent: \[   1\.50\] seeding stopped: time$`,
		`^rackflow-agent: done$`,
	)
	got, _ := os.ReadFile(r.disk)
	if !bytes.Equal(got, r.img) {
		t.Errorf("disk holds %d bytes, want the image", len(got))
	}
	bodies, _ := r.checkIn.received()
	if len(bodies) != 1 || bodies[0].Status != "ok" || bodies[0].Digest != digestOf(r.img) {
		t.Fatalf("check-ins %+v", bodies)
	}
}

// TestAgentSwarmStopsWhenWithdrawn: an agent seeding after its check-in
// stops when its .torrent is withdrawn (the rollout ended), long before
// its seeding time is up.
func TestAgentSwarmStopsWhenWithdrawn(t *testing.T) {
	r := newAgentRig(t, http.StatusAccepted)
	ok, lines := r.run(t, swarmRig(t, r, nil, time.Hour, true))
	if !ok {
		t.Fatal("run failed")
	}
	checkLines(t, lines,
		`^rackflow-agent: \[   1\.50\] start `,
		`^rackflow-agent: \[   1\.50\] network skipped`,
		`^rackflow-agent: \[   1\.50\] image swarm `,
		`^rackflow-agent: \[   1\.50\] image written `,
		`^rackflow-agent: \[   1\.50\] digest ok `,
		`^rackflow-agent: \[   1\.50\] check-in accepted \(HTTP 202\)$`,
		`^rackflow-agent: \[   1\.50\] seeding for up to 1h0m0s$`,
		`^rackflow-agent: \[   1\.50\] seeding stopped: withdrawn$`,
		`^rackflow-agent: done$`,
	)
}

// TestAgentRefusesForeignTorrent: a .torrent whose info hash is not the
// boot profile's is refused before anything is downloaded or written.
func TestAgentRefusesForeignTorrent(t *testing.T) {
	r := newAgentRig(t, http.StatusAccepted)
	words := swarmRig(t, r, func(string) string { return strings.Repeat("ab", 20) }, time.Minute, false)
	ok, lines := r.run(t, words)
	if ok {
		t.Fatal("run succeeded with a foreign torrent")
	}
	checkLines(t, lines,
		`^rackflow-agent: \[   1\.50\] start `,
		`^rackflow-agent: \[   1\.50\] network skipped`,
		`^rackflow-agent: \[   1\.50\] FAILED image: torrent info hash mismatch: torrent has [0-9a-f]{40}, boot profile says (ab){20}$`,
		`^rackflow-agent: \[   1\.50\] check-in accepted \(HTTP 202\)$`,
		`^rackflow-agent: failed$`,
	)
	bodies, _ := r.checkIn.received()
	if len(bodies) != 1 || bodies[0].Status != "error" || !strings.Contains(bodies[0].Message, "info hash mismatch") {
		t.Fatalf("check-ins %+v", bodies)
	}
	if got, _ := os.ReadFile(r.disk); len(got) != 0 && !bytes.Equal(got, make([]byte, len(got))) {
		t.Error("the disk was written")
	}
	if n := r.images.count(); n != 0 {
		t.Errorf("the web seed served %d requests", n)
	}
}
