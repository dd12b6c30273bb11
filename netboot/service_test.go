package netboot

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewConfigErrors(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "file", []byte("x"))
	good := func() Config {
		return Config{
			DHCPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			TFTPRoot: dir, ArtifactsDir: dir, StoreDir: filepath.Join(dir, "store"),
			CheckInKey: testKey, Reservations: StaticReservations{}, Signaler: &recordingSignaler{},
		}
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // substring; "" → valid
	}{
		{"valid", func(*Config) {}, ""},
		{"only TFTP", func(c *Config) { *c = Config{TFTPAddr: "127.0.0.1:0", TFTPRoot: dir} }, ""},
		{"nothing enabled", func(c *Config) { c.DHCPAddr, c.TFTPAddr, c.HTTPAddr = "", "", "" }, "enable at least one"},
		{"address without port", func(c *Config) { c.HTTPAddr = "127.0.0.1" }, "HTTPAddr"},
		{"host name address", func(c *Config) { c.TFTPAddr = "localhost:69" }, "TFTPAddr"},
		{"bad port", func(c *Config) { c.DHCPAddr = "127.0.0.1:99999" }, "DHCPAddr"},
		{"bad ServerIP", func(c *Config) { c.ServerIP = "::1" }, "ServerIP"},
		{"DHCP on unspecified host without ServerIP", func(c *Config) {
			c.DHCPAddr, c.HTTPAddr, c.TFTPAddr = "0.0.0.0:67", "", ""
		}, "ServerIP is required"},
		{"HTTP on unspecified host without ServerIP", func(c *Config) {
			c.DHCPAddr, c.HTTPAddr, c.TFTPAddr = "", ":8880", ""
		}, "ServerIP is required"},
		{"DHCP without Reservations", func(c *Config) { c.Reservations = nil }, "Reservations"},
		{"TFTP without root or iPXE dir", func(c *Config) { c.TFTPRoot, c.IPXEDir = "", filepath.Join(dir, "missing") }, "TFTPRoot is empty and IPXEDir"},
		{"TFTP from the iPXE dir only", func(c *Config) { c.TFTPRoot, c.IPXEDir = "", dir }, ""},
		{"TFTP root missing", func(c *Config) { c.TFTPRoot = filepath.Join(dir, "missing") }, "TFTPRoot"},
		{"TFTP root is a file", func(c *Config) { c.TFTPRoot = file }, "TFTPRoot"},
		{"TFTP anticipation at the library's cap", func(c *Config) { c.TFTPAnticipate = MaxTFTPAnticipate }, ""},
		{"TFTP anticipation over the cap", func(c *Config) { c.TFTPAnticipate = MaxTFTPAnticipate + 1 }, "TFTPAnticipate 61"},
		{"artifacts missing", func(c *Config) { c.ArtifactsDir = filepath.Join(dir, "missing") }, "ArtifactsDir"},
		{"HTTP without StoreDir", func(c *Config) { c.StoreDir = "" }, "StoreDir"},
		{"short key", func(c *Config) { c.CheckInKey = []byte("short") }, "CheckInKey"},
		{"no Signaler", func(c *Config) { c.Signaler = nil }, "Signaler"},
		{"bad boot file", func(c *Config) { c.BootFiles = map[uint16]string{7: "../ipxe.efi"} }, "BootFiles[7]"},
		{"StoreDir is a file", func(c *Config) { c.StoreDir = file }, "StoreDir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mutate(&cfg)
			_, err := New(cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestServiceAddressesAndShutdown(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{
		DHCPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		TFTPRoot: dir, StoreDir: filepath.Join(dir, "store"),
		CheckInKey: testKey, Reservations: StaticReservations{}, Signaler: &recordingSignaler{},
		Logger: testLogger(t),
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if svc.HTTPBase() != "" || svc.DHCPAddr() != "" {
		t.Fatal("addresses known before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	addrs := map[string]string{"dhcp": svc.DHCPAddr(), "tftp": svc.TFTPAddr(), "http": svc.HTTPAddr()}
	for name, a := range addrs {
		if !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":0") {
			t.Fatalf("%s address %q", name, a)
		}
	}
	if want := "http://" + svc.HTTPAddr(); svc.HTTPBase() != want {
		t.Fatalf("HTTPBase = %q, want %q", svc.HTTPBase(), want)
	}
	if !svc.ServerIP().Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("ServerIP = %s", svc.ServerIP())
	}
	if err := svc.Run(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Run = %v", err)
	}
	// A busy port makes another service's Run fail and still close Ready.
	busy := cfg
	busy.DHCPAddr, busy.TFTPAddr, busy.HTTPAddr = "", "", svc.HTTPAddr()
	other, err := New(busy)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Run(ctx); err == nil || !strings.Contains(err.Error(), "listen HTTP") {
		t.Fatalf("Run on a busy port = %v", err)
	}
	<-other.Ready()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// Every socket is closed: the same addresses can be bound again.
	for _, a := range []string{addrs["dhcp"], addrs["tftp"]} {
		c, err := net.ListenPacket("udp4", a)
		if err != nil {
			t.Fatalf("rebind %s: %v", a, err)
		}
		c.Close()
	}
	l, err := net.Listen("tcp", addrs["http"])
	if err != nil {
		t.Fatalf("rebind %s: %v", addrs["http"], err)
	}
	l.Close()
	if _, err := os.Stat(filepath.Join(dir, "store", "profiles")); err != nil {
		t.Fatalf("store not created: %v", err)
	}
}
