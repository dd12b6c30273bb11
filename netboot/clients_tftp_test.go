package netboot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Real TFTP clients (tftp-hpa's tftp, curl) against the service in a
// namespace of the test's own, in both port modes and with sender
// anticipation: byte-identical downloads
// (a 32 MiB file too, outside -short), blksize negotiated (curl asks for
// 1468; the server's datagram count proves the block size used), and
// traversal attempts refused with a TFTP error and no content.

// tftpFixture is a served root and a secret outside it.
type tftpFixture struct {
	root   string
	secret []byte // content of ../outside/secret relative to root
	files  map[string][]byte
}

func newTFTPFixture(t *testing.T) *tftpFixture {
	t.Helper()
	base := t.TempDir()
	fx := &tftpFixture{
		root:   filepath.Join(base, "root"),
		secret: []byte("rackflow-secret-" + strings.Repeat("s", 100) + "\n"),
		files: map[string][]byte{
			"undionly.kpxe": randomBytes(t, 300*1024+123), // not a multiple of 512 or 1468
			"efi/ipxe.efi":  randomBytes(t, 1468*512),     // a multiple of both: ends with an empty block
		},
	}
	if !testing.Short() {
		// 65536 blocks at 512 bytes: the block number wraps past 65535.
		fx.files["big.bin"] = randomBytes(t, 32<<20)
	}
	for name, data := range fx.files {
		writeFile(t, fx.root, name, data)
	}
	secret := writeFile(t, base, "outside/secret", fx.secret)
	for link, target := range map[string]string{"escape-rel": "../outside/secret", "escape-abs": secret} {
		if err := os.Symlink(target, filepath.Join(fx.root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

// tftpTraversals are names that must be refused: each resolves outside the
// root (or to /etc/passwd).
var tftpTraversals = []string{"../etc/passwd", "../../../../../../etc/passwd", "../outside/secret", "/etc/passwd",
	"efi/../../outside/secret", "escape-rel", "escape-abs"}

func TestRealClientTFTP(t *testing.T) {
	requireRealClients(t, "tftp", "curl")
	for _, m := range []struct {
		name string
		mode tftpMode
	}{
		{"single port", tftpMode{singlePort: true}},
		{"port per transfer", tftpMode{}},
		{"anticipate 8", tftpMode{anticipate: 8}},
	} {
		t.Run(m.name, func(t *testing.T) {
			n := newNSNet(t, true)
			fx := newTFTPFixture(t)
			log := n.startTFTPHelper(t, fx.root, m.mode)
			testRealTFTPClients(t, n, fx, log, m.mode)
		})
	}
}

// tftpGet downloads remote with client "tftp-hpa" or "curl" (blksize 0 →
// the client's default) into a fresh file and returns its content (nil when
// the client created none) and whether the client reported success.
func tftpGet(t *testing.T, n *nsNet, client, remote string, blksize int) ([]byte, bool) {
	t.Helper()
	dir := t.TempDir()
	local := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var args []string
	var name string
	switch client {
	case "tftp-hpa":
		if blksize != 0 {
			t.Fatal("tftp-hpa's client negotiates no options (it has no blksize command)")
		}
		name, args = "tftp", []string{"-m", "binary", nsServerIP, "-c", "get", remote, local}
	case "curl":
		name = "curl"
		args = []string{"-sS", "--path-as-is", "--max-time", "80", "-o", local}
		if blksize != 0 {
			args = append(args, "--tftp-blksize", strconv.Itoa(blksize))
		}
		args = append(args, "tftp://"+nsServerIP+"/"+remote)
	default:
		t.Fatalf("unknown client %q", client)
	}
	cmd := n.clientCmd(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	ok := err == nil
	if client == "tftp-hpa" && bytes.Contains(out, []byte("Error code")) {
		ok = false // tftp-hpa 5.2 may exit 0 after a TFTP error
	}
	if len(out) > 0 {
		t.Logf("%s %s: %v: %s", name, remote, err, bytes.TrimSpace(out))
	}
	data, rerr := os.ReadFile(local)
	if rerr != nil {
		data = nil
	}
	return data, ok
}

func testRealTFTPClients(t *testing.T, n *nsNet, fx *tftpFixture, log *syncBuffer, mode tftpMode) {
	transfers := map[string]int{} // completed transfers per file, to find each one's log line
	for _, file := range []string{"undionly.kpxe", "efi/ipxe.efi", "big.bin"} {
		want, ok := fx.files[file]
		if !ok {
			continue // big.bin in -short mode
		}
		for _, c := range []struct {
			client  string
			blksize int
		}{{"tftp-hpa", 0}, {"curl", 1468}} {
			if file == "big.bin" && c.client == "tftp-hpa" && mode.singlePort {
				continue // 65536 lock-step blocks take ~9 s in single-port mode; done in the other mode
			}
			t.Run(c.client+" "+file, func(t *testing.T) {
				start := time.Now()
				got, ok := tftpGet(t, n, c.client, file, c.blksize)
				if !ok {
					t.Fatal("download failed")
				}
				equalBytes(t, file, got, want)
				if mode.anticipate > 1 {
					// pin/tftp's anticipation path reports no transfer
					// stats (no OnSuccess, no datagram count).
					t.Logf("%s: %d bytes in %v (%.1f MB/s)", c.client, len(want), time.Since(start).Round(time.Millisecond),
						float64(len(want))/time.Since(start).Seconds()/1e6)
					return
				}
				transfers[file]++
				blk := c.blksize
				if blk == 0 {
					blk = 512
				}
				// One DATA per block plus the final short (maybe empty)
				// one, plus an OACK when options were negotiated, plus
				// retransmissions (pin/tftp's single-port mode drops
				// packets when busy: about 1%; allow 5%). 512-byte blocks
				// would take 2.9 times as many for blksize 1468.
				blocks := len(want)/blk + 1
				dgrams := tftpDatagrams(t, log, file, transfers[file])
				if dgrams < blocks || dgrams > blocks+1+blocks/20+3 {
					t.Errorf("server sent %d datagrams for %d bytes: want about %d (%d-byte blocks)", dgrams, len(want), blocks, blk)
				}
				t.Logf("%s: %d bytes in %v (%.1f MB/s), %d datagrams of %d bytes", c.client, len(want),
					time.Since(start).Round(time.Millisecond), float64(len(want))/time.Since(start).Seconds()/1e6, dgrams, blk)
			})
		}
	}
	refusals := map[string]int{} // refused requests per name
	for _, name := range tftpTraversals {
		for _, client := range []string{"tftp-hpa", "curl"} {
			t.Run(client+" refuses "+name, func(t *testing.T) {
				got, ok := tftpGet(t, n, client, name, 0)
				if ok {
					t.Errorf("download of %q succeeded", name)
				}
				if len(got) != 0 {
					t.Errorf("client wrote %d bytes for %q", len(got), name)
				}
				if bytes.Contains(got, fx.secret) || bytes.Contains(got, []byte("root:")) {
					t.Fatalf("content from outside the root leaked for %q", name)
				}
				// The name reached the server as typed (no client-side
				// normalisation) and was refused there.
				refusals[name]++
				needle := `msg="tftp: read refused" component=netboot file=` + quoteLog(name) + " "
				deadline := time.Now().Add(3 * time.Second)
				for strings.Count(log.String(), needle) < refusals[name] {
					if time.Now().After(deadline) {
						t.Fatalf("server logged no refusal of %q", name)
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
	}
	// The server is read-only: a real client's write request fails and
	// leaves nothing in the root.
	t.Run("tftp-hpa put refused", func(t *testing.T) {
		local := writeFile(t, t.TempDir(), "upload", []byte("uploaded by a client\n"))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := n.clientCmd(ctx, "tftp", "-m", "binary", nsServerIP, "-c", "put", local, "uploaded").CombinedOutput()
		t.Logf("tftp put: %v: %s", err, bytes.TrimSpace(out))
		if err == nil && !bytes.Contains(out, []byte("Error code")) {
			t.Error("tftp put reported success")
		}
		if _, err := os.Lstat(filepath.Join(fx.root, "uploaded")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the upload exists in the root (%v)", err)
		}
	})
}

// quoteLog renders s as slog's text handler does for a simple string value.
func quoteLog(s string) string {
	if strings.ContainsAny(s, " =\"") {
		return `"` + s + `"`
	}
	return s
}
