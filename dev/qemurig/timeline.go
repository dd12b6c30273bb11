package qemurig

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Recorder is a slog.Handler that keeps, with their host time, the records
// a node's boot leaves in rackflow's log (DHCP replies, boot script and
// artifact downloads, the image export download, the check-in) and passes
// every record on to the handler it wraps when that one is enabled for it.
// Timeline reads it back.
type Recorder struct {
	next  slog.Handler
	attrs []slog.Attr
	rec   *records
}

type records struct {
	mu   sync.Mutex
	list []record
}

type record struct {
	at    time.Time
	msg   string
	attrs map[string]string
}

// NewRecorder wraps next.
func NewRecorder(next slog.Handler) *Recorder {
	return &Recorder{next: next, rec: &records{}}
}

// Enabled is true at every level: debug-level HTTP request records are part
// of a timeline even when the log shows warnings only.
func (h *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle records r when it is a boot event and passes it on.
func (h *Recorder) Handle(ctx context.Context, r slog.Record) error {
	if bootEvent(r.Message) {
		attrs := map[string]string{}
		for _, a := range h.attrs {
			attrs[a.Key] = a.Value.String()
		}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		h.rec.mu.Lock()
		h.rec.list = append(h.rec.list, record{at: r.Time, msg: r.Message, attrs: attrs})
		h.rec.mu.Unlock()
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *Recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &Recorder{next: h.next.WithAttrs(as), attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], as...), rec: h.rec}
}

// WithGroup implements slog.Handler (recorded attributes are not grouped).
func (h *Recorder) WithGroup(name string) slog.Handler {
	return &Recorder{next: h.next.WithGroup(name), attrs: h.attrs, rec: h.rec}
}

func bootEvent(msg string) bool {
	switch msg {
	case "dhcp: reply sent", "http: served boot script", "http: request", "tftp: sent file", "check-in accepted":
		return true
	}
	return false
}

// Timeline is one node's last boot, in seconds after its BMC powered the
// VM on. A step that did not happen (TFTP when the firmware is already
// iPXE, anything after a failure) is negative.
type Timeline struct {
	Node                            string
	PowerOn                         time.Time // host time of the BMC's power-on of the last boot; zero: never powered on
	DHCP, TFTP, Script              float64   // firmware's DHCPACK, boot file over TFTP, iPXE script over HTTP
	Kernel, Initrd                  float64   // kernel and initramfs downloaded
	AgentStart, ImageWritten, Check float64   // agent started, image written and verified, check-in accepted
}

// Steps names the Timeline columns in boot order.
var Steps = []string{"dhcp", "tftp", "script", "kernel", "initrd", "agent", "image", "check-in"}

func (t Timeline) values() []float64 {
	return []float64{t.DHCP, t.TFTP, t.Script, t.Kernel, t.Initrd, t.AgentStart, t.ImageWritten, t.Check}
}

// String renders the timeline as "r01n01  dhcp 2.3  tftp -  script 2.5 …".
func (t Timeline) String() string {
	var b strings.Builder
	b.WriteString(t.Node)
	if t.PowerOn.IsZero() {
		return t.Node + "  never powered on"
	}
	for i, v := range t.values() {
		if v < 0 {
			fmt.Fprintf(&b, "  %s -", Steps[i])
		} else {
			fmt.Fprintf(&b, "  %s %.1f", Steps[i], v)
		}
	}
	return b.String()
}

// agentLineRE matches the agent's console lines "rackflow-agent: [ 7.62] <step> …".
var agentLineRE = regexp.MustCompile(`^rackflow-agent: \[\s*([0-9.]+)\] (start|image written|check-in accepted)\b`)

// Timeline assembles node's last boot from its BMC's chassis log (power-on),
// the records rec kept (DHCP, TFTP, HTTP, check-in: host times) and the
// agent's console lines (guest uptimes, placed on the host clock by the
// check-in, which both sides see).
func (r *Rig) Timeline(node string, rec *Recorder) (Timeline, error) {
	n, err := r.Node(node)
	if err != nil {
		return Timeline{}, err
	}
	t := Timeline{Node: node, DHCP: -1, TFTP: -1, Script: -1, Kernel: -1, Initrd: -1, AgentStart: -1, ImageWritten: -1, Check: -1}
	if t.PowerOn, err = lastPowerOn(n.ChassisLog()); err != nil || t.PowerOn.IsZero() {
		return t, err
	}
	since := func(at time.Time) float64 { return at.Sub(t.PowerOn).Seconds() }
	first := func(v *float64, at time.Time) {
		if *v < 0 {
			*v = since(at)
		}
	}
	var checkIn time.Time
	rec.rec.mu.Lock()
	list := append([]record(nil), rec.rec.list...)
	rec.rec.mu.Unlock()
	for _, e := range list {
		if e.at.Before(t.PowerOn) || !n.owns(e.attrs) {
			continue
		}
		switch {
		case e.msg == "dhcp: reply sent" && e.attrs["type"] == "ACK":
			first(&t.DHCP, e.at)
		case e.msg == "tftp: sent file":
			first(&t.TFTP, e.at)
		case e.msg == "http: served boot script":
			first(&t.Script, e.at)
		case e.msg == "http: request" && strings.HasSuffix(e.attrs["path"], "/vmlinuz"):
			first(&t.Kernel, e.at)
		case e.msg == "http: request" && strings.HasSuffix(e.attrs["path"], "/initrd.img"):
			first(&t.Initrd, e.at)
		case e.msg == "check-in accepted" && checkIn.IsZero():
			checkIn = e.at
			t.Check = since(e.at)
		}
	}
	if checkIn.IsZero() {
		return t, nil
	}
	uptimes, err := agentUptimes(n.Console())
	if err != nil {
		return t, err
	}
	if u, ok := uptimes["check-in accepted"]; ok {
		onHost := func(step string) float64 {
			if v, ok := uptimes[step]; ok {
				return t.Check - (u - v)
			}
			return -1
		}
		t.AgentStart, t.ImageWritten = onHost("start"), onHost("image written")
	}
	return t, nil
}

// owns reports whether a record's attributes name n: its node name, MAC or
// (for HTTP requests and TFTP transfers, which carry the client address,
// "remote" and "peer") its IP.
func (n Node) owns(attrs map[string]string) bool {
	if attrs["node"] == n.Name || attrs["mac"] == n.MAC {
		return true
	}
	for _, k := range []string{"remote", "peer"} {
		if host, _, err := net.SplitHostPort(attrs[k]); err == nil && host == n.IP {
			return true
		}
	}
	return false
}

// lastPowerOn returns the time of the last "set power 1" in a chassis log,
// zero when the BMC never powered the VM on.
func lastPowerOn(path string) (time.Time, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("chassis log: %w", err)
	}
	defer f.Close()
	var last time.Time
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 4 && fields[1] == "set" && fields[2] == "power" && fields[3] == "1" {
			secs, err := strconv.ParseFloat(fields[0], 64)
			if err != nil {
				continue
			}
			last = time.Unix(0, int64(secs*1e9))
		}
	}
	return last, sc.Err()
}

// agentUptimes returns the guest uptime of the agent's last start, image
// written and check-in lines in a console log.
func agentUptimes(path string) (map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := agentLineRE.FindStringSubmatch(strings.TrimRight(sc.Text(), "\r"))
		if m == nil {
			continue
		}
		if m[2] == "start" {
			clear(out) // a later boot: forget the earlier one's lines
		}
		if v, err := strconv.ParseFloat(m[1], 64); err == nil {
			out[m[2]] = v
		}
	}
	return out, sc.Err()
}
