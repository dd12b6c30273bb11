package vrack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/pin/tftp/v3"
)

// tftpServer picks the TFTP server of a lease: Config.TFTPServer, else
// option 66 ("host" or "host:port"), else siaddr; port 69 unless given.
func (n *Node) tftpServer(l lease) (string, error) {
	if n.rack.cfg.TFTPServer != "" {
		return n.rack.cfg.TFTPServer, nil
	}
	if l.tftpName != "" {
		if _, _, err := net.SplitHostPort(l.tftpName); err == nil {
			return l.tftpName, nil
		}
		return net.JoinHostPort(l.tftpName, "69"), nil
	}
	if l.siaddr != nil && !l.siaddr.IsUnspecified() {
		return net.JoinHostPort(l.siaddr.String(), "69"), nil
	}
	return "", errors.New("no TFTP server: no option 66 nor siaddr in the lease")
}

// fetchTFTP reads file from the TFTP server at addr like a PXE ROM (octet
// mode, blksize 1432, tsize) and returns its size. The pin/tftp client binds
// 0.0.0.0:0 and does not take a context: ctx stops the transfer at the next
// block, and a request nobody answers gives up after about 5 s.
func fetchTFTP(ctx context.Context, addr, file string) (int64, error) {
	if file == "" {
		return 0, errors.New("no boot file in the lease")
	}
	c, err := tftp.NewClient(addr)
	if err != nil {
		return 0, err
	}
	c.SetTimeout(time.Second)
	c.SetRetries(4)
	c.SetBackoff(func(int) time.Duration { return 100 * time.Millisecond })
	c.SetBlockSize(1432)
	c.RequestTSize(true)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	wt, err := c.Receive(file, "octet")
	if err != nil {
		return 0, ctxOr(ctx, fmt.Errorf("read request %s from %s: %w", file, addr, err))
	}
	size, err := wt.WriteTo(ctxWriter{ctx: ctx, w: io.Discard})
	if err != nil {
		return size, ctxOr(ctx, fmt.Errorf("transfer %s from %s: %w", file, addr, err))
	}
	if in, ok := wt.(tftp.IncomingTransfer); ok {
		if want, ok := in.Size(); ok && want != size {
			return size, fmt.Errorf("transfer %s: got %d bytes, tsize said %d", file, size, want)
		}
	}
	return size, nil
}

// ctxWriter fails writes once ctx is done, aborting a transfer.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
