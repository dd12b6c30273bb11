package vrack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/netboot/swarm"
)

// maxSwarmImage bounds the image a virtual node downloads through the
// swarm: it is held in memory.
const maxSwarmImage = 1 << 30

// swarmWithdrawPoll is how often a seeding virtual node checks whether its
// .torrent was withdrawn.
const swarmWithdrawPoll = 5 * time.Second

// swarmResult is a finished swarm download.
type swarmResult struct {
	digest       string
	size         int64
	fromPeers    int64
	fromWebSeeds int64
	badPieces    int64
	elapsed      time.Duration
	seed         func(ctx context.Context) string // keeps seeding, then releases the client; returns why it stopped (swarm.Stop*)
}

// swarmImage downloads the image of a through the swarm into memory, from
// the node's address local (nil: any): the .torrent must have the info
// hash of the boot profile; every piece is checked against its SHA-1;
// the web seed (the export URL) joins when no new piece arrives from
// peers for swarm.DefaultWebSeedStall. It
// returns the sha256 of the image and a function that keeps seeding
// (a.SeedFor, or until the .torrent is withdrawn) and then closes the
// client, returning why it stopped.
func swarmImage(ctx context.Context, hc *http.Client, local net.IP, a netboot.AgentArgs) (swarmResult, error) {
	mi, info, err := swarm.Fetch(ctx, hc, a.TorrentURL, a.InfoHash)
	if err != nil {
		return swarmResult{}, err
	}
	if info.Length > maxSwarmImage {
		return swarmResult{}, fmt.Errorf("image of %d bytes is larger than a virtual node holds (%d)", info.Length, maxSwarmImage)
	}
	host := "127.0.0.1"
	var dial swarm.DialFunc
	if local != nil {
		host = local.String()
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: local}}
		dial = d.DialContext
	}
	l, err := swarm.NewLeecher(swarm.LeecherConfig{ListenAddr: net.JoinHostPort(host, "0"), UploadRate: a.UploadRate, Dial: dial})
	if err != nil {
		return swarmResult{}, err
	}
	buf := &memTarget{b: make([]byte, info.Length)}
	x, err := l.Add(mi, buf, swarm.Options{})
	if err == nil {
		err = x.Wait(ctx, 0, nil)
	}
	if err != nil {
		_ = l.Close()
		return swarmResult{}, err
	}
	p := x.Progress()
	sum := sha256.Sum256(buf.bytes())
	res := swarmResult{
		digest: "sha256:" + hex.EncodeToString(sum[:]), size: info.Length,
		fromPeers: p.FromPeers, fromWebSeeds: p.FromWebSeeds, badPieces: p.BadPieces, elapsed: p.Elapsed,
	}
	res.seed = func(ctx context.Context) string {
		defer l.Close()
		if a.SeedFor > 0 {
			return swarm.KeepSeeding(ctx, hc, a.TorrentURL, a.SeedFor, swarmWithdrawPoll)
		}
		return swarm.StopTime
	}
	return res, nil
}

// memTarget is a virtual node's disk for a swarm download.
type memTarget struct {
	mu sync.Mutex
	b  []byte
}

var errPastEnd = errors.New("write past the end of the image")

func (m *memTarget) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off < 0 || off >= int64(len(m.b)) {
		return 0, errPastEnd
	}
	return copy(p, m.b[off:]), nil
}

func (m *memTarget) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, errPastEnd
	}
	return copy(m.b[off:], p), nil
}

func (m *memTarget) bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.b
}
