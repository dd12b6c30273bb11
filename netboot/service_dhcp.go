package netboot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// validateDHCP checks and normalises the DHCP fields of cfg.
func validateDHCP(cfg *Config) error {
	switch cfg.DHCPMode {
	case "":
		cfg.DHCPMode = DHCPModeReservation
	case DHCPModeReservation, DHCPModeProxy:
	default:
		return fmt.Errorf("DHCPMode %q: want %q or %q", cfg.DHCPMode, DHCPModeReservation, DHCPModeProxy)
	}
	if cfg.PXEAddr != "" {
		if cfg.DHCPMode != DHCPModeProxy || cfg.DHCPAddr == "" {
			return errors.New("PXEAddr is only served in DHCPMode proxy with DHCPAddr set")
		}
		if err := validListenAddr(cfg.PXEAddr); err != nil {
			return fmt.Errorf("PXEAddr: %w", err)
		}
	}
	subs, err := validateSubnets(cfg.Subnets)
	if err != nil {
		return err
	}
	cfg.Subnets = subs
	if cfg.DHCPAddr != "" && cfg.DHCPStateDir == "" {
		for _, s := range subs {
			if s.hasPool() || s.Unknown == UnknownEnrol {
				return fmt.Errorf("DHCPStateDir is required: subnet %s has a pool or the %q policy", s.Name, UnknownEnrol)
			}
		}
	}
	return nil
}

// bindPXE opens the proxyDHCP boot-server socket (Config.PXEAddr).
func (s *Service) bindPXE(ctx context.Context) error {
	if s.cfg.PXEAddr == "" {
		return nil
	}
	lc := net.ListenConfig{Control: setBroadcast}
	c, err := lc.ListenPacket(ctx, "udp4", s.cfg.PXEAddr)
	if err != nil {
		return fmt.Errorf("netboot: listen PXE boot server %s: %w", s.cfg.PXEAddr, err)
	}
	s.mu.Lock()
	s.pxeConn, s.pxeAddr = c, c.LocalAddr().String()
	s.mu.Unlock()
	return nil
}

// PXEAddr returns the bound proxyDHCP boot-server "ip:port" ("" before Run
// binds it or when disabled).
func (s *Service) PXEAddr() string { s.mu.Lock(); defer s.mu.Unlock(); return s.pxeAddr }

// newDHCPServer builds the DHCP server, opening the lease journal when a
// subnet has a pool (reservation mode) and the discovery store when
// DHCPStateDir is set.
func (s *Service) newDHCPServer() (*dhcpServer, error) {
	d := &dhcpServer{res: s.cfg.Reservations, serverIP: s.serverIP, bootFiles: s.cfg.BootFiles,
		httpBase: s.HTTPBase, log: s.log, obs: s.obs, proxy: s.cfg.DHCPMode == DHCPModeProxy, subnets: s.cfg.Subnets}
	if s.store != nil {
		st := s.store
		d.hasProfile = func(mac string) bool { _, err := st.Get(mac); return err == nil }
	}
	if s.cfg.DHCPStateDir == "" {
		return d, nil
	}
	var err error
	if d.discovery, err = OpenDiscovery(s.cfg.DHCPStateDir); err != nil {
		return nil, fmt.Errorf("netboot: %w", err)
	}
	pools := false
	for i := range d.subnets {
		pools = pools || d.subnets[i].hasPool()
	}
	if pools && !d.proxy {
		res := s.cfg.Reservations
		reserved := func(ip netip.Addr) bool { return res.ReservedIP(net.IP(ip.AsSlice())) }
		if d.pool, err = openLeasePool(s.cfg.DHCPStateDir, d.subnets, reserved, time.Now); err != nil {
			return nil, fmt.Errorf("netboot: %w", err)
		}
	}
	return d, nil
}

// closePool closes the lease journal, if open.
func (d *dhcpServer) closePool() {
	if d.pool != nil {
		if err := d.pool.close(); err != nil {
			d.log.Error("dhcp: close lease journal", "err", err)
		}
	}
}
