package netboot

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Observability: real DHCP, TFTP, HTTP and check-in traffic on loopback
// against one Service, then GET /metrics parsed with expfmt must count it,
// and the captured slog records must carry the MAC, node and rack of the
// machine behind each line. The "machine" is the leased address: the
// client binds 127.100.1.1 after its ACK, as a booted node uses its lease.

// capturedRecord is one slog record with its attributes (those added with
// Logger.With included) as strings.
type capturedRecord struct {
	msg   string
	attrs map[string]string
}

// captureHandler records every record and forwards it to next.
type captureHandler struct {
	mu    *sync.Mutex
	recs  *[]capturedRecord
	attrs []slog.Attr
	next  slog.Handler
}

func newCaptureHandler(next slog.Handler) *captureHandler {
	return &captureHandler{mu: &sync.Mutex{}, recs: &[]capturedRecord{}, next: next}
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	c := capturedRecord{msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		c.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { c.attrs[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	*h.recs = append(*h.recs, c)
	h.mu.Unlock()
	return h.next.Handle(ctx, r)
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// find returns the records whose message is msg.
func (h *captureHandler) find(msg string) []capturedRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []capturedRecord
	for _, r := range *h.recs {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// leasedIP is the reservation of knownMAC in the observability test, an
// address of the loopback network a client socket can bind.
var leasedIP = net.IPv4(127, 100, 1, 1).To4()

func TestMetricsAndLogsAfterTraffic(t *testing.T) {
	capture := newCaptureHandler(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	env := startService(t, func(c *Config) {
		c.Logger = slog.New(capture)
		c.Reservations = StaticReservations{knownMAC: {
			Node: "r01n01", Rack: "r01", IP: leasedIP, Mask: net.CIDRMask(8, 32), Lease: time.Hour,
		}}
	})
	kernel := randomBytes(t, 50_000)
	writeFile(t, env.artifacts, "vmlinuz", kernel)
	bootFile := randomBytes(t, 300) // one TFTP block
	writeFile(t, env.tftpRoot, "undionly.kpxe", bootFile)
	big := randomBytes(t, 5000)
	writeFile(t, env.tftpRoot, "big.bin", big)
	if err := env.svc.Store().Put(Profile{MAC: knownMAC, Node: "r01n01", Mode: ModeInstall, Kernel: "vmlinuz"}); err != nil {
		t.Fatal(err)
	}

	// DHCP: DISCOVER → OFFER, REQUEST → ACK, a REQUEST for another address → NAK.
	server, err := net.ResolveUDPAddr("udp4", env.svc.DHCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	offer, _ := exchange(t, conn, server, discover(t, knownMAC), 5*time.Second)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("no OFFER: %v", offer)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	if ack, _ := exchange(t, conn, server, req, 5*time.Second); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("no ACK: %v", ack)
	}
	bad, err := dhcpv4.New(dhcpv4.WithHwAddr(mustMAC(t, knownMAC)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(127, 100, 9, 9))))
	if err != nil {
		t.Fatal(err)
	}
	if nak, _ := exchange(t, conn, server, bad, 5*time.Second); nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("no NAK: %v", nak)
	}

	// TFTP: the boot file from the leased address, big.bin from an unknown
	// one (pin/tftp's client), a refused traversal.
	if got := tftpReadOneBlock(t, env.svc.TFTPAddr(), leasedIP, "undionly.kpxe"); !bytes.Equal(got, bootFile) {
		t.Fatalf("TFTP undionly.kpxe: got %d bytes, want %d", len(got), len(bootFile))
	}
	c := tftpClient(t, env.svc.TFTPAddr())
	wt, err := c.Receive("big.bin", "octet")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "big.bin", buf.Bytes(), big)
	if _, err := c.Receive("../outside/secret", "octet"); err == nil {
		t.Fatal("TFTP traversal was served")
	}

	// HTTP from the leased address: the boot script, a range of the kernel,
	// an unknown path, two check-ins (one accepted, one refused).
	hc := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: leasedIP}}).DialContext}, Timeout: 10 * time.Second}
	base := env.svc.HTTPBase()
	do := func(method, path string, header map[string]string, body string) (*http.Response, []byte) {
		t.Helper()
		r, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			r.Header.Set(k, v)
		}
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	if resp, _ := do("GET", "/boot/"+knownMAC+".ipxe", nil, ""); resp.StatusCode != 200 {
		t.Fatalf("boot script: status %d", resp.StatusCode)
	}
	resp, body := do("GET", "/artifacts/vmlinuz", map[string]string{"Range": "bytes=100-1099"}, "")
	if resp.StatusCode != 206 || resp.ContentLength != 1000 || resp.Header.Get("Content-Length") != "1000" {
		t.Fatalf("range: status %d, Content-Length %q", resp.StatusCode, resp.Header.Get("Content-Length"))
	}
	equalBytes(t, "range body", body, kernel[100:1100])
	if resp, _ := do("GET", "/no/such/route", nil, ""); resp.StatusCode != 404 {
		t.Fatalf("unknown route: status %d", resp.StatusCode)
	}
	ok, err := json.Marshal(CheckIn{Node: "r01n01", Run: "run-1", Token: MintToken(testKey, "r01n01", "run-1"), Status: CheckInOK})
	if err != nil {
		t.Fatal(err)
	}
	if resp, b := do("POST", "/v1/checkin", nil, string(ok)); resp.StatusCode != 202 {
		t.Fatalf("check-in: status %d: %s", resp.StatusCode, b)
	}
	forged, err := json.Marshal(CheckIn{Node: "r01n01", Run: "run-1", Token: MintToken(testKey, "r01n01", "run-2"), Status: CheckInOK})
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := do("POST", "/v1/checkin", nil, string(forged)); resp.StatusCode != 403 {
		t.Fatalf("forged check-in: status %d", resp.StatusCode)
	}

	// The scrape.
	resp, body = do("GET", "/metrics", nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: status %d", resp.StatusCode)
	}
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	for _, want := range []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"rackflow_netboot_dhcp_replies_total", map[string]string{"type": "offer", "mode": "reservation"}, 1},
		{"rackflow_netboot_dhcp_replies_total", map[string]string{"type": "ack", "mode": "reservation"}, 1},
		{"rackflow_netboot_dhcp_replies_total", map[string]string{"type": "nak", "mode": "reservation"}, 1},
		{"rackflow_netboot_dhcp_leases_in_use", nil, 1},
		{"rackflow_netboot_tftp_transfers_total", map[string]string{"result": "ok"}, 2},
		{"rackflow_netboot_tftp_transfers_total", map[string]string{"result": "refused"}, 1},
		{"rackflow_netboot_tftp_bytes_total", map[string]string{"result": "ok"}, float64(len(bootFile) + len(big))},
		{"rackflow_netboot_http_requests_total", map[string]string{"route": "GET /boot/{file}", "code": "200"}, 1},
		{"rackflow_netboot_http_requests_total", map[string]string{"route": "GET /artifacts/{name...}", "code": "206"}, 1},
		{"rackflow_netboot_http_requests_total", map[string]string{"route": "unmatched", "code": "404"}, 1},
		{"rackflow_netboot_http_requests_total", map[string]string{"route": "/v1/checkin", "code": "202"}, 1},
		{"rackflow_netboot_http_requests_total", map[string]string{"route": "/v1/checkin", "code": "403"}, 1},
		{"rackflow_netboot_checkins_total", map[string]string{"result": "accepted"}, 1},
		{"rackflow_netboot_checkins_total", map[string]string{"result": "refused"}, 1},
	} {
		if got, ok := metricValue(families[want.name], want.labels); !ok || got != want.value {
			t.Errorf("%s%v = %v (found %v), want %v", want.name, want.labels, got, ok, want.value)
		}
	}

	// The log lines name the machine.
	machine := map[string]string{"mac": knownMAC, "node": "r01n01", "rack": "r01"}
	for _, msg := range []string{"dhcp: reply sent", "tftp: sent file", "http: served boot script", "http: request", "check-in accepted", "check-in refused: token does not verify"} {
		recs := capture.find(msg)
		if len(recs) == 0 {
			t.Errorf("no log record %q", msg)
			continue
		}
		for _, r := range recs {
			if msg == "tftp: sent file" && r.attrs["file"] != "undionly.kpxe" {
				if _, ok := r.attrs["mac"]; ok {
					t.Errorf("%q for an unleased address names a machine: %v", msg, r.attrs)
				}
				continue
			}
			for k, v := range machine {
				if r.attrs[k] != v {
					t.Errorf("log record %q: %s = %q, want %q (attributes %v)", msg, k, r.attrs[k], v, r.attrs)
				}
			}
		}
	}
}

// metricValue returns the counter or gauge value of the series of mf whose
// labels include want.
func metricValue(mf *dto.MetricFamily, want map[string]string) (float64, bool) {
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// tftpReadOneBlock reads a file shorter than 512 bytes over TFTP (RFC 1350:
// RRQ, one DATA block, its ACK) from a socket bound to local, which
// pin/tftp's client cannot choose.
func tftpReadOneBlock(t *testing.T, server string, local net.IP, name string) []byte {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		t.Fatal(err)
	}
	rrq := append(append(append([]byte{0, 1}, name...), 0), "octet\x00"...)
	if _, err := conn.WriteToUDP(rrq, dst); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 600)
	n, from, err := conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n < 4 || binary.BigEndian.Uint16(buf) != 3 || binary.BigEndian.Uint16(buf[2:]) != 1 || n-4 >= 512 {
		t.Fatalf("TFTP: want one short DATA block 1, got % x", buf[:min(n, 32)])
	}
	if _, err := conn.WriteToUDP([]byte{0, 4, 0, 1}, from); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf[4:n]...)
}
