package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var (
	testServer = net.IPv4(10, 77, 0, 1).To4()
	testLeased = net.IPv4(10, 77, 0, 11).To4()
)

func TestLeaseConfig(t *testing.T) {
	ack := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeAck)}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name    string
		ack     *dhcpv4.DHCPv4
		addr    string
		router  string // "" = none
		server  string
		dns     int
		lease   time.Duration
		wantErr string
	}{
		{
			name: "full",
			ack: ack(dhcpv4.WithYourIP(testLeased), dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
				dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(10, 77, 0, 254))), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(testServer)),
				dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 77, 0, 2), net.IPv4(10, 77, 0, 3))),
				dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(12*time.Hour))),
			addr: "10.77.0.11/24", router: "10.77.0.254", server: "10.77.0.1", dns: 2, lease: 12 * time.Hour,
		},
		{
			name: "classful mask, no router, siaddr as server",
			ack:  ack(dhcpv4.WithYourIP(net.IPv4(192, 168, 5, 7)), dhcpv4.WithServerIP(net.IPv4(192, 168, 5, 1))),
			addr: "192.168.5.7/24", server: "192.168.5.1",
		},
		{
			name: "class A default",
			ack:  ack(dhcpv4.WithYourIP(testLeased)),
			addr: "10.77.0.11/8", server: "unknown server",
		},
		{
			name: "zero router ignored, second used",
			ack: ack(dhcpv4.WithYourIP(testLeased), dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(16, 32))),
				dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4zero, net.IPv4(10, 77, 255, 254)))),
			addr: "10.77.0.11/16", router: "10.77.255.254", server: "unknown server",
		},
		{name: "no address", ack: ack(), wantErr: "ACK has no usable address"},
		{name: "broadcast address", ack: ack(dhcpv4.WithYourIP(net.IPv4bcast)), wantErr: "no usable address"},
		{
			name:    "non-contiguous mask",
			ack:     ack(dhcpv4.WithYourIP(testLeased), dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.IPv4Mask(255, 0, 255, 0)))),
			wantErr: "invalid subnet mask 255.0.255.0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := leaseConfig(tt.ack)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Addr.String(); got != tt.addr {
				t.Errorf("addr = %s, want %s", got, tt.addr)
			}
			router := ""
			if cfg.Router != nil {
				router = cfg.Router.String()
			}
			if router != tt.router {
				t.Errorf("router = %q, want %q", router, tt.router)
			}
			if got := ipOrUnknown(cfg.Server); got != tt.server {
				t.Errorf("server = %s, want %s", got, tt.server)
			}
			if len(cfg.DNS) != tt.dns || cfg.Lease != tt.lease {
				t.Errorf("dns = %v, lease = %s; want %d servers, %s", cfg.DNS, cfg.Lease, tt.dns, tt.lease)
			}
		})
	}
}
