package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// imageServer serves img at /image.raw; behave, when set, may answer a
// request itself (returning true) before the normal Range-capable answer.
type imageServer struct {
	img    []byte
	behave func(w http.ResponseWriter, r *http.Request, n int) bool

	mu       sync.Mutex
	requests []*http.Request
}

func (s *imageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Clone(context.Background()))
	n := len(s.requests)
	s.mu.Unlock()
	if r.URL.Path != "/image.raw" {
		http.NotFound(w, r)
		return
	}
	if s.behave != nil && s.behave(w, r, n) {
		return
	}
	w.Header().Set("ETag", `"v1"`)
	http.ServeContent(w, r, "image.raw", time.Unix(1700000000, 0), bytes.NewReader(s.img))
}

func (s *imageServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *imageServer) request(i int) *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[i]
}

// installResult is what runInstall observed.
type installResult struct {
	dl     download
	onDisk string
	err    error
	out    string
}

// runInstall writes url onto the regular file path (capacity limit when
// > 0) as the agent does and checks the digest against want.
func runInstall(t *testing.T, url, path string, limit int64, want string, stall time.Duration) installResult {
	t.Helper()
	con, buf := testConsole()
	d, err := openDisk(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	d.size = limit
	f := &imageFetcher{client: &http.Client{Transport: newTransport()}, retry: fastRetry(5), stallTimeout: stall, con: con}
	ctx := context.Background()
	var res installResult
	res.dl, res.err = f.fetch(ctx, url, d)
	if res.err == nil {
		res.onDisk, res.err = d.readBack(ctx, res.dl.Bytes)
	}
	if res.err == nil {
		res.err = checkDigest(want, res.dl, res.onDisk, url, path)
	}
	res.out = buf.String()
	return res
}

func TestImageInstall(t *testing.T) {
	img := testImage(3*copyBufferSize + 12345)
	wrong := digestOf([]byte("another image"))
	tests := []struct {
		name      string
		path      string // URL path; default /image.raw
		behave    func(w http.ResponseWriter, r *http.Request, n int) bool
		limit     int64
		want      string // expected digest argument; default the image's
		stall     time.Duration
		wantErr   string // substring; "" = success
		requests  int
		retries   int  // "retry image:" lines
		untouched bool // the target stays empty
		check     func(t *testing.T, s *imageServer)
	}{
		{name: "happy path", requests: 1},
		{name: "fits exactly", limit: int64(len(img)), requests: 1},
		{
			name: "not found", path: "/missing.raw", requests: 1, untouched: true,
			wantErr: "image: HTTP 404 Not Found from http://",
		},
		{
			name: "forbidden is final", requests: 1, untouched: true, wantErr: "image: HTTP 403 Forbidden",
			behave: func(w http.ResponseWriter, r *http.Request, n int) bool {
				http.Error(w, "no", http.StatusForbidden)
				return true
			},
		},
		{
			name: "digest mismatch", want: wrong, requests: 1,
			wantErr: "digest mismatch: image from http://",
		},
		{
			name: "too large for the disk", limit: int64(len(img)) - 1, requests: 1, untouched: true,
			wantErr: fmt.Sprintf("image is 3.0 MiB (%d bytes), disk ", len(img)),
		},
		{
			name: "too large without Content-Length", limit: copyBufferSize, requests: 1,
			wantErr: "image is larger than disk",
			behave: func(w http.ResponseWriter, r *http.Request, n int) bool {
				for off := 0; off < len(img); off += 64 << 10 {
					w.Write(img[off:min(off+64<<10, len(img))])
					w.(http.Flusher).Flush() // chunked: no Content-Length
				}
				return true
			},
		},
		{
			name: "two 503 then success", requests: 3, retries: 2,
			behave: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n <= 2 {
					http.Error(w, "busy", http.StatusServiceUnavailable)
					return true
				}
				return false
			},
		},
		{
			name: "always 500 gives up", requests: 5, retries: 4, untouched: true,
			wantErr: "image: HTTP 500 Internal Server Error",
			behave: func(w http.ResponseWriter, r *http.Request, n int) bool {
				http.Error(w, "broken", http.StatusInternalServerError)
				return true
			},
		},
		{
			name: "connection cut mid-body resumes with Range", requests: 2, retries: 1,
			behave: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n > 1 {
					return false
				}
				w.Header().Set("ETag", `"v1"`)
				w.Header().Set("Content-Length", fmt.Sprint(len(img)))
				w.Write(img[:len(img)/2])
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			},
			check: func(t *testing.T, s *imageServer) {
				r := s.request(1)
				if got, want := r.Header.Get("Range"), fmt.Sprintf("bytes=%d-", len(img)/2); got != want {
					t.Errorf("resume Range = %q, want %q", got, want)
				}
				if got := r.Header.Get("If-Range"); got != `"v1"` {
					t.Errorf("resume If-Range = %q", got)
				}
			},
		},
		{
			name: "changed image on resume starts over", requests: 2, retries: 1,
			behave: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n > 1 {
					return false // ETag "v1" does not match If-Range "v0": full 200
				}
				w.Header().Set("ETag", `"v0"`)
				w.Header().Set("Content-Length", fmt.Sprint(len(img)))
				w.Write(bytes.Repeat([]byte{0xee}, len(img)/2))
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			},
		},
		{
			name: "stalled transfer is retried", requests: 2, retries: 1, stall: 100 * time.Millisecond,
			behave: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n > 1 {
					return false
				}
				w.Header().Set("Content-Length", fmt.Sprint(len(img)))
				w.Write(img[:1000])
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
				return true
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &imageServer{img: img, behave: tt.behave}
			srv := httptest.NewServer(s)
			defer srv.Close()
			path := emptyFile(t, "disk.img")
			// Leftovers beyond the image must not survive on a file target.
			if err := os.WriteFile(path, bytes.Repeat([]byte{0xff}, len(img)+4096), 0o600); err != nil {
				t.Fatal(err)
			}
			if tt.untouched {
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
			}
			urlPath, want, stall := "/image.raw", digestOf(img), 5*time.Second
			if tt.path != "" {
				urlPath = tt.path
			}
			if tt.want != "" {
				want = tt.want
			}
			if tt.stall != 0 {
				stall = tt.stall
			}
			res := runInstall(t, srv.URL+urlPath, path, tt.limit, want, stall)
			t.Logf("err: %v\n%s", res.err, res.out)

			if tt.wantErr == "" && res.err != nil {
				t.Fatalf("err = %v\n%s", res.err, res.out)
			}
			if tt.wantErr != "" && (res.err == nil || !strings.Contains(res.err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want one containing %q\n%s", res.err, tt.wantErr, res.out)
			}
			if got := s.count(); got != tt.requests {
				t.Errorf("requests = %d, want %d", got, tt.requests)
			}
			if got := strings.Count(res.out, "retry image: "); got != tt.retries {
				t.Errorf("retry lines = %d, want %d:\n%s", got, tt.retries, res.out)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.untouched && len(got) != 0:
				t.Errorf("target has %d bytes, want none written", len(got))
			case res.err == nil || strings.HasPrefix(res.err.Error(), "digest mismatch"):
				if !bytes.Equal(got, img) {
					t.Errorf("target holds %d bytes (digest %s), want the %d-byte image", len(got), digestOf(got), len(img))
				}
				if res.onDisk != digestOf(img) || res.dl.Digest != digestOf(img) || res.dl.Bytes != int64(len(img)) {
					t.Errorf("download %+v, read back %s", res.dl, res.onDisk)
				}
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func TestCheckDigest(t *testing.T) {
	a, b, c := digestOf([]byte("a")), digestOf([]byte("b")), digestOf([]byte("c"))
	tests := []struct {
		name             string
		want, dl, onDisk string
		wantErr          []string // substrings
	}{
		{name: "ok", want: a, dl: a, onDisk: a},
		{name: "wrong image", want: a, dl: b, onDisk: b, wantErr: []string{"digest mismatch: image from http://x/i is " + b + ", want " + a}},
		{name: "disk corrupts", want: a, dl: a, onDisk: b, wantErr: []string{"disk /dev/vda reads back " + b + ", want " + a, "the download matched"}},
		{name: "all differ", want: a, dl: b, onDisk: c, wantErr: []string{"reads back " + c, "download was " + b, "want " + a}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkDigest(tt.want, download{Digest: tt.dl}, tt.onDisk, "http://x/i", "/dev/vda")
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in           string
		first, total int64
		ok           bool
	}{
		{"bytes 100-199/200", 100, 200, true},
		{"bytes 0-0/1", 0, 1, true},
		{"bytes 5-9/*", 5, -1, true},
		{"bytes 100-199/150", 0, 0, false},
		{"bytes 9-5/20", 0, 0, false},
		{"bytes */200", 0, 0, false},
		{"items 1-2/3", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		first, total, ok := parseContentRange(tt.in)
		if ok != tt.ok || (ok && (first != tt.first || total != tt.total)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", tt.in, first, total, ok)
		}
	}
}

func TestOpenDiskRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{dir + "/missing", dir, "/dev/null"} {
		d, err := openDisk(p)
		if err == nil {
			d.close()
			t.Errorf("openDisk(%s) succeeded", p)
			continue
		}
		if !strings.HasPrefix(err.Error(), "disk: ") {
			t.Errorf("openDisk(%s) = %v, want a disk: error", p, err)
		}
	}
	if _, err := os.Stat(dir + "/missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("openDisk created the missing target")
	}
}
