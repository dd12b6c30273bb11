package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// userAgent is sent with every HTTP request.
const userAgent = "rackflow-agent"

// copyBufferSize is the size of each write to the disk.
const copyBufferSize = 1 << 20

// errStalled cancels an image request that received no data for
// imageFetcher.stallTimeout.
var errStalled = errors.New("transfer stalled")

// imageFetcher streams a disk image over HTTP onto a disk.
type imageFetcher struct {
	client        *http.Client
	retry         retryPolicy   // transient failures: network errors, 5xx, 408, 429, stalls
	stallTimeout  time.Duration // an attempt with no data for this long is retried; 0 = never
	progressEvery time.Duration // interval of "image progress" lines; 0 = none
	con           *console      // retry and progress lines; nil = silent
}

// download is the outcome of imageFetcher.fetch.
type download struct {
	Bytes   int64         // bytes written to the disk
	Digest  string        // "sha256:<hex>" of the bytes as received
	Elapsed time.Duration // from the first request to the last byte
}

// tooLargeError reports an image that does not fit the disk. Its message
// names both sizes and carries no step prefix ("image is 5.0 GiB ...").
type tooLargeError struct {
	Image    int64 // image size in bytes; -1 when the server did not say
	Disk     string
	DiskSize int64
}

func (e *tooLargeError) Error() string {
	if e.Image < 0 {
		return fmt.Sprintf("image is larger than disk %s (%s, %d bytes)", e.Disk, humanBytes(e.DiskSize), e.DiskSize)
	}
	return fmt.Sprintf("image is %s (%d bytes), disk %s is %s (%d bytes)",
		humanBytes(e.Image), e.Image, e.Disk, humanBytes(e.DiskSize), e.DiskSize)
}

// transfer is the state of one download across attempts: a failed
// attempt resumes at off with a Range request when the server allows it.
type transfer struct {
	url       string
	disk      *disk
	h         hash.Hash
	off       int64  // bytes written and hashed so far
	total     int64  // image size, -1 when unknown
	validator string // ETag or Last-Modified of the image, for If-Range
	buf       []byte
	start     time.Time
	reported  time.Time // last progress line
}

// restart forgets the bytes received so far.
func (t *transfer) restart() {
	t.h.Reset()
	t.off = 0
}

// fetch downloads url onto d, hashing what it writes, retrying transient
// failures per f.retry. It refuses an image larger than the disk before
// writing when the server sends its size. Errors start with "image:",
// except a *tooLargeError.
func (f *imageFetcher) fetch(ctx context.Context, url string, d *disk) (download, error) {
	t := &transfer{url: url, disk: d, h: sha256.New(), total: -1, buf: make([]byte, copyBufferSize), start: time.Now()}
	t.reported = t.start
	notify := f.retry.reporter(f.con, "image")
	_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, f.attempt(ctx, t) }, f.retry.options(notify)...)
	dl := download{Bytes: t.off, Digest: "sha256:" + hex.EncodeToString(t.h.Sum(nil)), Elapsed: time.Since(t.start)}
	if err != nil {
		var tl *tooLargeError
		if errors.As(err, &tl) {
			return dl, err
		}
		return dl, fmt.Errorf("image: %w", err)
	}
	return dl, nil
}

// attempt makes one GET (a Range request when resuming) and copies the
// body onto the disk. Errors wrapped in backoff.Permanent are not retried.
func (f *imageFetcher) attempt(ctx context.Context, t *transfer) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stallTimeout := f.stallTimeout
	if stallTimeout <= 0 {
		stallTimeout = time.Duration(1<<63 - 1) // no stall detection
	}
	stall := time.AfterFunc(stallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()

	req, err := http.NewRequestWithContext(actx, http.MethodGet, t.url, nil)
	if err != nil {
		return backoff.Permanent(err)
	}
	req.Header.Set("User-Agent", userAgent)
	if t.off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", t.off))
		if t.validator != "" {
			req.Header.Set("If-Range", t.validator)
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return f.attemptError(ctx, actx, t, err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusOK:
		t.restart()
		t.total = resp.ContentLength
		t.validator = resp.Header.Get("ETag")
		if t.validator == "" {
			t.validator = resp.Header.Get("Last-Modified")
		}
	case resp.StatusCode == http.StatusPartialContent && t.off > 0:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != t.off {
			t.restart()
			return fmt.Errorf("HTTP 206 with Content-Range %q to resume at byte %d; starting over", resp.Header.Get("Content-Range"), t.off)
		}
		t.total = total
	default:
		return statusError(resp, t)
	}
	if d := t.disk; d.size > 0 && t.total > d.size {
		return backoff.Permanent(&tooLargeError{Image: t.total, Disk: d.path, DiskSize: d.size})
	}

	for {
		n, rerr := resp.Body.Read(t.buf)
		if n > 0 {
			stall.Reset(stallTimeout)
			if d := t.disk; d.size > 0 && t.off+int64(n) > d.size {
				return backoff.Permanent(&tooLargeError{Image: t.total, Disk: d.path, DiskSize: d.size})
			}
			if _, err := t.disk.f.WriteAt(t.buf[:n], t.off); err != nil {
				return backoff.Permanent(fmt.Errorf("write %s at byte %d: %w", t.disk.path, t.off, err))
			}
			t.h.Write(t.buf[:n])
			t.off += int64(n)
			f.progress(t)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return f.attemptError(ctx, actx, t, fmt.Errorf("read %s after %d bytes: %w", t.url, t.off, rerr))
		}
	}
	if t.total >= 0 && t.off != t.total {
		return fmt.Errorf("%s ended at byte %d of %d", t.url, t.off, t.total)
	}
	return nil
}

// attemptError turns a request or body error into the error of the
// attempt: the parent context's cause when it ended (Retry then stops), a
// stall message when the stall timer fired, else err (retried).
func (f *imageFetcher) attemptError(ctx, actx context.Context, t *transfer, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if errors.Is(context.Cause(actx), errStalled) {
		return fmt.Errorf("no data from %s for %s (after %d bytes)", t.url, f.stallTimeout, t.off)
	}
	return err
}

// statusError is the error for an unexpected HTTP status: retried for 5xx,
// 408, 429 (and 416 on a resume, starting over); final otherwise.
func statusError(resp *http.Response, t *transfer) error {
	err := fmt.Errorf("HTTP %s from %s", resp.Status, t.url)
	switch c := resp.StatusCode; {
	case c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return err
	case c == http.StatusRequestedRangeNotSatisfiable && t.off > 0:
		t.restart()
		return err
	}
	return backoff.Permanent(err)
}

// parseContentRange parses "bytes <first>-<last>/<total>" (total may be
// "*": -1) and returns first and total.
func parseContentRange(v string) (first, total int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, 0, false
	}
	if tot == "*" {
		return first, -1, true
	}
	total, err := strconv.ParseInt(tot, 10, 64)
	if err != nil || total <= last {
		return 0, 0, false
	}
	return first, total, true
}

// progress prints an "image progress" line when f.progressEvery has passed
// since the last one.
func (f *imageFetcher) progress(t *transfer) {
	if f.con == nil || f.progressEvery <= 0 || time.Since(t.reported) < f.progressEvery {
		return
	}
	t.reported = time.Now()
	rate := rateMBps(t.off, time.Since(t.start))
	if t.total > 0 {
		f.con.step("image progress %d of %d bytes (%d%%) at %.1f MB/s", t.off, t.total, t.off*100/t.total, rate)
		return
	}
	f.con.step("image progress %d bytes at %.1f MB/s", t.off, rate)
}

// checkDigest compares the digest read back from the disk with want. The
// mismatch error names the digests involved and tells whether the download
// or the disk differs.
func checkDigest(want string, dl download, onDisk, url, diskPath string) error {
	switch {
	case onDisk == want:
		return nil
	case dl.Digest == onDisk:
		return fmt.Errorf("digest mismatch: image from %s is %s, want %s", url, onDisk, want)
	case dl.Digest == want:
		return fmt.Errorf("digest mismatch: disk %s reads back %s, want %s (the download matched; the disk did not keep what was written)", diskPath, onDisk, want)
	default:
		return fmt.Errorf("digest mismatch: disk %s reads back %s, download was %s, want %s", diskPath, onDisk, dl.Digest, want)
	}
}
