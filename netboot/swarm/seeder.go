package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
)

// SeederConfig configures a Seeder.
type SeederConfig struct {
	// ListenAddr is the TCP "ip:port" nodes connect to, e.g.
	// "10.0.0.1:6881" (port 0 picks one). Required; it should be an
	// address on the rack's network.
	ListenAddr string
	// Announce is the tracker's announce URL, written into every .torrent
	// and announced to, e.g. "http://10.0.0.1:8880/announce"; "" → none
	// (peers must then be added by hand).
	Announce string
	// UploadRate caps what the seeder sends to peers over all its
	// torrents, in bytes/s; 0 = unlimited. (Web-seed HTTP is served, and
	// limited, by the HTTP server.)
	UploadRate int64
	// Dial dials the tracker; nil → a plain net.Dialer.
	Dial   DialFunc
	Logger *slog.Logger // nil → discard
}

// Seeder seeds image files: one torrent per image content (digest), each
// read from any of the files registered for it under a key (the node whose
// export it is). It only accepts connections; it never dials peers.
type Seeder struct {
	cfg SeederConfig
	cl  *torrent.Client
	log *slog.Logger

	mu       sync.Mutex
	byDigest map[string]*seed
	byKey    map[string]*seed
	closed   bool
}

type seed struct {
	digest   string
	info     metainfo.Info
	infoHash metainfo.Hash
	sources  *fileSources
	t        *torrent.Torrent
}

// NewSeeder starts the seeder's client on cfg.ListenAddr.
func NewSeeder(cfg SeederConfig) (*Seeder, error) {
	if cfg.ListenAddr == "" {
		return nil, errors.New("swarm seeder: ListenAddr is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "swarm-seeder")
	cl, err := newClient(clientConfig{listen: cfg.ListenAddr, upload: cfg.UploadRate, dial: cfg.Dial, acceptOnly: true, log: log})
	if err != nil {
		return nil, fmt.Errorf("swarm seeder: %w", err)
	}
	s := &Seeder{cfg: cfg, cl: cl, log: log, byDigest: map[string]*seed{}, byKey: map[string]*seed{}}
	log.Info("swarm seeder listening", "addr", s.Addr(), "announce", cfg.Announce, "upload_rate", cfg.UploadRate)
	return s, nil
}

// Addr returns the bound TCP "ip:port" of the seeder.
func (s *Seeder) Addr() string { return listenAddr(s.cl) }

// Seed seeds the image file at path for key (e.g. a node name) and returns
// its .torrent, whose url-list is webSeed (the netboot HTTP URL of the same
// file; "" for none) and whose announce URL is SeederConfig.Announce.
// digest ("sha256:<hex>", as recorded by the image store) names the
// content: the first key of a digest hashes the file (Build) and adds the
// torrent; a later key of the same digest only adds its file as another
// source after checking its size, so every node of one image version gets
// the same info hash. A key seeding another digest is moved. Errors wrap
// ErrImage for a missing, empty or unreadable file.
func (s *Seeder) Seed(ctx context.Context, key, path, digest, webSeed string) (*metainfo.MetaInfo, error) {
	if key == "" || digest == "" {
		return nil, errors.New("swarm seeder: empty key or digest")
	}
	s.mu.Lock()
	sd := s.byDigest[digest]
	s.mu.Unlock()
	if sd != nil {
		if err := sameSize(path, sd.info.Length); err != nil {
			return nil, err
		}
	} else {
		info, err := Build(ctx, path)
		if err != nil {
			return nil, err
		}
		if sd, err = s.add(digest, info); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	if old := s.byKey[key]; old != nil && old != sd {
		s.withdrawLocked(key, old)
	}
	s.byKey[key] = sd
	sd.sources.add(key, path)
	s.mu.Unlock()
	var webSeeds []string
	if webSeed != "" {
		webSeeds = []string{webSeed}
	}
	return NewMetaInfo(sd.info, s.cfg.Announce, webSeeds)
}

// sameSize checks that path is a regular file of size bytes.
func sameSize(path string, size int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrImage, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrImage, path)
	}
	if fi.Size() != size {
		return fmt.Errorf("%w: %s has %d bytes, the torrent of its digest %d", ErrImage, path, fi.Size(), size)
	}
	return nil
}

// add adds the torrent of digest (or returns the one another call added
// meanwhile).
func (s *Seeder) add(digest string, info metainfo.Info) (*seed, error) {
	mi, err := NewMetaInfo(info, s.cfg.Announce, nil)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("swarm seeder: closed")
	}
	if sd := s.byDigest[digest]; sd != nil {
		return sd, nil
	}
	sd := &seed{digest: digest, info: info, infoHash: mi.HashInfoBytes(), sources: &fileSources{paths: map[string]string{}}}
	spec, err := torrent.TorrentSpecFromMetaInfoErr(mi)
	if err != nil {
		return nil, fmt.Errorf("swarm seeder: %w", err)
	}
	spec.Storage = newSpan(sd.sources, nil, info.NumPieces(), true)
	t, _, err := s.cl.AddTorrentSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("swarm seeder: add torrent: %w", err)
	}
	sd.t = t
	s.byDigest[digest] = sd
	s.log.Info("seeding", "digest", digest, "info_hash", sd.infoHash.HexString(), "bytes", info.Length,
		"piece_length", info.PieceLength, "pieces", info.NumPieces())
	return sd, nil
}

// Stop withdraws key's file; a torrent left without files is dropped.
// Stopping an unknown key does nothing.
func (s *Seeder) Stop(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sd := s.byKey[key]; sd != nil {
		s.withdrawLocked(key, sd)
	}
}

func (s *Seeder) withdrawLocked(key string, sd *seed) {
	delete(s.byKey, key)
	if sd.sources.remove(key) > 0 {
		return
	}
	delete(s.byDigest, sd.digest)
	sd.t.Drop()
	s.log.Info("stopped seeding", "digest", sd.digest, "info_hash", sd.infoHash.HexString())
}

// SeedStats is what a seeder sent for one torrent.
type SeedStats struct {
	InfoHash string // 40 hex digits
	Bytes    int64  // image size
	Sent     int64  // piece data sent to peers, bytes
	Peers    int    // connected peers now
	Sources  int    // files registered (keys)
}

// Stats returns the statistics of the torrent of digest; ok is false when
// it is not seeded.
func (s *Seeder) Stats(digest string) (SeedStats, bool) {
	s.mu.Lock()
	sd := s.byDigest[digest]
	s.mu.Unlock()
	if sd == nil {
		return SeedStats{}, false
	}
	st := sd.t.Stats()
	return SeedStats{
		InfoHash: sd.infoHash.HexString(),
		Bytes:    sd.info.Length,
		Sent:     st.BytesWrittenData.Int64(),
		Peers:    st.ActivePeers,
		Sources:  len(sd.sources.snapshot()),
	}, true
}

// Close drops every torrent and stops the client.
func (s *Seeder) Close() error {
	s.mu.Lock()
	s.closed = true
	s.byDigest, s.byKey = map[string]*seed{}, map[string]*seed{}
	s.mu.Unlock()
	if errs := s.cl.Close(); len(errs) > 0 {
		return fmt.Errorf("swarm seeder: close: %w", errors.Join(errs...))
	}
	return nil
}
