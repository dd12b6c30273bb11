package netboot

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Fuzz targets (seed corpus only under plain go test):
//
//	go test ./netboot -run '^$' -fuzz FuzzDHCPHandler -fuzztime 60s
//	go test ./netboot -run '^$' -fuzz FuzzCheckInBody -fuzztime 60s

// fuzzReservations is the reservation table of FuzzDHCPHandler: knownMAC,
// and a MAC whose reservation has no IPv4 address (answered never).
func fuzzReservations() StaticReservations {
	return StaticReservations{
		knownMAC:            {Node: "r01n01", Rack: "r01", IP: reservedIP, Mask: net.CIDRMask(16, 32), Router: routerIP, Lease: 2 * time.Hour},
		"02:52:46:01:00:02": {Node: "r01n02", Rack: "r01", IP: net.ParseIP("2001:db8::2")},
	}
}

// dhcpSeeds are valid packets and malformed variants of them.
func dhcpSeeds(f *testing.F) [][]byte {
	mac := func(s string) net.HardwareAddr {
		hw, err := net.ParseMAC(s)
		if err != nil {
			f.Fatal(err)
		}
		return hw
	}
	msg := func(m *dhcpv4.DHCPv4, err error) []byte {
		if err != nil {
			f.Fatal(err)
		}
		return m.ToBytes()
	}
	edit := func(b []byte, fn func([]byte) []byte) []byte { return fn(append([]byte(nil), b...)) }
	known := mac(knownMAC)
	disc := msg(dhcpv4.NewDiscovery(known))
	uefi := msg(dhcpv4.NewDiscovery(known, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))))
	ipxe := msg(dhcpv4.NewDiscovery(known, dhcpv4.WithUserClass("iPXE", false)))
	req := msg(dhcpv4.New(dhcpv4.WithHwAddr(known), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(reservedIP)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(127, 0, 0, 1)))))
	wrongReq := msg(dhcpv4.New(dhcpv4.WithHwAddr(known), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(127, 100, 9, 9)))))
	renew := msg(dhcpv4.New(dhcpv4.WithHwAddr(known), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(reservedIP)))
	release := msg(dhcpv4.New(dhcpv4.WithHwAddr(known), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease)))
	unknown := msg(dhcpv4.NewDiscovery(mac(unknownMAC)))
	noIPv4 := msg(dhcpv4.NewDiscovery(mac("02:52:46:01:00:02")))
	return [][]byte{
		disc, uefi, ipxe, req, wrongReq, renew, release, unknown, noIPv4,
		nil,
		{0x01},
		[]byte("definitely not DHCP"),
		make([]byte, 240),                        // zero header, no magic cookie
		disc[:236],                               // header cut before the cookie
		disc[:240],                               // cookie, no options at all
		append(disc[:240:240], 0x35),             // option code without a length
		append(disc[:240:240], 0x35, 0x09, 0x01), // length past the end
		append(disc[:240:240], 0x35, 0x01, 0x01, 0x5d),                                          // option 93 truncated
		append(disc[:240:240], 0x35, 0x01, 0x01, 0x5d, 0x01, 0x07, 0xff),                        // option 93 one byte long
		append(disc[:240:240], 0x35, 0x00, 0xff),                                                // message type of length 0
		append(disc[:240:240], 0x35, 0x01, 0x63, 0xff),                                          // unknown message type
		append(append(disc[:240:240], 0x35, 0x01, 0x01, 0x34, 0x01, 0x03), make([]byte, 32)...), // option overload: file and sname hold options
		edit(disc, func(b []byte) []byte {
			copy(b[108:], []byte{0x43, 0x05, 'x'})
			b = append(b[:240], 0x34, 0x01, 0x01, 0x35, 0x01, 0x01, 0xff)
			return b
		}), // overload with a truncated option in file
		edit(disc, func(b []byte) []byte { b[0] = 2; return b }),                                                 // a BOOTREPLY
		edit(disc, func(b []byte) []byte { b[0] = 0; return b }),                                                 // opcode 0
		edit(disc, func(b []byte) []byte { b[1] = 6; return b }),                                                 // htype IEEE 802
		edit(disc, func(b []byte) []byte { b[1] = 0; return b }),                                                 // htype 0
		edit(disc, func(b []byte) []byte { b[2] = 200; return b }),                                               // huge hlen
		edit(disc, func(b []byte) []byte { b[2] = 16; return b }),                                                // hlen 16
		edit(disc, func(b []byte) []byte { b[2] = 0; return b }),                                                 // hlen 0
		edit(disc, func(b []byte) []byte { b[24], b[25], b[26], b[27] = 127, 0, 0, 9; return b }),                // via a relay (giaddr)
		edit(req, func(b []byte) []byte { return append(b[:len(b)-1], bytes.Repeat([]byte{0x0c, 0xff}, 2)...) }), // 255-byte option past the end
		append(disc, bytes.Repeat([]byte{0}, 2000)...),                                                           // padding past any MTU
	}
}

// FuzzDHCPHandler feeds arbitrary datagrams through the DHCP server's
// pipeline (dhcpv4.FromBytes as server4 does, then the handler): no
// panic; a reply only for a well-formed DISCOVER/REQUEST from the reserved
// MAC, carrying its reservation (or a NAK); the reservation table and boot
// files unchanged.
func FuzzDHCPHandler(f *testing.F) {
	for _, s := range dhcpSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res := fuzzReservations()
		bootFiles := maps.Clone(DefaultBootFiles)
		var panics atomic.Int32
		d := &dhcpServer{res: res, serverIP: net.IPv4(127, 0, 0, 1).To4(), bootFiles: bootFiles,
			httpBase: func() string { return "http://127.0.0.1:8880" },
			log:      slog.New(panicCounter{&panics})}
		m, err := dhcpv4.FromBytes(data)
		if err != nil {
			return // server4 drops what it cannot parse
		}
		peer := &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ClientPort}
		resp, _ := d.respond(peer, m, false) // no recover here: a panic fails the fuzz run
		conn := &capturePacketConn{}
		d.handle(conn, peer, m, false) // the full handler, reply written to conn
		if panics.Load() != 0 {
			t.Fatal("handler recovered from a panic")
		}
		if !reflect.DeepEqual(res, fuzzReservations()) || !maps.Equal(bootFiles, DefaultBootFiles) {
			t.Fatal("the handler changed its reservations or boot files")
		}
		if (resp == nil) != (len(conn.sent) == 0) || len(conn.sent) > 1 {
			t.Fatalf("respond answered %v, handle sent %d datagrams", resp != nil, len(conn.sent))
		}
		if resp == nil {
			return
		}
		typ := m.MessageType()
		switch {
		case m.OpCode != dhcpv4.OpcodeBootRequest, m.HWType != iana.HWTypeEthernet, m.ClientHWAddr.String() != knownMAC:
			t.Fatalf("reply to op %v htype %v chaddr %q (only BOOTREQUESTs from %s get one)", m.OpCode, m.HWType, m.ClientHWAddr, knownMAC)
		case typ != dhcpv4.MessageTypeDiscover && typ != dhcpv4.MessageTypeRequest:
			t.Fatalf("reply to a %v", typ)
		}
		r, err := dhcpv4.FromBytes(conn.sent[0])
		if err != nil {
			t.Fatalf("the reply does not parse: %v", err)
		}
		if r.TransactionID != m.TransactionID || r.OpCode != dhcpv4.OpcodeBootReply || r.ClientHWAddr.String() != knownMAC {
			t.Fatalf("reply xid/op/chaddr %v/%v/%v for request %v/%v", r.TransactionID, r.OpCode, r.ClientHWAddr, m.TransactionID, knownMAC)
		}
		switch r.MessageType() {
		case dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck:
			want := map[dhcpv4.MessageType]dhcpv4.MessageType{dhcpv4.MessageTypeDiscover: dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeRequest: dhcpv4.MessageTypeAck}[typ]
			if r.MessageType() != want || !r.YourIPAddr.Equal(reservedIP) {
				t.Fatalf("%v for a %v with yiaddr %v (want %v of %v)", r.MessageType(), typ, r.YourIPAddr, want, reservedIP)
			}
		case dhcpv4.MessageTypeNak:
			if typ != dhcpv4.MessageTypeRequest || !r.YourIPAddr.IsUnspecified() {
				t.Fatalf("NAK for a %v, yiaddr %v", typ, r.YourIPAddr)
			}
		default:
			t.Fatalf("reply of type %v", r.MessageType())
		}
	})
}

// panicCounter is a slog.Handler counting the handler's recovered panics.
type panicCounter struct{ n *atomic.Int32 }

func (p panicCounter) Enabled(context.Context, slog.Level) bool { return true }
func (p panicCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		p.n.Add(1)
	}
	return nil
}
func (p panicCounter) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p panicCounter) WithGroup(string) slog.Handler      { return p }

// capturePacketConn is a net.PacketConn that records what is written.
type capturePacketConn struct {
	net.PacketConn // nil: only WriteTo is used
	sent           [][]byte
}

func (c *capturePacketConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.sent = append(c.sent, append([]byte(nil), b...))
	return len(b), nil
}

// FuzzCheckInBody posts arbitrary bodies to POST /v1/checkin through the
// HTTP server's handler: no panic; a documented status with a JSON body;
// the Signaler called (once) only for a body that decodes strictly to a
// check-in whose token verifies, and never for a refused one; the
// boot-profile store unchanged.
func FuzzCheckInBody(f *testing.F) {
	valid := CheckIn{Node: "r01n01", Run: "run-1", Token: MintToken(testKey, "r01n01", "run-1"), Status: CheckInOK,
		Digest: "sha256:" + strings.Repeat("0f", 32)}
	asJSON := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		return string(b)
	}
	failed := valid
	failed.Status, failed.Digest, failed.Message = CheckInError, "", "disk not found"
	busy := CheckIn{Node: "r01n09", Run: "run-3", Token: MintToken(testKey, "r01n09", "run-3"), Status: CheckInOK}
	down := CheckIn{Node: "r01n08", Run: "run-4", Token: MintToken(testKey, "r01n08", "run-4"), Status: CheckInOK}
	v := asJSON(valid)
	for _, s := range []string{
		v, asJSON(failed), asJSON(busy), asJSON(down),
		"", "{", "}", "null", "[]", `"x"`, "0", "{}",
		`{"node": "r01n01",`,
		strings.TrimSuffix(v, "}") + `,"admin":true}`,
		v + `{}`, v + " ", v + "\n\x00",
		strings.Replace(v, `"ok"`, `"done"`, 1),
		strings.Replace(v, "sha256:", "md5:", 1),
		strings.Replace(v, valid.Token, "", 1),
		strings.Replace(v, valid.Token, strings.ToUpper(valid.Token), 1),
		strings.Replace(v, `"run-1"`, `"run-2"`, 1),
		strings.Replace(v, `"node"`, `"Node"`, 1), // encoding/json matches keys case-insensitively
		`{"node":"r01n01","node":"r01n02","run":"run-1","token":"x","status":"ok"}`,
		`{"node":1,"run":"run-1","token":"x","status":"ok"}`,
		`{"node":"\ud800","run":"run-1","token":"x","status":"ok"}`,
		strings.Repeat("[", 10000),
		`{"node":"r01n01","run":"run-1","token":"x","status":"error","message":"` + strings.Repeat("x", MaxCheckInBody) + `"}`,
		"\xff\xfe{}",
	} {
		f.Add([]byte(s))
	}

	dir := f.TempDir()
	store, err := OpenStore(filepath.Join(dir, "store"))
	if err != nil {
		f.Fatal(err)
	}
	if err := store.Put(Profile{MAC: knownMAC, Node: "r01n01", Mode: ModeLocal}); err != nil {
		f.Fatal(err)
	}
	before := snapshotDir(f, store.Dir())
	sig := &recordingSignaler{errs: map[string]error{
		"r01n09": ErrNoOperation,
		"r01n08": errTest,
	}}
	discard := slog.New(slog.DiscardHandler)
	h := (&httpServer{store: store, base: func() string { return "http://127.0.0.1:8880" }, log: discard,
		checkin: &checkInHandler{key: testKey, signaler: sig, log: discard}}).handler()

	f.Fuzz(func(t *testing.T, body []byte) {
		sig.take()
		req := httptest.NewRequest(http.MethodPost, "/v1/checkin", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		calls := sig.take()

		var reply map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
			t.Fatalf("status %d with a body that is not a JSON object: %q", rec.Code, rec.Body.String())
		}
		switch rec.Code {
		case http.StatusAccepted, http.StatusConflict, http.StatusBadGateway:
			// The Signaler was asked: only for a body that decodes strictly
			// and carries a token that verifies.
			if len(calls) != 1 {
				t.Fatalf("status %d after %d Signaler calls", rec.Code, len(calls))
			}
			var c CheckIn
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&c); err != nil || c != calls[0] || !VerifyToken(testKey, c.Node, c.Run, c.Token) {
				t.Fatalf("Signaler called with %+v for body %q (decode: %v)", calls[0], body, err)
			}
			if c.Status != CheckInOK && c.Status != CheckInError {
				t.Fatalf("Signaler called with status %q", c.Status)
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge:
			if len(calls) != 0 {
				t.Fatalf("Signaler called %d times for a refused body (status %d)", len(calls), rec.Code)
			}
			if reply["error"] == "" {
				t.Fatalf("refusal %d without an error message: %v", rec.Code, reply)
			}
		default:
			t.Fatalf("undocumented status %d for body %q", rec.Code, body)
		}
		if after := snapshotDir(t, store.Dir()); !maps.Equal(before, after) {
			t.Fatal("a check-in changed the boot-profile store")
		}
	})
}

// snapshotDir maps every file under dir (relative path) to its content.
func snapshotDir(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		snap[rel] = string(b)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}
