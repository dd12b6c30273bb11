package swarm

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/tracker"
	trackerServer "github.com/anacrolix/torrent/tracker/server"
	"github.com/anacrolix/torrent/tracker/udp"
)

// DefaultAnnounceInterval is the re-announce interval a Tracker tells
// clients when none is configured.
const DefaultAnnounceInterval = time.Minute

// Tracker is an in-memory BitTorrent tracker (BEP 3 HTTP announce, compact
// peer lists per BEP 23 and BEP 7) for the swarms of one rack. Announces go
// through the library's tracker/server.AnnounceHandler (without upstream
// trackers); the library ships no peer store, so Tracker is one: peers by
// info hash, dropped on a "stopped" event or when they have not announced
// for three intervals. The HTTP side is Tracker's own: the library's
// tracker/http/server.Handler always writes a "failure reason" key, even
// empty, and aria2 takes any such key as a failed announce. Tracker knows
// every torrent it is asked about (no allow-list): it listens only on the
// rack's network, like the rest of the netboot service.
type Tracker struct {
	interval time.Duration
	announce *trackerServer.AnnounceHandler

	mu     sync.Mutex
	swarms map[[20]byte]map[netip.AddrPort]trackedPeer
	now    func() time.Time
}

type trackedPeer struct {
	left int64 // bytes the peer still needs; 0 for a seed, -1 unknown
	seen time.Time
}

// NewTracker returns a tracker telling clients to re-announce every
// interval (0 → DefaultAnnounceInterval).
func NewTracker(interval time.Duration) *Tracker {
	if interval <= 0 {
		interval = DefaultAnnounceInterval
	}
	t := &Tracker{interval: interval, swarms: map[[20]byte]map[netip.AddrPort]trackedPeer{}, now: time.Now}
	t.announce = &trackerServer.AnnounceHandler{AnnounceTracker: t}
	return t
}

// maxPeersPerAnswer bounds the peers of one announce answer.
const maxPeersPerAnswer = 200

// announceResponse is the bencoded answer of an announce (BEP 3), peers
// compact: 6 bytes per IPv4 peer (BEP 23), 18 per IPv6 peer (BEP 7).
type announceResponse struct {
	FailureReason string `bencode:"failure reason,omitempty"`
	Interval      int32  `bencode:"interval,omitempty"`
	Complete      int32  `bencode:"complete"`
	Incomplete    int32  `bencode:"incomplete"`
	Peers         []byte `bencode:"peers"`
	Peers6        []byte `bencode:"peers6,omitempty"`
}

// ServeHTTP answers a GET announce (query info_hash, peer_id, port, left,
// event, numwant) with a bencoded compact peer list; the peer's address is
// the request's remote IP with its port parameter. A malformed announce
// gets HTTP 400 with a "failure reason".
func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fail := func(code int, reason string) {
		w.WriteHeader(code)
		_ = bencode.NewEncoder(w).Encode(announceResponse{FailureReason: reason})
	}
	w.Header().Set("Content-Type", "text/plain")
	var req tracker.AnnounceRequest
	if err := req.Event.UnmarshalText([]byte(q.Get("event"))); err != nil {
		fail(http.StatusBadRequest, "bad event")
		return
	}
	ih, peerID := q.Get("info_hash"), q.Get("peer_id")
	if len(ih) != 20 || len(peerID) != 20 {
		fail(http.StatusBadRequest, "info_hash and peer_id must be 20 bytes")
		return
	}
	copy(req.InfoHash[:], ih)
	copy(req.PeerId[:], peerID)
	port, err := strconv.ParseUint(q.Get("port"), 10, 16)
	if err != nil || port == 0 {
		fail(http.StatusBadRequest, "bad port")
		return
	}
	req.Port = uint16(port)
	if req.Left, err = strconv.ParseInt(q.Get("left"), 10, 64); err != nil {
		req.Left = -1
	}
	req.NumWant = -1
	if n, err := strconv.ParseInt(q.Get("numwant"), 10, 32); err == nil && n >= 0 {
		req.NumWant = int32(n)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	addr, perr := netip.ParseAddr(host)
	if err != nil || perr != nil {
		fail(http.StatusBadRequest, "cannot tell your address")
		return
	}
	res := t.announce.Serve(r.Context(), req, netip.AddrPortFrom(addr.Unmap(), req.Port),
		trackerServer.GetPeersOpts{MaxCount: generics.Some[uint](maxPeersPerAnswer)})
	if res.Err != nil {
		fail(http.StatusInternalServerError, res.Err.Error())
		return
	}
	out := announceResponse{Interval: res.Interval.Value, Complete: res.Seeders.Value, Incomplete: res.Leechers.Value, Peers: []byte{}}
	for _, p := range res.Peers {
		b, _ := p.Addr().MarshalBinary()
		b = binary.BigEndian.AppendUint16(b, p.Port())
		if p.Addr().Is4() {
			out.Peers = append(out.Peers, b...)
		} else {
			out.Peers6 = append(out.Peers6, b...)
		}
	}
	_ = bencode.NewEncoder(w).Encode(out)
}

// TrackAnnounce records (or, for a "stopped" event, forgets) the peer at
// addr. It implements trackerServer.AnnounceTracker.
func (t *Tracker) TrackAnnounce(_ context.Context, req udp.AnnounceRequest, addr netip.AddrPort) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	peers := t.swarms[req.InfoHash]
	if req.Event == tracker.Stopped {
		delete(peers, addr)
		if len(peers) == 0 {
			delete(t.swarms, req.InfoHash)
		}
		return nil
	}
	if peers == nil {
		peers = map[netip.AddrPort]trackedPeer{}
		t.swarms[req.InfoHash] = peers
	}
	peers[addr] = trackedPeer{left: req.Left, seen: t.now()}
	return nil
}

// expireLocked drops peers of ih not seen for three intervals.
func (t *Tracker) expireLocked(ih [20]byte) map[netip.AddrPort]trackedPeer {
	peers := t.swarms[ih]
	cutoff := t.now().Add(-3 * t.interval)
	for a, p := range peers {
		if p.seen.Before(cutoff) {
			delete(peers, a)
		}
	}
	if len(peers) == 0 {
		delete(t.swarms, ih)
		return nil
	}
	return peers
}

// GetPeers returns up to opts.MaxCount peers of infoHash other than remote,
// in random order. It implements trackerServer.AnnounceTracker.
func (t *Tracker) GetPeers(_ context.Context, infoHash [20]byte, opts trackerServer.GetPeersOpts, remote netip.AddrPort) trackerServer.ServerAnnounceResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	peers := t.expireLocked(infoHash)
	var seeders, leechers int32
	out := make([]trackerServer.PeerInfo, 0, len(peers))
	for a, p := range peers {
		if p.left == 0 {
			seeders++
		} else {
			leechers++
		}
		if a != remote {
			out = append(out, trackerServer.PeerInfo{AnnounceAddr: a})
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if opts.MaxCount.Ok && uint(len(out)) > opts.MaxCount.Value {
		out = out[:opts.MaxCount.Value]
	}
	return trackerServer.ServerAnnounceResult{
		Peers:    out,
		Interval: generics.Some(int32(t.interval / time.Second)),
		Seeders:  generics.Some(seeders),
		Leechers: generics.Some(leechers),
	}
}

// Scrape returns the seeders and leechers of each info hash (BEP 48).
// It implements trackerServer.AnnounceTracker.
func (t *Tracker) Scrape(_ context.Context, infoHashes []trackerServer.InfoHash) ([]udp.ScrapeInfohashResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]udp.ScrapeInfohashResult, len(infoHashes))
	for i, ih := range infoHashes {
		for _, p := range t.expireLocked(ih) {
			if p.left == 0 {
				out[i].Seeders++
			} else {
				out[i].Leechers++
			}
		}
	}
	return out, nil
}

// Peers returns the addresses currently tracked for the info hash (hex),
// sorted, and how many of them are seeds.
func (t *Tracker) Peers(infoHash string) (addrs []netip.AddrPort, seeds int) {
	b, err := hex.DecodeString(infoHash)
	if err != nil || len(b) != 20 {
		return nil, 0
	}
	var ih [20]byte
	copy(ih[:], b)
	t.mu.Lock()
	defer t.mu.Unlock()
	for a, p := range t.expireLocked(ih) {
		addrs = append(addrs, a)
		if p.left == 0 {
			seeds++
		}
	}
	slices.SortFunc(addrs, netip.AddrPort.Compare)
	return addrs, seeds
}
