package swarm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
)

// LeecherConfig configures a Leecher.
type LeecherConfig struct {
	// ListenAddr is the TCP "ip:port" other peers connect to (port 0
	// picks one). Required: a node serves the pieces it has.
	ListenAddr string
	// UploadRate and DownloadRate cap the node's peer traffic in bytes/s
	// (web-seed downloads count against DownloadRate); 0 = unlimited.
	UploadRate, DownloadRate int64
	// Dial dials the tracker and the web seeds, e.g. from the node's own
	// address; nil → a plain net.Dialer.
	Dial   DialFunc
	Logger *slog.Logger // nil → discard
}

// Leecher downloads torrents onto targets and seeds them afterwards.
type Leecher struct {
	cl  *torrent.Client
	log *slog.Logger
}

// NewLeecher starts a client on cfg.ListenAddr.
func NewLeecher(cfg LeecherConfig) (*Leecher, error) {
	if cfg.ListenAddr == "" {
		return nil, errors.New("swarm leecher: ListenAddr is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "swarm-leecher")
	cl, err := newClient(clientConfig{listen: cfg.ListenAddr, upload: cfg.UploadRate, download: cfg.DownloadRate, dial: cfg.Dial, log: log})
	if err != nil {
		return nil, fmt.Errorf("swarm leecher: %w", err)
	}
	return &Leecher{cl: cl, log: log}, nil
}

// Addr returns the bound TCP "ip:port".
func (l *Leecher) Addr() string { return listenAddr(l.cl) }

// Close stops every transfer and the client.
func (l *Leecher) Close() error {
	if errs := l.cl.Close(); len(errs) > 0 {
		return fmt.Errorf("swarm leecher: close: %w", errors.Join(errs...))
	}
	return nil
}

// Target is where a download is written, bytes 0..length of the torrent's
// one file: a block device, a file, a buffer.
type Target interface {
	io.ReaderAt
	io.WriterAt
}

// Options tune one transfer.
type Options struct {
	// Peers are "ip:port" addresses to connect to besides the tracker's
	// (tests, benchmarks).
	Peers []string
	// NoWebSeeds ignores the .torrent's url-list: peers only.
	NoWebSeeds bool
	// WebSeedStall is how long the transfer may go without a new verified
	// piece before the web seeds (the image server's HTTP) join it; they
	// stay until it ends, and their first request goes out at the
	// library's next web-seed update (every 5 s in anacrolix v1.59.1).
	// HTTP is the fallback of a node that its peers and the seeder do not
	// feed (none reachable, all gone), not a second source from the
	// start: from the start, 32 nodes' web-seed requests took 15 of the
	// server's 66 MiB for a 32 MiB image, a third of it discarded
	// (bench:swarm). 0 → DefaultWebSeedStall; negative → from the start,
	// as aria2 does.
	WebSeedStall time.Duration
}

// DefaultWebSeedStall is Options.WebSeedStall's default.
const DefaultWebSeedStall = 5 * time.Second

// Transfer is one torrent of a Leecher: downloading, then seeding.
type Transfer struct {
	t     *torrent.Torrent
	span  *span
	info  metainfo.Info
	start time.Time
}

// Add starts downloading mi (a single-file torrent, see Decode) onto dst.
// Every piece is written to dst only once the whole piece has been
// received; a piece whose SHA-1 does not match the info is discarded and
// fetched again (from another source; the library bans a peer that sent
// it).
func (l *Leecher) Add(mi *metainfo.MetaInfo, dst Target, o Options) (*Transfer, error) {
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, fmt.Errorf("%w: info: %w", ErrMetaInfo, err)
	}
	spec, err := torrent.TorrentSpecFromMetaInfoErr(mi)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMetaInfo, err)
	}
	webSeeds := spec.Webseeds
	spec.Webseeds = nil
	sp := newSpan(dst, dst, info.NumPieces(), false)
	spec.Storage = sp
	t, isNew, err := l.cl.AddTorrentSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("swarm leecher: add torrent: %w", err)
	}
	if !isNew {
		return nil, fmt.Errorf("swarm leecher: torrent %s is already being transferred", mi.HashInfoBytes().HexString())
	}
	x := &Transfer{t: t, span: sp, info: info, start: time.Now()}
	var peers []torrent.PeerInfo
	for _, p := range o.Peers {
		ap, err := net.ResolveTCPAddr("tcp", p)
		if err != nil {
			t.Drop()
			return nil, fmt.Errorf("swarm leecher: peer %q: %w", p, err)
		}
		peers = append(peers, torrent.PeerInfo{Addr: ap, Trusted: true})
	}
	if len(peers) > 0 {
		t.AddPeers(peers)
	}
	if !o.NoWebSeeds && len(webSeeds) > 0 {
		stall := cmp.Or(o.WebSeedStall, DefaultWebSeedStall)
		if stall < 0 {
			t.AddWebSeeds(webSeeds)
		} else {
			go x.onStall(stall, func() {
				l.log.Info("no new piece from peers: adding web seeds", "info_hash", t.InfoHash().HexString(),
					"stalled_for", stall, "pieces_done", x.span.done(), "pieces", info.NumPieces(), "web_seeds", webSeeds)
				t.AddWebSeeds(webSeeds)
			})
		}
	}
	t.DownloadAll()
	l.log.Debug("transfer started", "info_hash", t.InfoHash().HexString(), "bytes", info.Length, "web_seeds", webSeeds)
	return x, nil
}

// onStall calls f once no piece has been verified for stall (> 0), unless
// the transfer completes or is dropped first.
func (x *Transfer) onStall(stall time.Duration, f func()) {
	tick := time.NewTicker(max(stall/8, 10*time.Millisecond))
	defer tick.Stop()
	done, since := x.span.done(), time.Now()
	for {
		select {
		case <-x.t.Complete().On():
			return
		case <-x.t.Closed():
			return
		case now := <-tick.C:
			if d := x.span.done(); d != done {
				done, since = d, now
			} else if now.Sub(since) >= stall {
				f()
				return
			}
		}
	}
}

// Progress is a snapshot of a transfer.
type Progress struct {
	Bytes         int64         // verified bytes written
	Total         int64         // image size
	FromPeers     int64         // piece data received from peers, bytes
	FromWebSeeds  int64         // piece data received from web seeds, bytes
	ToPeers       int64         // piece data sent to peers, bytes
	BadPieces     int64         // pieces that failed their hash check (corrupt data received)
	Peers         int           // connected peers now
	Elapsed       time.Duration // since Add
	PiecesDone    int
	PiecesInTotal int
}

// Progress returns the transfer's counters now.
func (x *Transfer) Progress() Progress {
	st := x.t.Stats()
	return Progress{
		Bytes:         x.t.BytesCompleted(),
		Total:         x.info.Length,
		FromPeers:     st.PeerConns.BytesReadUsefulData.Int64(),
		FromWebSeeds:  st.WebSeeds.BytesReadUsefulData.Int64(),
		ToPeers:       st.BytesWrittenData.Int64(),
		BadPieces:     st.PiecesDirtiedBad.Int64(),
		Peers:         st.ActivePeers,
		Elapsed:       time.Since(x.start),
		PiecesDone:    x.span.done(),
		PiecesInTotal: x.info.NumPieces(),
	}
}

// Wait blocks until every piece is verified and written, or ctx ends
// (then it returns context.Cause(ctx)). progress, when not nil, is called
// every `every` (> 0) while waiting.
func (x *Transfer) Wait(ctx context.Context, every time.Duration, progress func(Progress)) error {
	var tick <-chan time.Time
	if progress != nil && every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-x.t.Complete().On():
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick:
			progress(x.Progress())
		}
	}
}

// Drop stops the transfer (downloading or seeding). A completed transfer
// keeps seeding from its target until Drop or Leecher.Close.
func (x *Transfer) Drop() {
	x.t.Drop()
}

// InfoHash returns the transfer's info hash (40 hex digits).
func (x *Transfer) InfoHash() string { return x.t.InfoHash().HexString() }
