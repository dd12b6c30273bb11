package netboot

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
)

// TestTFTPBlksizeNegotiated checks that a requested blksize (RFC 2348) is
// granted in both TFTP modes, counting the DATA datagrams the server sent:
// pin/tftp's EnableSinglePort alone caps the block size at 512 bytes (found
// with curl --tftp-blksize against the single-port server; fixed in
// tftpServer.newServer with SetBlockSize).
func TestTFTPBlksizeNegotiated(t *testing.T) {
	for _, single := range []bool{false, true} {
		t.Run(map[bool]string{false: "port per transfer", true: "single port"}[single], func(t *testing.T) {
			log := &syncBuffer{}
			env := startService(t, func(c *Config) {
				c.DHCPAddr, c.HTTPAddr, c.TFTPSinglePort = "", "", single
				c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), log), &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			want := randomBytes(t, 1468*100+7)
			writeFile(t, env.tftpRoot, "blk.bin", want)
			c := tftpClient(t, env.svc.TFTPAddr())
			// pin/tftp enables the socket's packet-info messages (which it
			// needs for the interface MTU, the blksize ceiling) in Serve,
			// after Ready: a request that arrives first is served with
			// 512-byte blocks. Any answer proves Serve is reading.
			if _, err := c.Receive("warm-up: no such file", "octet"); err == nil {
				t.Fatal("warm-up request for a missing file succeeded")
			}
			c.SetBlockSize(1468)
			wt, err := c.Receive("blk.bin", "octet")
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			var buf bytes.Buffer
			if _, err := wt.WriteTo(&buf); err != nil {
				t.Fatalf("WriteTo: %v", err)
			}
			equalBytes(t, "blk.bin", buf.Bytes(), want)
			// 101 DATA datagrams of up to 1468 bytes and an OACK.
			if n := tftpDatagrams(t, log, "blk.bin", 1); n > 101+1+2 {
				t.Fatalf("server sent %d datagrams for %d bytes: blksize 1468 not granted (512-byte blocks take %d)", n, len(want), len(want)/512+1)
			}
		})
	}
}
