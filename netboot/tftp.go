package netboot

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pin/tftp/v3"
)

// tftpServer serves the files under root, read-only, with pin/tftp v3.1.0,
// and the iPXE images of ipxeDir.
//
// The client may negotiate blksize (RFC 2348) and tsize (RFC 2349, set from
// the file size); pin/tftp v3.1.0 has no RFC 7440 windowsize, so every block
// is acknowledged; with anticipate > 1 the library's sender anticipation
// sends that many blocks before waiting for their ACKs (Config.TFTPAnticipate).
//
// A request is refused with a TFTP error when the name is empty, absolute,
// contains a ".." element, a backslash or a NUL, names something other than
// a regular file, or resolves (through symlinks) outside root — the file is
// opened through os.Root, which refuses such escapes. Write requests are
// always refused.
//
// A name root does not hold (or any name when root is "") that is a single
// path element is looked up in ipxeDir (Config.IPXEDir), following
// symlinks there: Debian's ipxe package links ipxe.efi to /boot/ipxe.efi,
// and the package's directory is trusted as the operator's choice, not the
// client's.
type tftpServer struct {
	root       string // "" → ipxeDir only
	ipxeDir    string // "" → none
	singlePort bool   // see Config.TFTPSinglePort
	anticipate uint   // see Config.TFTPAnticipate
	log        *slog.Logger
	obs        *instruments // nil records nothing
}

// maxTFTPBlockSize is the largest blksize of RFC 2348.
const maxTFTPBlockSize = 65464

// MaxTFTPAnticipate is the largest Config.TFTPAnticipate, pin/tftp's own
// cap on the sender-anticipation window, in blocks.
const MaxTFTPAnticipate = 60

// tftpTimeout is the per-datagram retransmission timeout of the server.
const tftpTimeout = 2 * time.Second

func (t *tftpServer) newServer() *tftp.Server {
	srv := tftp.NewServer(t.readHandler, t.writeHandler)
	srv.SetTimeout(tftpTimeout)
	srv.SetHook(tftpHook{t.log, t.obs})
	// Without an explicit maximum, EnableSinglePort caps blksize at 512;
	// grant up to the RFC 2348 maximum (pin/tftp still clamps it to the
	// interface MTU).
	srv.SetBlockSize(maxTFTPBlockSize)
	if t.singlePort {
		srv.EnableSinglePort()
	}
	srv.SetAnticipate(t.anticipate)
	return srv
}

// tftpReadBuffer is the file read size of a transfer, in bytes.
const tftpReadBuffer = 256 << 10

// errTFTPRefused is the error sent to clients for any refused read; the
// log has the reason.
var errTFTPRefused = errors.New("file not found or access denied")

func (t *tftpServer) readHandler(filename string, rf io.ReaderFrom) error {
	log := t.log.With("file", filename)
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ra := ot.RemoteAddr()
		log = log.With(t.obs.peerAttrs(ra.String())...)
	}
	f, size, err := t.open(filename)
	if err != nil {
		t.obs.tftpTransfer(tftpResultRefused, 0)
		log.Warn("tftp: read refused", "err", err)
		return errTFTPRefused
	}
	defer f.Close()
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(size)
	}
	// pin/tftp reads one block per Read: buffer, so that a 1468-byte
	// blksize does not cost a read(2) per datagram.
	n, err := rf.ReadFrom(bufio.NewReaderSize(f, tftpReadBuffer))
	if err != nil {
		t.obs.tftpTransfer(tftpResultFailed, n)
		log.Warn("tftp: transfer failed", "bytes", n, "err", err)
		return fmt.Errorf("transfer failed: %w", err)
	}
	t.obs.tftpTransfer(tftpResultOK, n)
	log.Info("tftp: sent file", "bytes", n)
	return nil
}

// open opens filename under root, else (a single path element) in ipxeDir.
func (t *tftpServer) open(filename string) (*os.File, int64, error) {
	var err error = fs.ErrNotExist
	if t.root != "" {
		f, size, rerr := openRooted(t.root, filename)
		if rerr == nil || !errors.Is(rerr, fs.ErrNotExist) {
			return f, size, rerr
		}
		err = rerr
	}
	if t.ipxeDir == "" {
		return nil, 0, err
	}
	rel, cerr := cleanRelPath(filename)
	if cerr != nil {
		return nil, 0, cerr
	}
	if strings.Contains(rel, "/") {
		return nil, 0, err
	}
	return openRegular(filepath.Join(t.ipxeDir, rel))
}

func (t *tftpServer) writeHandler(filename string, wt io.WriterTo) error {
	peer := ""
	if it, ok := wt.(tftp.IncomingTransfer); ok {
		ra := it.RemoteAddr()
		peer = ra.String()
	}
	t.obs.tftpTransfer(tftpResultRefused, 0)
	t.log.Warn("tftp: write refused (read-only server)", append([]any{"file", filename}, t.obs.peerAttrs(peer)...)...)
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
	return regular(f, name)
}

// openRegular opens path (following symlinks) and checks it is a regular
// file; it returns the file and its size.
func openRegular(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	return regular(f, path)
}

// regular returns f and its size when f is a regular file, else closes it.
func regular(f *os.File, name string) (*os.File, int64, error) {
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
type tftpHook struct {
	log *slog.Logger
	obs *instruments
}

func (h tftpHook) OnSuccess(s tftp.TransferStats) {
	h.log.Debug("tftp: transfer complete", append([]any{"file", s.Filename, "duration", s.Duration,
		"datagrams", s.DatagramsSent}, h.obs.peerAttrs(ipString(s.RemoteAddr))...)...)
}

func (h tftpHook) OnFailure(s tftp.TransferStats, err error) {
	h.log.Debug("tftp: transfer or request failed", append([]any{"file", s.Filename, "err", err},
		h.obs.peerAttrs(ipString(s.RemoteAddr))...)...)
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}
