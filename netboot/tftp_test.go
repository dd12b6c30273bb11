package netboot

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
)

func tftpClient(t *testing.T, addr string) *tftp.Client {
	t.Helper()
	c, err := tftp.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(2 * time.Second)
	c.SetRetries(3)
	return c
}

func TestTFTPDownload(t *testing.T) {
	for _, single := range []bool{false, true} {
		t.Run(map[bool]string{false: "port per transfer", true: "single port"}[single], func(t *testing.T) {
			testTFTPDownload(t, single)
		})
	}
}

func testTFTPDownload(t *testing.T, singlePort bool) {
	env := startService(t, func(c *Config) { c.DHCPAddr, c.HTTPAddr, c.TFTPSinglePort = "", "", singlePort })
	big := randomBytes(t, 3*512*37+123) // many blocks, last one partial
	exact := randomBytes(t, 4*512)      // ends with an empty block
	writeFile(t, env.tftpRoot, "undionly.kpxe", big)
	writeFile(t, env.tftpRoot, "efi/ipxe.efi", exact)
	writeFile(t, env.tftpRoot, "empty", nil)
	if err := os.Symlink("undionly.kpxe", filepath.Join(env.tftpRoot, "inside-link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		blksize int
		want    []byte
	}{
		{"default block size", "undionly.kpxe", 0, big},
		{"blksize 1468", "undionly.kpxe", 1468, big},
		{"subdirectory, exact multiple of 512", "efi/ipxe.efi", 0, exact},
		{"redundant dot and slash", "./efi//ipxe.efi", 0, exact},
		{"empty file", "empty", 0, []byte{}},
		{"symlink inside the root", "inside-link", 0, big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tftpClient(t, env.svc.TFTPAddr())
			c.RequestTSize(true)
			if tt.blksize != 0 {
				c.SetBlockSize(tt.blksize)
			}
			wt, err := c.Receive(tt.file, "octet")
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if size, ok := wt.(tftp.IncomingTransfer).Size(); !ok || size != int64(len(tt.want)) {
				t.Fatalf("tsize = %d, %v; want %d", size, ok, len(tt.want))
			}
			var buf bytes.Buffer
			if _, err := wt.WriteTo(&buf); err != nil {
				t.Fatalf("WriteTo: %v", err)
			}
			equalBytes(t, tt.file, buf.Bytes(), tt.want)
		})
	}
}

func TestTFTPRefusals(t *testing.T) {
	env := startService(t, func(c *Config) { c.DHCPAddr, c.HTTPAddr = "", "" })
	secret := writeFile(t, env.outside, "secret", []byte("outside the root"))
	writeFile(t, env.tftpRoot, "sub/file", []byte("x"))
	if err := os.Symlink(secret, filepath.Join(env.tftpRoot, "abs-escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside/secret", filepath.Join(env.tftpRoot, "rel-escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(env.outside, filepath.Join(env.tftpRoot, "dir-escape")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"../outside/secret",
		"sub/../../outside/secret",
		"..",
		secret,
		"/sub/file",
		"abs-escape",
		"rel-escape",
		"dir-escape/secret",
		"sub",
		"missing",
		`sub\file`,
	} {
		t.Run(name, func(t *testing.T) {
			c := tftpClient(t, env.svc.TFTPAddr())
			wt, err := c.Receive(name, "octet")
			if err == nil {
				var buf bytes.Buffer
				_, _ = wt.WriteTo(&buf)
				t.Fatalf("read of %q accepted (got %q)", name, buf.String())
			}
			if !strings.Contains(err.Error(), errTFTPRefused.Error()) {
				t.Fatalf("error %q is not the server's TFTP refusal", err)
			}
		})
	}
}

func TestTFTPWriteRefused(t *testing.T) {
	env := startService(t, func(c *Config) { c.DHCPAddr, c.HTTPAddr = "", "" })
	c := tftpClient(t, env.svc.TFTPAddr())
	rf, err := c.Send("upload.bin", "octet")
	if err == nil {
		_, err = rf.ReadFrom(bytes.NewReader([]byte("payload")))
	}
	if err == nil {
		t.Fatal("write request accepted")
	}
	if !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("error %q is not the server's TFTP refusal", err)
	}
	if _, err := os.Stat(filepath.Join(env.tftpRoot, "upload.bin")); !os.IsNotExist(err) {
		t.Fatalf("upload.bin exists after refused write: %v", err)
	}
}

func TestCleanRelPath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"a", "a", true},
		{"a/b", "a/b", true},
		{"./a//b/", "a/b", true},
		{"", "", false},
		{"/a", "", false},
		{"a/../b", "", false},
		{"..", "", false},
		{"./", "", false},
		{`a\b`, "", false},
		{"a\x00b", "", false},
	}
	for _, tt := range tests {
		got, err := cleanRelPath(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("cleanRelPath(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
