package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/cenkalti/backoff/v5"

	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/netboot/swarm"
)

// swarmFetcher downloads a disk image through BitTorrent (package
// netboot/swarm) onto a disk: the .torrent from rackflow.torrent, refused
// unless its info hash is rackflow.infohash; peers from its tracker, and
// rackflow.image as web seed when no new piece arrives from them for
// swarm.DefaultWebSeedStall. Every piece is checked against its SHA-1
// before it is written.
type swarmFetcher struct {
	client        *http.Client  // fetches the .torrent and polls it while seeding
	retry         retryPolicy   // .torrent fetch failures (not an info hash mismatch)
	listen        string        // peer listen address, e.g. "0.0.0.0:0"
	progressEvery time.Duration // interval of "image progress" lines; 0 = none
	withdrawPoll  time.Duration // how often a seeding agent checks its .torrent
	con           *console
}

// swarmDownload is a finished swarm download, still seeding from the disk.
type swarmDownload struct {
	download
	leecher *swarm.Leecher
}

// fetch downloads args' torrent onto d. An image larger than the disk is
// refused before anything is written. Errors start with "image:", except a
// *tooLargeError.
func (f *swarmFetcher) fetch(ctx context.Context, args netboot.AgentArgs, d *disk) (*swarmDownload, error) {
	start := time.Now()
	type fetched struct {
		mi   *metainfo.MetaInfo
		info metainfo.Info
	}
	got, err := backoff.Retry(ctx, func() (fetched, error) {
		mi, info, err := swarm.Fetch(ctx, f.client, args.TorrentURL, args.InfoHash)
		if errors.Is(err, swarm.ErrInfoHashMismatch) {
			return fetched{}, backoff.Permanent(err)
		}
		return fetched{mi, info}, err
	}, f.retry.options(f.retry.reporter(f.con, "image"))...)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if d.size > 0 && got.info.Length > d.size {
		return nil, &tooLargeError{Image: got.info.Length, Disk: d.path, DiskSize: d.size}
	}
	l, err := swarm.NewLeecher(swarm.LeecherConfig{ListenAddr: f.listen, UploadRate: args.UploadRate})
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	x, err := l.Add(got.mi, d.f, swarm.Options{})
	if err == nil {
		err = x.Wait(ctx, f.progressEvery, func(p swarm.Progress) {
			if f.con != nil {
				f.con.step("image progress %d of %d bytes (%d%%) at %.1f MB/s", p.Bytes, p.Total, p.Bytes*100/p.Total, rateMBps(p.Bytes, p.Elapsed))
			}
		})
	}
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("image: swarm download of %s: %w", args.TorrentURL, err)
	}
	p := x.Progress()
	if f.con != nil {
		f.con.step("image swarm %d bytes from peers, %d from web seeds, %d bad pieces", p.FromPeers, p.FromWebSeeds, p.BadPieces)
	}
	return &swarmDownload{download: download{Bytes: got.info.Length, Elapsed: time.Since(start)}, leecher: l}, nil
}

// seed keeps serving the image to peers for up to d, until the .torrent
// is withdrawn or ctx ends, then stops the client. It returns why it
// stopped (swarm.Stop*).
func (f *swarmFetcher) seed(ctx context.Context, dl *swarmDownload, torrentURL string, d time.Duration) string {
	defer dl.leecher.Close()
	return swarm.KeepSeeding(ctx, f.client, torrentURL, d, f.withdrawPoll)
}
