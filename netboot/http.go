package netboot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// httpServer holds the HTTP routes:
//
//	GET  /boot/<mac>.ipxe                  iPXE script from the MAC's profile (400 bad MAC, 404 no profile)
//	GET  /discover/<mac>.ipxe              discovery script of an unknown MAC (discoveryScript; 400 bad MAC)
//	GET  /artifacts/<name>                 file under ArtifactsDir (Range, ETag, Last-Modified; 404 otherwise)
//	GET  /exports/<node>/<file>            file under the node's exported directory (Range, ETag, Last-Modified)
//	GET  /torrents/<node>/<run>.torrent    the .torrent of the node's export by run (Store.PutTorrent)
//	GET  /announce                         BitTorrent tracker announce, only with a Tracker
//	POST /v1/checkin                       agent check-in (see checkInHandler)
//	POST /v1/identify                      USB-identify (see identifyHandler), only with an Identifier
//	GET  /healthz                          200 "ok"
//	GET  /metrics                          Prometheus metrics (see instruments), only with obs
//
// GET routes also answer HEAD. Every request is counted by route and
// status, and logged with the MAC, node and rack behind the client address
// when the client table knows it.
type httpServer struct {
	store     *Store
	artifacts string        // "" → /artifacts/ answers 404
	base      func() string // "http://host:port" used in scripts
	checkin   *checkInHandler
	identify  *identifyHandler // nil → /v1/identify is not served
	res       Reservations     // names the node and rack of a MAC in logs; may be nil
	tracker   http.Handler     // nil → /announce is not served
	discovery *DiscoveryStore  // the rack of a discovered MAC, for its discovery profile; nil → none
	log       *slog.Logger
	obs       *instruments // nil → no /metrics, nothing recorded
}

func (h *httpServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boot/{file}", h.bootScript)
	mux.HandleFunc("GET /discover/{file}", h.discoveryScript)
	mux.HandleFunc("GET /artifacts/{name...}", h.artifact)
	mux.HandleFunc("GET /exports/{node}/{file...}", h.export)
	mux.HandleFunc("GET /torrents/{node}/{file}", h.torrent)
	if h.tracker != nil {
		mux.Handle("GET /announce", h.tracker)
	}
	mux.Handle("/v1/checkin", h.checkin)
	if h.identify != nil {
		mux.Handle("/v1/identify", h.identify)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	if h.obs != nil {
		mux.Handle("GET /metrics", h.obs.handler())
	}
	return h.logRequests(mux)
}

// scriptMAC is the canonical MAC of a script route's {file}
// ("<mac>.ipxe"); it answers 404 for another name and 400 for a bad MAC,
// and then returns false.
func scriptMAC(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw, ok := strings.CutSuffix(r.PathValue("file"), ".ipxe")
	if !ok {
		http.NotFound(w, r)
		return "", false
	}
	mac, err := CanonicalMAC(raw)
	if err != nil {
		http.Error(w, "invalid MAC address", http.StatusBadRequest)
		return "", false
	}
	return mac, true
}

func (h *httpServer) bootScript(w http.ResponseWriter, r *http.Request) {
	mac, ok := scriptMAC(w, r)
	if !ok {
		return
	}
	id := identity{mac: mac}
	if h.res != nil {
		if hw, err := net.ParseMAC(mac); err == nil {
			if res, ok := h.res.Reservation(hw); ok {
				id.node, id.rack = res.Node, res.Rack
			}
		}
	}
	log := h.log.With(id.attrs()...).With("remote", r.RemoteAddr)
	p, err := h.store.Get(mac)
	if errors.Is(err, ErrNoProfile) {
		log.Info("http: no boot profile for MAC")
		http.Error(w, "no boot profile for this MAC", http.StatusNotFound)
		return
	}
	if err != nil {
		log.Error("http: read boot profile", "err", err)
		http.Error(w, "cannot read boot profile", http.StatusInternalServerError)
		return
	}
	script := renderScript(p, h.base())
	if id.node == "" {
		log = log.With("node", p.Node)
	}
	log.Info("http: served boot script", "mode", string(p.Mode))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, script)
}

// renderScript renders the iPXE script of p; base is "http://host:port".
// ModeLocal → "#!ipxe\nexit\n"; ModeInstall →
//
//	#!ipxe
//	kernel <base>/artifacts/<kernel> [initrd=<initrd base name>] <args…>
//	initrd <base>/artifacts/<initrd>     (when Initrd is set)
//	boot
//
// The initrd= word names the initrd as iPXE registered it (the last
// element of its URL): a kernel started through its EFI stub (UEFI iPXE)
// loads its initrd only from that word; BIOS boots ignore it.
func renderScript(p Profile, base string) string {
	if p.Mode != ModeInstall {
		return "#!ipxe\nexit\n"
	}
	var b strings.Builder
	b.WriteString("#!ipxe\nkernel " + base + "/artifacts/" + p.Kernel)
	if p.Initrd != "" {
		b.WriteString(" initrd=" + path.Base(p.Initrd))
	}
	for _, a := range p.Args {
		b.WriteString(" " + a)
	}
	b.WriteString("\n")
	if p.Initrd != "" {
		b.WriteString("initrd " + base + "/artifacts/" + p.Initrd + "\n")
	}
	b.WriteString("boot\n")
	return b.String()
}

func (h *httpServer) artifact(w http.ResponseWriter, r *http.Request) {
	if h.artifacts == "" {
		http.NotFound(w, r)
		return
	}
	h.serveRooted(w, r, h.artifacts, r.PathValue("name"), h.log.With(h.obs.lookup(r.RemoteAddr).attrs()...))
}

func (h *httpServer) export(w http.ResponseWriter, r *http.Request) {
	node := r.PathValue("node")
	if ValidName(node) != nil {
		http.NotFound(w, r)
		return
	}
	dir := filepath.Join(h.store.ExportsDir(), node)
	id := h.obs.lookup(r.RemoteAddr)
	if id.node != node {
		id = identity{node: node}
	}
	h.serveRooted(w, r, dir, r.PathValue("file"), h.log.With(id.attrs()...))
}

// torrent serves /torrents/<node>/<run>.torrent: the .torrent of node's
// export by workflow run run; 404 for another name, a bad node or run name,
// or a .torrent withdrawn (Store.DeleteTorrent, Store.Unexport).
func (h *httpServer) torrent(w http.ResponseWriter, r *http.Request) {
	node := r.PathValue("node")
	run, ok := strings.CutSuffix(r.PathValue("file"), ".torrent")
	if !ok || ValidName(node) != nil || ValidRun(run) != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/x-bittorrent")
	w.Header().Set("Cache-Control", "no-store")
	h.serveRooted(w, r, h.store.TorrentsDir(), node+"/"+run+".torrent", h.log.With("node", node, "run", run))
}

// serveRooted serves the regular file name under root with
// http.ServeContent (Range, If-Range, If-None-Match, If-Modified-Since),
// after openRooted's checks; everything refused is a 404.
func (h *httpServer) serveRooted(w http.ResponseWriter, r *http.Request, root, name string, log *slog.Logger) {
	f, size, err := openRooted(root, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			log.Debug("http: file not found", "path", r.URL.Path, "err", err)
		} else {
			log.Warn("http: file refused", "path", r.URL.Path, "err", err)
		}
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		log.Error("http: stat", "path", r.URL.Path, "err", err)
		http.Error(w, "cannot read file", http.StatusInternalServerError)
		return
	}
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), size))
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// logRequests counts every request by route (the ServeMux pattern, which
// the mux sets on r) and status, and logs it at Debug with its status and
// size and the machine behind the client address.
func (h *httpServer) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		h.obs.httpRequest(r.Pattern, sw.code())
		h.log.Debug("http: request", append([]any{"method", r.Method, "path", r.URL.Path, "route", r.Pattern,
			"status", sw.code(), "bytes", sw.bytes, "remote", r.RemoteAddr, "duration", time.Since(start)},
			h.obs.lookup(r.RemoteAddr).attrs()...)...)
	})
}

// statusWriter records the status and byte count of a response. It keeps
// io.ReaderFrom (sendfile) and exposes Unwrap for http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
