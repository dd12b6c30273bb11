package netboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

func get(t *testing.T, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func httpEnv(t *testing.T) *testEnv {
	t.Helper()
	return startService(t, func(c *Config) { c.DHCPAddr, c.TFTPAddr = "", "" })
}

func TestHTTPBootScript(t *testing.T) {
	env := httpEnv(t)
	base := env.svc.HTTPBase()
	args := validAgentArgs().Encode()
	profiles := []Profile{
		{MAC: "02:52:46:01:00:01", Node: "r01n01", Mode: ModeInstall, Kernel: "vmlinuz", Initrd: "initrd.img", Args: args},
		{MAC: "02:52:46:01:00:02", Node: "r01n02", Mode: ModeLocal},
		{MAC: "02:52:46:01:00:03", Node: "r01n03", Mode: ModeInstall, Kernel: "debian/vmlinuz"},
	}
	for _, p := range profiles {
		if err := env.svc.Store().Put(p); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, path string
		wantStatus int
		wantBody   string
	}{
		{"install", "/boot/02:52:46:01:00:01.ipxe", 200,
			"#!ipxe\nkernel " + base + "/artifacts/vmlinuz initrd=initrd.img " + strings.Join(args, " ") + "\ninitrd " + base + "/artifacts/initrd.img\nboot\n"},
		{"install, dashed upper-case MAC", "/boot/02-52-46-01-00-01.ipxe", 200,
			"#!ipxe\nkernel " + base + "/artifacts/vmlinuz initrd=initrd.img " + strings.Join(args, " ") + "\ninitrd " + base + "/artifacts/initrd.img\nboot\n"},
		{"local", "/boot/02:52:46:01:00:02.ipxe", 200, "#!ipxe\nexit\n"},
		{"install without initrd or args", "/boot/02:52:46:01:00:03.ipxe", 200,
			"#!ipxe\nkernel " + base + "/artifacts/debian/vmlinuz\nboot\n"},
		{"unknown MAC", "/boot/02:52:46:01:00:99.ipxe", 404, ""},
		{"invalid MAC", "/boot/not-a-mac.ipxe", 400, ""},
		{"wrong suffix", "/boot/02:52:46:01:00:01.txt", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, base+tt.path, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Fatalf("body:\n%s\nwant:\n%s", body, tt.wantBody)
			}
		})
	}
}

func TestHTTPFiles(t *testing.T) {
	env := httpEnv(t)
	base := env.svc.HTTPBase()
	kernel := randomBytes(t, 100_000)
	image := randomBytes(t, 300_000)
	writeFile(t, env.artifacts, "vmlinuz", kernel)
	writeFile(t, env.artifacts, "debian/initrd.img", kernel[:1000])
	secret := writeFile(t, env.outside, "secret", []byte("outside the root"))
	if err := os.Symlink(secret, filepath.Join(env.artifacts, "escape")); err != nil {
		t.Fatal(err)
	}
	rootDir := filepath.Join(env.outside, "root-r01n01")
	writeFile(t, rootDir, "image.raw", image)
	if err := env.svc.Store().Export("r01n01", rootDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(rootDir, "escape")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, path   string
		header       map[string]string
		wantStatus   int
		wantBody     []byte
		wantCRPrefix string // Content-Range
	}{
		{"artifact", "/artifacts/vmlinuz", nil, 200, kernel, ""},
		{"artifact in subdirectory", "/artifacts/debian/initrd.img", nil, 200, kernel[:1000], ""},
		{"artifact range", "/artifacts/vmlinuz", map[string]string{"Range": "bytes=1000-1999"}, 206, kernel[1000:2000], "bytes 1000-1999/100000"},
		{"artifact suffix range", "/artifacts/vmlinuz", map[string]string{"Range": "bytes=-10"}, 206, kernel[len(kernel)-10:], "bytes 99990-99999/100000"},
		{"artifact unsatisfiable range", "/artifacts/vmlinuz", map[string]string{"Range": "bytes=200000-"}, 416, nil, "bytes */100000"},
		{"missing artifact", "/artifacts/nope", nil, 404, nil, ""},
		{"artifact directory", "/artifacts/debian", nil, 404, nil, ""},
		{"artifact symlink escape", "/artifacts/escape", nil, 404, nil, ""},
		{"artifact dot-dot", "/artifacts/../outside/secret", nil, 404, nil, ""},
		{"artifact encoded dot-dot", "/artifacts/%2e%2e/%2e%2e/outside/secret", nil, 404, nil, ""},
		{"export", "/exports/r01n01/image.raw", nil, 200, image, ""},
		{"export range", "/exports/r01n01/image.raw", map[string]string{"Range": "bytes=250000-"}, 206, image[250000:], "bytes 250000-299999/300000"},
		{"export symlink escape", "/exports/r01n01/escape", nil, 404, nil, ""},
		{"not exported", "/exports/r01n02/image.raw", nil, 404, nil, ""},
		{"bad node name", "/exports/R01/image.raw", nil, 404, nil, ""},
		{"healthz", "/healthz", nil, 200, []byte("ok\n"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, base+tt.path, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if strings.Contains(string(body), "outside the root") {
				t.Fatal("served a file outside the root")
			}
			if tt.wantBody != nil {
				equalBytes(t, tt.path, body, tt.wantBody)
			}
			if cr := resp.Header.Get("Content-Range"); cr != tt.wantCRPrefix {
				t.Fatalf("Content-Range %q, want %q", cr, tt.wantCRPrefix)
			}
		})
	}

	t.Run("ETag and Last-Modified revalidate", func(t *testing.T) {
		resp, _ := get(t, base+"/artifacts/vmlinuz", nil)
		etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		if etag == "" || lm == "" || resp.Header.Get("Accept-Ranges") != "bytes" {
			t.Fatalf("ETag %q, Last-Modified %q, Accept-Ranges %q", etag, lm, resp.Header.Get("Accept-Ranges"))
		}
		if resp, _ := get(t, base+"/artifacts/vmlinuz", map[string]string{"If-None-Match": etag}); resp.StatusCode != 304 {
			t.Fatalf("If-None-Match: status %d, want 304", resp.StatusCode)
		}
		resp, body := get(t, base+"/artifacts/vmlinuz", map[string]string{"If-Range": etag, "Range": "bytes=0-9"})
		if resp.StatusCode != 206 {
			t.Fatalf("If-Range: status %d, want 206", resp.StatusCode)
		}
		equalBytes(t, "If-Range body", body, kernel[:10])
	})

	t.Run("unexport stops serving", func(t *testing.T) {
		if err := env.svc.Store().Unexport("r01n01"); err != nil {
			t.Fatal(err)
		}
		if resp, _ := get(t, base+"/exports/r01n01/image.raw", nil); resp.StatusCode != 404 {
			t.Fatalf("status %d after Unexport, want 404", resp.StatusCode)
		}
	})
}

func TestHTTPCheckIn(t *testing.T) {
	env := httpEnv(t)
	url := env.svc.HTTPBase() + "/v1/checkin"
	env.signaler.errs["r01n09"] = fmt.Errorf("signal node/r01n09: %w", ErrNoOperation)
	env.signaler.errs["r01n08"] = fmt.Errorf("temporal unavailable: %w", errTest)
	checkin := func(node, run string) CheckIn {
		return CheckIn{Node: node, Run: run, Token: MintToken(testKey, node, run), Status: CheckInOK,
			Digest: "sha256:" + strings.Repeat("0f", 32)}
	}
	asJSON := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	valid := checkin("r01n01", "run-1")
	noToken := valid
	noToken.Token = ""
	wrongRun := valid
	wrongRun.Token = MintToken(testKey, "r01n01", "run-2")
	otherKey := valid
	otherKey.Token = MintToken([]byte("another key, 16+ bytes"), "r01n01", "run-1")
	failed := checkin("r01n02", "run-7")
	failed.Status, failed.Message, failed.Digest = CheckInError, "disk /dev/sda not found", ""
	badStatus := valid
	badStatus.Status = "done"
	badDigest := valid
	badDigest.Digest = "md5:abc"

	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		wantStatus  int
		wantSignal  *CheckIn // expected Signaler call; nil → not called
	}{
		{"valid", http.MethodPost, "application/json", asJSON(valid), 202, &valid},
		{"agent error report", http.MethodPost, "application/json", asJSON(failed), 202, &failed},
		{"missing token", http.MethodPost, "application/json", asJSON(noToken), 401, nil},
		{"token for another run", http.MethodPost, "application/json", asJSON(wrongRun), 403, nil},
		{"token from another key", http.MethodPost, "application/json", asJSON(otherKey), 403, nil},
		{"malformed JSON", http.MethodPost, "application/json", `{"node": "r01n01",`, 400, nil},
		{"not an object", http.MethodPost, "application/json", `["r01n01"]`, 400, nil},
		{"empty body", http.MethodPost, "application/json", ``, 400, nil},
		{"unknown field", http.MethodPost, "application/json",
			strings.TrimSuffix(asJSON(valid), "}") + `,"admin":true}`, 400, nil},
		{"trailing data", http.MethodPost, "application/json", asJSON(valid) + `{}`, 400, nil},
		{"missing node", http.MethodPost, "application/json", `{"run":"run-1","token":"x","status":"ok"}`, 400, nil},
		{"missing status", http.MethodPost, "application/json",
			`{"node":"r01n01","run":"run-1","token":"` + valid.Token + `"}`, 400, nil},
		{"bad status", http.MethodPost, "application/json", asJSON(badStatus), 400, nil},
		{"bad digest", http.MethodPost, "application/json", asJSON(badDigest), 400, nil},
		{"too large", http.MethodPost, "application/json",
			`{"node":"r01n01","run":"run-1","token":"` + valid.Token + `","status":"error","message":"` +
				strings.Repeat("x", MaxCheckInBody) + `"}`, 413, nil},
		{"GET", http.MethodGet, "", "", 405, nil},
		{"PUT", http.MethodPut, "application/json", asJSON(valid), 405, nil},
		{"no operation in progress", http.MethodPost, "application/json", asJSON(checkin("r01n09", "run-3")), 409, ptr(checkin("r01n09", "run-3"))},
		{"signaler failure", http.MethodPost, "application/json", asJSON(checkin("r01n08", "run-4")), 502, ptr(checkin("r01n08", "run-4"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.signaler.take()
			req, err := http.NewRequest(tt.method, url, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var reply map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tt.wantStatus, reply)
			}
			if tt.wantStatus >= 400 && reply["error"] == "" {
				t.Fatalf("error body %v has no \"error\"", reply)
			}
			if tt.wantStatus == 405 && resp.Header.Get("Allow") != http.MethodPost {
				t.Fatalf("Allow = %q, want POST", resp.Header.Get("Allow"))
			}
			calls := env.signaler.take()
			switch {
			case tt.wantSignal == nil && len(calls) != 0:
				t.Fatalf("Signaler called %d times on a refused check-in", len(calls))
			case tt.wantSignal != nil && (len(calls) != 1 || calls[0] != *tt.wantSignal):
				t.Fatalf("Signaler calls %+v, want [%+v]", calls, *tt.wantSignal)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestHTTPTorrentsAndTracker: /torrents/ serves each run's .torrent of a
// node and nothing else (bad names, traversal, another run, the old
// one-per-node path); deleting one run's leaves the node's others, and
// Unexport withdraws them all.
func TestHTTPTorrentsAndTracker(t *testing.T) {
	announced := 0
	env := startService(t, func(c *Config) {
		c.DHCPAddr, c.TFTPAddr = "", ""
		c.Tracker = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			announced++
			_, _ = io.WriteString(w, "d8:intervali60ee")
		})
	})
	base := env.svc.HTTPBase()
	const run1, run2 = "0193f6a2-6c1e-7d0b-9a4e-3f1c2b5d8e01", "0193f6a2-6c1e-7d0b-9a4e-3f1c2b5d8e02"
	data1, data2 := []byte("d4:infod6:lengthi1eee"), []byte("d4:infod6:lengthi2eee")
	st := env.svc.Store()
	if err := st.PutTorrent("r01n01", run1, data1); err != nil {
		t.Fatal(err)
	}
	if err := st.PutTorrent("r01n01", run2, data2); err != nil {
		t.Fatal(err)
	}
	if err := st.PutTorrent("r01n01", run1, data1); err != nil { // a retried export
		t.Fatal(err)
	}
	if got := TorrentPath("r01n01", run1); got != "/torrents/r01n01/"+run1+".torrent" {
		t.Errorf("TorrentPath = %q", got)
	}
	for _, tc := range []struct{ node, run string }{
		{"../x", run1}, {"", run1}, {"R01N01", run1},
		{"r01n01", ""}, {"r01n01", "../x"}, {"r01n01", "a/b"}, {"r01n01", "a.b"}, {"r01n01", ".."},
		{"r01n01", strings.Repeat("a", 65)},
	} {
		if err := st.PutTorrent(tc.node, tc.run, data1); !errors.Is(err, ErrInvalidName) {
			t.Errorf("PutTorrent(%q, %q) = %v, want ErrInvalidName", tc.node, tc.run, err)
		}
		if err := st.DeleteTorrent(tc.node, tc.run); !errors.Is(err, ErrInvalidName) {
			t.Errorf("DeleteTorrent(%q, %q) = %v, want ErrInvalidName", tc.node, tc.run, err)
		}
	}
	for _, tc := range []struct {
		path   string
		status int
		body   []byte
	}{
		{"/torrents/r01n01/" + run1 + ".torrent", 200, data1},
		{"/torrents/r01n01/" + run2 + ".torrent", 200, data2},
		{"/torrents/r01n01/" + run1, 404, nil},
		{"/torrents/r01n01/0193f6a2-0000.torrent", 404, nil},
		{"/torrents/r01n02/" + run1 + ".torrent", 404, nil},
		{"/torrents/R01N01/" + run1 + ".torrent", 404, nil},
		{"/torrents/r01n01.torrent", 404, nil},
		{"/torrents/r01n01", 404, nil},
		{"/torrents/r01n01/", 404, nil},
		{"/torrents/..%2Fprofiles/" + run1 + ".torrent", 404, nil},
		{"/torrents/r01n01/..%2F..%2Fprofiles.torrent", 404, nil},
		{"/torrents/r01n01/" + run1 + ".torrent/x", 404, nil},
		{"/torrents/r01n01/.tmp-x.torrent", 404, nil},
		{"/announce?info_hash=x", 200, nil},
	} {
		resp, body := get(t, base+tc.path, nil)
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: status %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		if tc.body != nil {
			equalBytes(t, tc.path, body, tc.body)
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-bittorrent" {
				t.Errorf("Content-Type %q", ct)
			}
		}
	}
	if announced != 1 {
		t.Errorf("tracker saw %d announces, want 1", announced)
	}
	for range 2 { // deleting again finds nothing to do
		if err := st.DeleteTorrent("r01n01", run1); err != nil {
			t.Fatal(err)
		}
	}
	if resp, _ := get(t, base+TorrentPath("r01n01", run1), nil); resp.StatusCode != 404 {
		t.Errorf("status %d after DeleteTorrent, want 404", resp.StatusCode)
	}
	if resp, _ := get(t, base+TorrentPath("r01n01", run2), nil); resp.StatusCode != 200 {
		t.Errorf("the other run's .torrent: status %d after DeleteTorrent, want 200", resp.StatusCode)
	}
	if err := st.Unexport("r01n01"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, base+TorrentPath("r01n01", run2), nil); resp.StatusCode != 404 {
		t.Fatalf("status %d after Unexport, want 404", resp.StatusCode)
	}
	noTracker := httpEnv(t)
	if resp, _ := get(t, noTracker.svc.HTTPBase()+"/announce", nil); resp.StatusCode != 404 {
		t.Fatalf("announce without a tracker: status %d, want 404", resp.StatusCode)
	}
}
