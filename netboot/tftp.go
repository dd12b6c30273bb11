package netboot

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pin/tftp/v3"
)

// tftpServer serves the files under root, read-only, with pin/tftp v3.1.0.
//
// The client may negotiate blksize (RFC 2348) and tsize (RFC 2349, set from
// the file size); pin/tftp v3.1.0 has no RFC 7440 windowsize, so every block
// is acknowledged (its non-standard "anticipate" mode is not used).
//
// A request is refused with a TFTP error when the name is empty, absolute,
// contains a ".." element, a backslash or a NUL, names something other than
// a regular file, or resolves (through symlinks) outside root — the file is
// opened through os.Root, which refuses such escapes. Write requests are
// always refused.
type tftpServer struct {
	root       string
	singlePort bool // see Config.TFTPSinglePort
	log        *slog.Logger
}

// maxTFTPBlockSize is the largest blksize of RFC 2348.
const maxTFTPBlockSize = 65464

// tftpTimeout is the per-datagram retransmission timeout of the server.
const tftpTimeout = 2 * time.Second

func (t *tftpServer) newServer() *tftp.Server {
	srv := tftp.NewServer(t.readHandler, t.writeHandler)
	srv.SetTimeout(tftpTimeout)
	srv.SetHook(tftpHook{t.log})
	// Without an explicit maximum, EnableSinglePort caps blksize at 512;
	// grant up to the RFC 2348 maximum (pin/tftp still clamps it to the
	// interface MTU).
	srv.SetBlockSize(maxTFTPBlockSize)
	if t.singlePort {
		srv.EnableSinglePort()
	}
	return srv
}

// errTFTPRefused is the error sent to clients for any refused read; the
// log has the reason.
var errTFTPRefused = errors.New("file not found or access denied")

func (t *tftpServer) readHandler(filename string, rf io.ReaderFrom) error {
	log := t.log.With("file", filename)
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ra := ot.RemoteAddr()
		log = log.With("peer", ra.String())
	}
	f, size, err := openRooted(t.root, filename)
	if err != nil {
		log.Warn("tftp: read refused", "err", err)
		return errTFTPRefused
	}
	defer f.Close()
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(size)
	}
	n, err := rf.ReadFrom(f)
	if err != nil {
		log.Warn("tftp: transfer failed", "bytes", n, "err", err)
		return fmt.Errorf("transfer failed: %w", err)
	}
	log.Info("tftp: sent file", "bytes", n)
	return nil
}

func (t *tftpServer) writeHandler(filename string, wt io.WriterTo) error {
	peer := ""
	if it, ok := wt.(tftp.IncomingTransfer); ok {
		ra := it.RemoteAddr()
		peer = ra.String()
	}
	t.log.Warn("tftp: write refused (read-only server)", "file", filename, "peer", peer)
	return errors.New("read-only server: write requests are refused")
}

// openRooted opens name (a slash-separated relative path) under root for
// reading, refusing absolute paths, ".." elements, backslashes, NULs,
// symlink escapes and non-regular files. It returns the file and its size.
func openRooted(root, name string) (*os.File, int64, error) {
	rel, err := cleanRelPath(name)
	if err != nil {
		return nil, 0, err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, 0, fmt.Errorf("open root: %w", err)
	}
	defer r.Close()
	f, err := r.Open(rel)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%q is not a regular file", name)
	}
	return f, fi.Size(), nil
}

// cleanRelPath validates a client-supplied relative path and returns it
// without empty or "." elements.
func cleanRelPath(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty path")
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("absolute path %q", name)
	case strings.ContainsAny(name, "\\\x00"):
		return "", fmt.Errorf("path %q contains a backslash or NUL", name)
	}
	var parts []string
	for _, el := range strings.Split(name, "/") {
		switch el {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("path %q contains ..", name)
		}
		parts = append(parts, el)
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("path %q names no file", name)
	}
	return strings.Join(parts, "/"), nil
}

// tftpHook logs pin/tftp transfer outcomes, including packets it could not
// parse.
type tftpHook struct{ log *slog.Logger }

func (h tftpHook) OnSuccess(s tftp.TransferStats) {
	h.log.Debug("tftp: transfer complete", "file", s.Filename, "peer", ipString(s.RemoteAddr),
		"duration", s.Duration, "datagrams", s.DatagramsSent)
}

func (h tftpHook) OnFailure(s tftp.TransferStats, err error) {
	h.log.Debug("tftp: transfer or request failed", "file", s.Filename, "peer", ipString(s.RemoteAddr), "err", err)
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}
