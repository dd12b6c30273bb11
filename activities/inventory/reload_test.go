package inventory

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

// TestReloadingReservations: a node appended to the inventory file is
// served after the next check; a broken file keeps the previous
func TestReloadingReservations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "yaml")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReloading(inv, slog.New(slog.DiscardHandler))
	mac := mustMAC(t, "02:52:46:0f:00:77")
	if _, ok := r.Reservation(mac); ok {
		t.Fatal("reservation before enrolment")
	}
	if _, err := AddNode(path, Node{Name: "r01n03", Rack: "r01", Slot: 3, MACs: []string{mac.String()},
		IP: "10.0.0.13", BMC: BMC{Driver: "ipmi", Address: "10.0.1.12"}}); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.checked = time.Time{} // the next lookup checks the file
	r.mu.Unlock()
	if res, ok := r.Reservation(mac); !ok || res.Node != "r01n03" || !r.ReservedIP(net.ParseIP("10.0.0.13")) {
		t.Fatalf("after AddNode: %+v %v", res, ok)
	}
	if err := os.WriteFile(path, []byte("racks: [oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.checked = time.Time{}
	r.mu.Unlock()
	if _, ok := r.Reservation(mac); !ok {
		t.Fatal("a broken inventory file dropped the reservations")
	}
}
