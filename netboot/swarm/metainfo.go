package swarm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// Errors, returned wrapped; test with errors.Is.
var (
	// ErrImage: the image file is missing, not a regular file, empty or
	// unreadable. Retrying does not help until the file is fixed.
	ErrImage = errors.New("image file unusable")
	// ErrInfoHashMismatch: a .torrent's info hash is not the one expected
	// (the boot profile's); the torrent is refused.
	ErrInfoHashMismatch = errors.New("torrent info hash mismatch")
	// ErrMetaInfo: a .torrent cannot be fetched or decoded, or is not a
	// single-file v1 torrent.
	ErrMetaInfo = errors.New("bad torrent file")
)

// MaxMetaInfoSize bounds a fetched .torrent, in bytes (a 16 GiB image at
// 8 MiB pieces needs 2048 × 20 bytes of piece hashes).
const MaxMetaInfoSize = 4 << 20

// Build hashes the regular file at path into a single-file v1 info
// dictionary named filepath.Base(path), piece length
// metainfo.ChoosePieceLength(size). It reads the file once; ctx stops it.
// Errors wrap ErrImage when the file is missing, not regular, empty or
// unreadable.
func Build(ctx context.Context, path string) (metainfo.Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return metainfo.Info{}, fmt.Errorf("%w: %w", ErrImage, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return metainfo.Info{}, fmt.Errorf("%w: %w", ErrImage, err)
	}
	if !fi.Mode().IsRegular() {
		return metainfo.Info{}, fmt.Errorf("%w: %s is not a regular file", ErrImage, path)
	}
	if fi.Size() == 0 {
		return metainfo.Info{}, fmt.Errorf("%w: %s is empty", ErrImage, path)
	}
	info := metainfo.Info{
		Name:        filepath.Base(path),
		Length:      fi.Size(),
		PieceLength: metainfo.ChoosePieceLength(fi.Size()),
	}
	err = info.GeneratePieces(func(metainfo.FileInfo) (io.ReadCloser, error) {
		return io.NopCloser(ctxReader{ctx, io.NewSectionReader(f, 0, fi.Size())}), nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return metainfo.Info{}, context.Cause(ctx)
		}
		return metainfo.Info{}, fmt.Errorf("%w: hashing %s: %w", ErrImage, path, err)
	}
	return info, nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// NewMetaInfo returns the .torrent of info: announce is the tracker's
// announce URL ("" for none), webSeeds the BEP 19 url-list (each URL names
// the file itself, or a directory when it ends in "/").
func NewMetaInfo(info metainfo.Info, announce string, webSeeds []string) (*metainfo.MetaInfo, error) {
	b, err := bencode.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("encode info: %w", err)
	}
	return &metainfo.MetaInfo{
		InfoBytes:    b,
		Announce:     announce,
		UrlList:      append([]string(nil), webSeeds...),
		CreationDate: time.Now().Unix(),
		CreatedBy:    "rackflow",
	}, nil
}

// Encode returns the bencoded .torrent file of mi.
func Encode(mi *metainfo.MetaInfo) ([]byte, error) {
	var b bytes.Buffer
	if err := mi.Write(&b); err != nil {
		return nil, fmt.Errorf("encode torrent: %w", err)
	}
	return b.Bytes(), nil
}

var infoHashRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// ValidInfoHash reports whether s is a v1 info hash in the form rackflow
// writes it: 40 lower-case hex digits.
func ValidInfoHash(s string) bool { return infoHashRE.MatchString(s) }

// Decode parses a .torrent file and checks it: a single-file v1 torrent
// with a positive length and piece length and whole piece hashes. When
// wantInfoHash is not "", the info hash (hex) must equal it, else the error
// wraps ErrInfoHashMismatch. Other errors wrap ErrMetaInfo.
func Decode(data []byte, wantInfoHash string) (*metainfo.MetaInfo, metainfo.Info, error) {
	mi, err := metainfo.Load(bytes.NewReader(data))
	if err != nil {
		return nil, metainfo.Info{}, fmt.Errorf("%w: %w", ErrMetaInfo, err)
	}
	if wantInfoHash != "" {
		if got := mi.HashInfoBytes().HexString(); got != wantInfoHash {
			return nil, metainfo.Info{}, fmt.Errorf("%w: torrent has %s, boot profile says %s", ErrInfoHashMismatch, got, wantInfoHash)
		}
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, metainfo.Info{}, fmt.Errorf("%w: info: %w", ErrMetaInfo, err)
	}
	switch {
	case info.IsDir() || len(info.Files) > 0:
		return nil, metainfo.Info{}, fmt.Errorf("%w: not a single-file torrent", ErrMetaInfo)
	case info.Length <= 0 || info.PieceLength <= 0:
		return nil, metainfo.Info{}, fmt.Errorf("%w: length %d, piece length %d", ErrMetaInfo, info.Length, info.PieceLength)
	case !info.HasV1() || len(info.Pieces) != 20*info.NumPieces():
		return nil, metainfo.Info{}, fmt.Errorf("%w: %d bytes of piece hashes for %d pieces", ErrMetaInfo, len(info.Pieces), info.NumPieces())
	}
	return mi, info, nil
}

// Fetch GETs the .torrent at url with hc and Decodes it (see Decode for
// wantInfoHash). Transport errors and non-200 answers wrap ErrMetaInfo and
// are worth retrying; ErrInfoHashMismatch is not.
func Fetch(ctx context.Context, hc *http.Client, url, wantInfoHash string) (*metainfo.MetaInfo, metainfo.Info, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, metainfo.Info{}, fmt.Errorf("%w: %w", ErrMetaInfo, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, metainfo.Info{}, fmt.Errorf("%w: GET %s: %w", ErrMetaInfo, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, metainfo.Info{}, fmt.Errorf("%w: GET %s: HTTP %s", ErrMetaInfo, url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxMetaInfoSize+1))
	if err != nil {
		return nil, metainfo.Info{}, fmt.Errorf("%w: GET %s: %w", ErrMetaInfo, url, err)
	}
	if len(data) > MaxMetaInfoSize {
		return nil, metainfo.Info{}, fmt.Errorf("%w: %s is larger than %d bytes", ErrMetaInfo, url, MaxMetaInfoSize)
	}
	return Decode(data, wantInfoHash)
}
