package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// span is the storage of a single-file torrent over one byte span: the
// file's bytes are at offsets 0..length of r (and w). Piece completion is
// kept in memory; pieces start complete (a seed) or known-incomplete (a
// fresh target, so nothing is hashed before downloading).
type span struct {
	r io.ReaderAt
	w io.WriterAt // nil: read-only

	mu       sync.Mutex
	complete []bool
}

func newSpan(r io.ReaderAt, w io.WriterAt, pieces int, complete bool) *span {
	s := &span{r: r, w: w, complete: make([]bool, pieces)}
	for i := range s.complete {
		s.complete[i] = complete
	}
	return s
}

// OpenTorrent implements storage.ClientImpl.
func (s *span) OpenTorrent(_ context.Context, info *metainfo.Info, _ metainfo.Hash) (storage.TorrentImpl, error) {
	if n := info.NumPieces(); n != len(s.complete) {
		return storage.TorrentImpl{}, fmt.Errorf("swarm storage: torrent has %d pieces, storage %d", n, len(s.complete))
	}
	return storage.TorrentImpl{
		Piece: func(p metainfo.Piece) storage.PieceImpl {
			return &spanPiece{s: s, index: p.Index(), off: p.Offset(), length: p.Length()}
		},
		Close: func() error { return nil },
	}, nil
}

// done returns the number of complete pieces.
func (s *span) done() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.complete {
		if c {
			n++
		}
	}
	return n
}

type spanPiece struct {
	s           *span
	index       int
	off, length int64
}

var errReadOnly = errors.New("swarm storage: read-only")

func (p *spanPiece) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.length {
		return 0, io.EOF
	}
	short := false
	if rest := p.length - off; int64(len(b)) > rest {
		b, short = b[:rest], true
	}
	n, err := p.s.r.ReadAt(b, p.off+off)
	if err == io.EOF && n == len(b) {
		err = nil
	}
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

func (p *spanPiece) WriteAt(b []byte, off int64) (int, error) {
	if p.s.w == nil {
		return 0, errReadOnly
	}
	if off+int64(len(b)) > p.length {
		return 0, fmt.Errorf("swarm storage: write of %d bytes at %d past piece %d of %d bytes", len(b), off, p.index, p.length)
	}
	return p.s.w.WriteAt(b, p.off+off)
}

func (p *spanPiece) MarkComplete() error { p.set(true); return nil }

func (p *spanPiece) MarkNotComplete() error { p.set(false); return nil }

func (p *spanPiece) set(c bool) {
	p.s.mu.Lock()
	p.s.complete[p.index] = c
	p.s.mu.Unlock()
}

func (p *spanPiece) Completion() storage.Completion {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return storage.Completion{Ok: true, Complete: p.s.complete[p.index]}
}

// noStorage is the client's default storage: every torrent rackflow adds
// brings its own, so the library never creates files or a piece database
// in the working directory.
type noStorage struct{}

func (noStorage) OpenTorrent(context.Context, *metainfo.Info, metainfo.Hash) (storage.TorrentImpl, error) {
	return storage.TorrentImpl{}, errors.New("swarm: torrent added without storage")
}

// fileSources reads one image from whichever of several identical files
// (the exports of the nodes of one image version) is readable, opening the
// file for every read so that no descriptor keeps a withdrawn export (a ZFS
// clone) busy.
type fileSources struct {
	mu    sync.Mutex
	paths map[string]string // key (node) → path
	order []string          // keys, oldest first
}

func (f *fileSources) add(key, path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.paths[key]; !ok {
		f.order = append(f.order, key)
	}
	f.paths[key] = path
}

// remove drops key and reports how many sources remain.
func (f *fileSources) remove(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.paths[key]; ok {
		delete(f.paths, key)
		for i, k := range f.order {
			if k == key {
				f.order = append(f.order[:i], f.order[i+1:]...)
				break
			}
		}
	}
	return len(f.paths)
}

func (f *fileSources) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.order))
	for _, k := range f.order {
		out = append(out, f.paths[k])
	}
	return out
}

func (f *fileSources) ReadAt(b []byte, off int64) (int, error) {
	var errs []error
	for _, path := range f.snapshot() {
		n, err := readFileAt(path, b, off)
		if err == nil {
			return n, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return 0, errors.New("swarm: no source file left")
	}
	return 0, errors.Join(errs...)
}

func readFileAt(path string, b []byte, off int64) (int, error) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	n, err := fh.ReadAt(b, off)
	if err == io.EOF && n == len(b) {
		err = nil
	}
	return n, err
}
