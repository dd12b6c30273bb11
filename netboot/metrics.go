package netboot

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DHCP modes, the values of the "mode" label of
// rackflow_netboot_dhcp_replies_total.
const (
	dhcpModeReservation = "reservation" // the MAC's inventory reservation
	dhcpModePool        = "pool"        // an address of the dynamic pool
	dhcpModeProxy       = "proxy"       // proxyDHCP: boot information only
)

// Results of TFTP transfers (label "result").
const (
	tftpResultOK      = "ok"      // the whole file was sent and acknowledged
	tftpResultFailed  = "failed"  // the transfer started and broke off
	tftpResultRefused = "refused" // the request was refused (name, root, write)
)

// Results of check-ins (label "result").
const (
	checkInAccepted = "accepted" // 202: delivered to the workflow
	checkInRefused  = "refused"  // 4xx: malformed, unauthenticated or unexpected
	checkInFailed   = "failed"   // 502: the Signaler failed
)

// instruments are the Prometheus metrics of one Service, registered on a
// private registry (never the global one, so several Services — tests, the
// virtual rack — coexist), and the client table that names the node behind
// an address. A nil *instruments records nothing.
//
// Exposed series (Prometheus text format at GET /metrics):
//
//	rackflow_netboot_dhcp_replies_total{type="offer|ack|nak",mode="reservation|pool|proxy"}
//	rackflow_netboot_dhcp_leases_in_use                      gauge, read from the client table at scrape time
//	rackflow_netboot_tftp_transfers_total{result="ok|failed|refused"}
//	rackflow_netboot_tftp_bytes_total{result="ok|failed"}    file bytes sent
//	rackflow_netboot_http_requests_total{route,code}         route = the ServeMux pattern ("unmatched" for none)
//	rackflow_netboot_checkins_total{result="accepted|refused|failed"}
//
// plus the Go runtime and process collectors.
type instruments struct {
	reg     *prometheus.Registry
	clients *clientTable

	dhcpReplies   *prometheus.CounterVec
	tftpTransfers *prometheus.CounterVec
	tftpBytes     *prometheus.CounterVec
	httpRequests  *prometheus.CounterVec
	checkIns      *prometheus.CounterVec
}

func newInstruments(clients *clientTable) *instruments {
	in := &instruments{
		reg:     prometheus.NewRegistry(),
		clients: clients,
		dhcpReplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rackflow_netboot_dhcp_replies_total",
			Help: "DHCP replies sent, by message type (offer, ack, nak) and mode (reservation, pool, proxy).",
		}, []string{"type", "mode"}),
		tftpTransfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rackflow_netboot_tftp_transfers_total",
			Help: "TFTP read and write requests, by result (ok, failed, refused).",
		}, []string{"result"}),
		tftpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rackflow_netboot_tftp_bytes_total",
			Help: "File bytes sent over TFTP, by transfer result (ok, failed).",
		}, []string{"result"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rackflow_netboot_http_requests_total",
			Help: "HTTP requests answered, by route (the ServeMux pattern, \"unmatched\" for none) and status code.",
		}, []string{"route", "code"}),
		checkIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rackflow_netboot_checkins_total",
			Help: "Agent check-ins, by result (accepted, refused, failed).",
		}, []string{"result"}),
	}
	in.reg.MustRegister(in.dhcpReplies, in.tftpTransfers, in.tftpBytes, in.httpRequests, in.checkIns,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rackflow_netboot_dhcp_leases_in_use",
			Help: "Addresses acknowledged by this service whose lease has not expired.",
		}, func() float64 { return float64(clients.inUse(time.Now())) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return in
}

// handler serves the registry in the Prometheus exposition formats.
func (in *instruments) handler() http.Handler {
	return promhttp.HandlerFor(in.reg, promhttp.HandlerOpts{})
}

func (in *instruments) dhcpReply(mode string, typ dhcpv4.MessageType) {
	if in == nil {
		return
	}
	var t string
	switch typ {
	case dhcpv4.MessageTypeOffer:
		t = "offer"
	case dhcpv4.MessageTypeAck:
		t = "ack"
	case dhcpv4.MessageTypeNak:
		t = "nak"
	default:
		return
	}
	in.dhcpReplies.WithLabelValues(t, mode).Inc()
}

func (in *instruments) tftpTransfer(result string, bytes int64) {
	if in == nil {
		return
	}
	in.tftpTransfers.WithLabelValues(result).Inc()
	if result != tftpResultRefused {
		in.tftpBytes.WithLabelValues(result).Add(float64(bytes))
	}
}

func (in *instruments) httpRequest(route string, code int) {
	if in == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	in.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

func (in *instruments) checkIn(code int) {
	if in == nil {
		return
	}
	result := checkInRefused
	switch {
	case code == http.StatusAccepted:
		result = checkInAccepted
	case code >= 500:
		result = checkInFailed
	}
	in.checkIns.WithLabelValues(result).Inc()
}

// peerAttrs returns the slog attributes of a client address: "peer" and,
// when the client table knows the address, "mac", "node" and "rack".
func (in *instruments) peerAttrs(peer string) []any {
	return append([]any{slog.String("peer", peer)}, in.lookup(peer).attrs()...)
}

// lookup returns the identity the client table knows for a client address
// (zero when none, or when in is nil).
func (in *instruments) lookup(peer string) identity {
	if in == nil {
		return identity{}
	}
	return in.clients.lookup(peer)
}
