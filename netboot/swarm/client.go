package swarm

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/anacrolix/torrent"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"golang.org/x/time/rate"
)

// DialFunc dials like net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// clientConfig is what seeders and leechers share.
type clientConfig struct {
	listen     string // "ip:port"; port 0 picks one
	upload     int64  // bytes/s, 0 = unlimited
	download   int64  // bytes/s, 0 = unlimited
	dial       DialFunc
	acceptOnly bool // never dial peers (a seeder)
	log        *slog.Logger
}

// maxQueuedRequests is the library's cap on one peer's queued requests
// (localClientReqq in anacrolix/torrent v1.59.1; more are rejected).
const maxQueuedRequests = 1024

// peersPerTorrent caps a downloading node's connections per torrent (the
// library's default is 50: a full mesh in a rack). Every connection
// carries a HAVE per completed piece and its own request state; with 8,
// 32 clients of a 32 MiB image (in 256 KiB pieces) used 61 CPU-seconds
// instead of 89 and finished sooner (bench:swarm, 2-core host). The seeder keeps the default: capped
// at 8 too, it now and then ended up connected to none of four loopback
// leechers, which then never started (TestSeederAndPeers; cause not found
// in v1.59.1).
const peersPerTorrent = 8

// Client versions in the extended handshake (BEP 10 "v"): a node tells
// the image server's seeder from other peers by it.
const (
	leecherVersion = "rackflow"
	seederVersion  = "rackflow seeder"
)

// seederRequests caps a node's outstanding chunk requests (16 KiB each)
// to the image server's seeder, which advertises the library's 1024. The
// seeder answers requests as fast as its sockets take them: with hundreds
// queued, a node's chunks wait in the seeder's TCP send buffer behind its
// 1/N share of the uplink, by the time they leave the node has got most
// of those pieces from peers, and its cancels come too late: the uplink
// carries duplicates while pieces nobody has yet wait. With 4, 32 nodes
// of a 32 MiB image finished in 28–31 s instead of 36–40 s and the server
// sent 1.9–2.3 image sizes instead of 2.6–2.9 (bench:swarm, 20 Mbit/s
// links, web seeds from the start). 1 is too few in v1.59.1: the single
// request keeps being stolen and re-issued and the seeder's link fills
// with chunks nobody wants (12 image sizes).
const seederRequests = 4

// newClient starts an anacrolix client confined to the rack: TCP on
// cfg.listen only, no DHT, PEX, WebTorrent, uTP or port mapping, peers
// from trackers only.
func newClient(cfg clientConfig) (*torrent.Client, error) {
	host, portStr, err := net.SplitHostPort(cfg.listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", cfg.listen, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: bad port", cfg.listen)
	}
	ip := net.ParseIP(host)
	if host != "" && ip == nil {
		return nil, fmt.Errorf("listen address %q: host is not an IP address", cfg.listen)
	}
	if cfg.upload < 0 || cfg.download < 0 {
		return nil, fmt.Errorf("negative rate limit (upload %d, download %d B/s)", cfg.upload, cfg.download)
	}
	c := torrent.NewDefaultClientConfig()
	c.ListenHost = func(string) string { return host }
	c.ListenPort = int(port)
	switch {
	case ip == nil:
	case ip.To4() != nil:
		c.DisableIPv6 = true
	default:
		c.DisableIPv4 = true
	}
	c.NoDHT = true
	c.PeriodicallyAnnounceTorrentsToDht = false
	c.DisablePEX = true
	c.DisableWebtorrent = true
	c.NoDefaultPortForwarding = true
	c.DisableUTP = true
	c.Seed = true
	c.DefaultStorage = noStorage{}
	c.HTTPUserAgent = "rackflow-swarm"
	c.ExtendedHandshakeClientVersion = leecherVersion
	if cfg.acceptOnly {
		c.ExtendedHandshakeClientVersion = seederVersion
	} else {
		// Called before the library reads the message's reqq.
		c.Callbacks.ReadExtendedHandshake = func(_ *torrent.PeerConn, m *pp.ExtendedHandshakeMessage) {
			if m.V == seederVersion && (m.Reqq <= 0 || m.Reqq > seederRequests) {
				m.Reqq = seederRequests
			}
		}
	}
	c.Bep20 = "-RF0001-"
	c.DialForPeerConns = !cfg.acceptOnly
	if !cfg.acceptOnly {
		c.EstablishedConnsPerTorrent = peersPerTorrent
	}
	// v1.59.1 serves a connection's requests one at a time, waiting for
	// each one's share of this per-connection allowance in a random order
	// while the allowance is held by requests queued ahead of it: once a
	// peer pipelines more than the allowance (1 MiB by default: 64 chunks;
	// anacrolix pipelines 250, aria2 more), the upload deadlocks after ~2
	// MiB. An allowance covering the longest queue the library accepts
	// (localClientReqq, 1024 requests of 16 KiB) grants every request at
	// once. It bounds the piece data read ahead for one peer.
	c.MaxAllocPeerRequestDataPerConn = maxQueuedRequests * 16 << 10
	if cfg.dial != nil {
		c.TrackerDialContext = cfg.dial
		c.HTTPDialContext = cfg.dial
	}
	if cfg.upload > 0 {
		c.UploadRateLimiter = rate.NewLimiter(rate.Limit(cfg.upload), 0)
	}
	if cfg.download > 0 {
		c.DownloadRateLimiter = rate.NewLimiter(rate.Limit(cfg.download), 0)
	}
	log := cfg.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c.Slogger = log
	cl, err := torrent.NewClient(c)
	if err != nil {
		return nil, fmt.Errorf("start torrent client on %s: %w", cfg.listen, err)
	}
	return cl, nil
}

// listenAddr returns the client's TCP listen address.
func listenAddr(cl *torrent.Client) string {
	for _, a := range cl.ListenAddrs() {
		if a.Network() == "tcp" || a.Network() == "tcp4" || a.Network() == "tcp6" {
			return a.String()
		}
	}
	return ""
}
