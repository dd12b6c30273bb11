package netboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Service. An empty listen address disables that
// server.
type Config struct {
	DHCPAddr string // UDP "host:port" for DHCPv4, e.g. "127.0.0.1:6767" (production "0.0.0.0:67")
	TFTPAddr string // UDP "host:port" for TFTP, e.g. "127.0.0.1:6969"
	HTTPAddr string // TCP "host:port" for HTTP, e.g. "127.0.0.1:8880"

	// ServerIP is the IPv4 address clients reach this service at: siaddr
	// (next-server), options 54 and 66, and the host of HTTPBase when
	// HTTPAddr's host is unspecified. "" → the first specific IPv4 host of
	// DHCPAddr, HTTPAddr, TFTPAddr; required when none has one and DHCP is
	// enabled or HTTP listens on an unspecified host.
	ServerIP string

	// TFTPRoot is the directory served read-only over TFTP; "" → IPXEDir
	// only. With TFTPAddr, at least one of the two must exist.
	TFTPRoot string
	// IPXEDir holds the iPXE boot images served over TFTP by their base
	// name when TFTPRoot does not hold that name; symlinks in it are
	// followed (Debian's ipxe package links ipxe.efi to /boot). "" →
	// DefaultIPXEDir; a missing directory serves nothing.
	IPXEDir string
	// TFTPSinglePort serves every transfer from the listening socket
	// instead of a new port per transfer (pin/tftp's single-port mode, as
	// dnsmasq's --tftp-single-port): for firewalls that pass port 69 only,
	// and for a service bound inside a network namespace by a process that
	// lives outside it (per-transfer sockets would open outside).
	TFTPSinglePort bool
	// TFTPAnticipate, when 2 or more, sends that many data blocks of a
	// transfer before waiting for their ACKs (pin/tftp's experimental
	// "sender anticipation", at most 60): several times the lockstep
	// throughput of one stream. It negotiates nothing — unlike RFC 7440
	// windowsize, which pin/tftp lacks — so the client must ACK every
	// block, as lockstep (RFC 1350) clients do; a lost block costs a
	// timeout and the whole window again. 0 or 1 → lockstep, the default,
	// for firmware that drops bursts.
	TFTPAnticipate uint
	ArtifactsDir   string // directory served at /artifacts/; "" → /artifacts/ answers 404
	StoreDir       string // boot-profile store directory (OpenStore); required with HTTPAddr

	CheckInKey   []byte       // HMAC key of check-in tokens, >= 16 bytes; required with HTTPAddr
	Reservations Reservations // required with DHCPAddr
	Signaler     Signaler     // receives verified check-ins; required with HTTPAddr
	Logger       *slog.Logger // nil → discard

	// Identifier receives verified USB-identify calls (POST /v1/identify,
	// tokens MintIdentifyToken(CheckInKey, scope)); nil → the route is not
	// served (404).
	Identifier Identifier

	// Tracker answers BitTorrent announces at GET /announce (a
	// *swarm.Tracker); nil → not served (404).
	Tracker http.Handler

	// RAInterface names the interface on which IPv6 router solicitations
	// get an empty router advertisement (see raResponder), so boot firmware
	// does not wait for one; "" answers none. Needs CAP_NET_RAW.
	RAInterface string

	// BootFiles maps DHCP option 93 architectures to TFTP boot file names;
	// nil → DefaultBootFiles.
	BootFiles map[uint16]string

	// DHCPMode is DHCPModeReservation ("" too) or DHCPModeProxy.
	DHCPMode string
	// PXEAddr is the UDP "host:port" of the proxyDHCP boot-server socket
	// (port PXEPort, 4011, in production); only in DHCPModeProxy; "" → none.
	PXEAddr string
	// Subnets are the networks DHCP serves (directly, or through relays
	// whose giaddr lies in them), with their dynamic pools and unknown-MAC
	// policies; see Subnet. No two pools may overlap.
	Subnets []Subnet
	// DHCPStateDir holds the pool's lease journal and the discovery store
	// (OpenDiscovery); required when a subnet has a pool or the
	// UnknownEnrol policy.
	DHCPStateDir string
}

// DefaultIPXEDir is where Debian's ipxe package installs the iPXE boot
// images (undionly.kpxe, ipxe.efi, snponly.efi, ...).
const DefaultIPXEDir = "/usr/lib/ipxe"

// MinCheckInKeyLen is the shortest accepted Config.CheckInKey, in bytes.
const MinCheckInKeyLen = 16

// Service bundles the DHCP, TFTP and HTTP servers. Create it with New, run
// it with Run; the bound addresses are known once Ready is closed.
type Service struct {
	cfg      Config
	serverIP net.IP
	store    *Store
	log      *slog.Logger
	obs      *instruments

	ready   chan struct{}
	runOnce sync.Once

	mu                 sync.Mutex
	dhcpAddr, tftpAddr string
	httpAddr, httpBase string
	dhcpConn, tftpConn net.PacketConn
	pxeConn            net.PacketConn // proxyDHCP port 4011
	pxeAddr            string
	dhcp               *dhcpServer
	httpListener       net.Listener
	ra                 *raResponder
}

// New validates cfg and opens the store; it binds nothing (see Run). Errors
// name the offending field.
func New(cfg Config) (*Service, error) {
	if cfg.DHCPAddr == "" && cfg.TFTPAddr == "" && cfg.HTTPAddr == "" {
		return nil, errors.New("netboot config: DHCPAddr, TFTPAddr and HTTPAddr are all empty; enable at least one server")
	}
	for _, a := range []struct{ field, addr string }{{"DHCPAddr", cfg.DHCPAddr}, {"TFTPAddr", cfg.TFTPAddr}, {"HTTPAddr", cfg.HTTPAddr}} {
		if a.addr == "" {
			continue
		}
		if err := validListenAddr(a.addr); err != nil {
			return nil, fmt.Errorf("netboot config: %s: %w", a.field, err)
		}
	}
	serverIP, err := resolveServerIP(cfg)
	if err != nil {
		return nil, fmt.Errorf("netboot config: %w", err)
	}
	if cfg.DHCPAddr != "" && cfg.Reservations == nil {
		return nil, errors.New("netboot config: Reservations is required when DHCPAddr is set")
	}
	if cfg.IPXEDir == "" {
		cfg.IPXEDir = DefaultIPXEDir
	}
	if err := validateDHCP(&cfg); err != nil {
		return nil, fmt.Errorf("netboot config: %w", err)
	}
	if cfg.TFTPAnticipate > MaxTFTPAnticipate {
		return nil, fmt.Errorf("netboot config: TFTPAnticipate %d: at most %d blocks", cfg.TFTPAnticipate, MaxTFTPAnticipate)
	}
	if cfg.TFTPAddr != "" {
		if cfg.TFTPRoot != "" {
			if err := requireDir("TFTPRoot", cfg.TFTPRoot); err != nil {
				return nil, fmt.Errorf("netboot config: %w", err)
			}
		} else if err := requireDir("IPXEDir", cfg.IPXEDir); err != nil {
			return nil, fmt.Errorf("netboot config: TFTPRoot is empty and %w (install Debian's ipxe package or set TFTPRoot)", err)
		}
	}
	if cfg.ArtifactsDir != "" {
		if err := requireDir("ArtifactsDir", cfg.ArtifactsDir); err != nil {
			return nil, fmt.Errorf("netboot config: %w", err)
		}
	}
	if cfg.HTTPAddr != "" {
		switch {
		case cfg.StoreDir == "":
			return nil, errors.New("netboot config: StoreDir is required when HTTPAddr is set")
		case len(cfg.CheckInKey) < MinCheckInKeyLen:
			return nil, fmt.Errorf("netboot config: CheckInKey must be at least %d bytes when HTTPAddr is set (got %d)", MinCheckInKeyLen, len(cfg.CheckInKey))
		case cfg.Signaler == nil:
			return nil, errors.New("netboot config: Signaler is required when HTTPAddr is set")
		}
	}
	if cfg.BootFiles == nil {
		cfg.BootFiles = maps.Clone(DefaultBootFiles)
	} else {
		cfg.BootFiles = maps.Clone(cfg.BootFiles)
		for arch, file := range cfg.BootFiles {
			if err := ValidBootFile(file); err != nil {
				return nil, fmt.Errorf("netboot config: BootFiles[%d]: %w", arch, err)
			}
		}
	}
	cfg.CheckInKey = append([]byte(nil), cfg.CheckInKey...)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, serverIP: serverIP, log: log.With("component", "netboot"), ready: make(chan struct{}),
		obs: newInstruments(newClientTable())}
	if cfg.StoreDir != "" {
		if s.store, err = OpenStore(cfg.StoreDir); err != nil {
			return nil, fmt.Errorf("netboot config: StoreDir: %w", err)
		}
	}
	return s, nil
}

// Store returns the service's boot-profile store (nil without StoreDir).
func (s *Service) Store() *Store { return s.store }

// Metrics returns the service's Prometheus registry (the series of GET
// /metrics, see instruments).
func (s *Service) Metrics() prometheus.Gatherer { return s.obs.reg }

// ServerIP returns the IPv4 address advertised to clients.
func (s *Service) ServerIP() net.IP { return append(net.IP(nil), s.serverIP...) }

// Ready is closed once Run has bound every enabled listener, or once Run
// has failed to (then the addresses stay "").
func (s *Service) Ready() <-chan struct{} { return s.ready }

// DHCPAddr returns the bound DHCP "ip:port" ("" before Run binds it or when
// disabled).
func (s *Service) DHCPAddr() string { s.mu.Lock(); defer s.mu.Unlock(); return s.dhcpAddr }

// TFTPAddr returns the bound TFTP "ip:port" ("" before Run binds it or when
// disabled).
func (s *Service) TFTPAddr() string { s.mu.Lock(); defer s.mu.Unlock(); return s.tftpAddr }

// HTTPAddr returns the bound HTTP "ip:port" ("" before Run binds it or when
// disabled).
func (s *Service) HTTPAddr() string { s.mu.Lock(); defer s.mu.Unlock(); return s.httpAddr }

// HTTPBase returns "http://host:port" of the bound HTTP server as clients
// reach it (ServerIP when the listen host is unspecified), "" before Run
// binds it or when disabled.
func (s *Service) HTTPBase() string { s.mu.Lock(); defer s.mu.Unlock(); return s.httpBase }

// shutdownGrace bounds how long Run waits for HTTP requests in flight.
const shutdownGrace = 5 * time.Second

// Run binds the enabled listeners, serves until ctx is done, then closes
// every socket and waits for its servers to stop (TFTP transfers in flight
// may take up to their retransmission limit). It returns nil after a
// ctx-driven shutdown, an error when a listener cannot be bound or a server
// stops on its own. Run may be called once.
func (s *Service) Run(ctx context.Context) error {
	first := false
	s.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("netboot: Run called twice")
	}
	if err := s.bind(ctx); err != nil {
		s.closeListeners()
		if s.dhcp != nil {
			s.dhcp.closePool()
		}
		close(s.ready)
		return err
	}
	close(s.ready)
	s.log.Info("netboot: listening", "dhcp", s.DHCPAddr(), "tftp", s.TFTPAddr(), "http", s.HTTPAddr(),
		"server_ip", s.serverIP.String())

	type result struct {
		name string
		err  error
	}
	results := make(chan result, 5)
	running := 0
	var httpSrv *http.Server
	var tftpSrv interface{ Shutdown() }

	if s.dhcpConn != nil {
		d := s.dhcp
		defer d.closePool()
		running++
		go func() { results <- result{"dhcp", d.serve(s.dhcpConn, false)} }()
		if s.pxeConn != nil {
			running++
			go func() { results <- result{"dhcp-pxe", d.serve(s.pxeConn, true)} }()
		}
	}
	if s.ra != nil {
		running++
		go func() { results <- result{"ra", s.ra.serve()} }()
	}
	if s.tftpConn != nil {
		t := (&tftpServer{root: s.cfg.TFTPRoot, ipxeDir: s.cfg.IPXEDir, singlePort: s.cfg.TFTPSinglePort, anticipate: s.cfg.TFTPAnticipate,
			log: s.log, obs: s.obs}).newServer()
		tftpSrv = t
		running++
		go func() { results <- result{"tftp", t.Serve(s.tftpConn)} }()
	}
	if s.httpListener != nil {
		h := &httpServer{store: s.store, artifacts: s.cfg.ArtifactsDir, base: s.HTTPBase, log: s.log,
			res: s.cfg.Reservations, obs: s.obs,
			checkin: &checkInHandler{key: s.cfg.CheckInKey, signaler: s.cfg.Signaler, log: s.log, obs: s.obs}, tracker: s.cfg.Tracker}
		if s.dhcp != nil {
			h.discovery = s.dhcp.discovery
		}
		if s.cfg.Identifier != nil {
			h.identify = &identifyHandler{key: s.cfg.CheckInKey, identifier: s.cfg.Identifier, log: s.log}
		}
		httpSrv = &http.Server{
			Handler:           h.handler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
		running++
		go func() { results <- result{"http", httpSrv.Serve(s.httpListener)} }()
	}

	var failure error
	select {
	case <-ctx.Done():
	case r := <-results:
		running--
		failure = fmt.Errorf("netboot: %s server stopped: %w", r.name, r.err)
		s.log.Error("netboot: server stopped unexpectedly, shutting down", "server", r.name, "err", r.err)
	}

	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		if err := httpSrv.Shutdown(sctx); err != nil {
			_ = httpSrv.Close()
		}
		cancel()
	}
	if tftpSrv != nil {
		tftpSrv.Shutdown()
	}
	s.closeListeners()
	for ; running > 0; running-- {
		<-results
	}
	s.log.Info("netboot: stopped")
	return failure
}

// bind opens every enabled listener and records its address.
func (s *Service) bind(ctx context.Context) error {
	if s.cfg.DHCPAddr != "" {
		lc := net.ListenConfig{Control: setBroadcast}
		c, err := lc.ListenPacket(ctx, "udp4", s.cfg.DHCPAddr)
		if err != nil {
			return fmt.Errorf("netboot: listen DHCP %s: %w", s.cfg.DHCPAddr, err)
		}
		s.mu.Lock()
		s.dhcpConn, s.dhcpAddr = c, c.LocalAddr().String()
		s.mu.Unlock()
		if err := s.bindPXE(ctx); err != nil {
			return err
		}
		if s.dhcp, err = s.newDHCPServer(); err != nil {
			return err
		}
	}
	if s.cfg.RAInterface != "" {
		ra, err := listenRA(s.cfg.RAInterface, s.log)
		if err != nil {
			return fmt.Errorf("netboot: %w", err)
		}
		s.mu.Lock()
		s.ra = ra
		s.mu.Unlock()
	}
	if s.cfg.TFTPAddr != "" {
		var lc net.ListenConfig
		c, err := lc.ListenPacket(ctx, "udp", s.cfg.TFTPAddr)
		if err != nil {
			return fmt.Errorf("netboot: listen TFTP %s: %w", s.cfg.TFTPAddr, err)
		}
		s.mu.Lock()
		s.tftpConn, s.tftpAddr = c, c.LocalAddr().String()
		s.mu.Unlock()
	}
	if s.cfg.HTTPAddr != "" {
		var lc net.ListenConfig
		l, err := lc.Listen(ctx, "tcp", s.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("netboot: listen HTTP %s: %w", s.cfg.HTTPAddr, err)
		}
		tcp := l.Addr().(*net.TCPAddr)
		host := tcp.IP.String()
		if tcp.IP.IsUnspecified() {
			host = s.serverIP.String()
		}
		s.mu.Lock()
		s.httpListener, s.httpAddr = l, l.Addr().String()
		s.httpBase = "http://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port))
		s.mu.Unlock()
	}
	return nil
}

func (s *Service) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dhcpConn != nil {
		_ = s.dhcpConn.Close()
	}
	if s.pxeConn != nil {
		_ = s.pxeConn.Close()
	}
	if s.tftpConn != nil {
		_ = s.tftpConn.Close()
	}
	if s.httpListener != nil {
		_ = s.httpListener.Close()
	}
	if s.ra != nil {
		s.ra.close()
	}
}

func validListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port %q in %q", port, addr)
	}
	if host != "" && net.ParseIP(host) == nil {
		return fmt.Errorf("host %q in %q is not an IP address", host, addr)
	}
	return nil
}

// resolveServerIP applies the Config.ServerIP rules.
func resolveServerIP(cfg Config) (net.IP, error) {
	if cfg.ServerIP != "" {
		ip := net.ParseIP(cfg.ServerIP).To4()
		if ip == nil || ip.IsUnspecified() {
			return nil, fmt.Errorf("ServerIP %q is not a specific IPv4 address", cfg.ServerIP)
		}
		return ip, nil
	}
	for _, addr := range []string{cfg.DHCPAddr, cfg.HTTPAddr, cfg.TFTPAddr} {
		if ip := specificIPv4(addr); ip != nil {
			return ip, nil
		}
	}
	if cfg.DHCPAddr != "" {
		return nil, errors.New("ServerIP is required: DHCP is enabled and no listen address names a specific IPv4 host")
	}
	if cfg.HTTPAddr != "" && specificIP(cfg.HTTPAddr) == nil {
		return nil, errors.New("ServerIP is required: HTTPAddr listens on an unspecified host")
	}
	return nil, nil
}

func specificIP(addr string) net.IP {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil
	}
	return ip
}

func specificIPv4(addr string) net.IP {
	return specificIP(addr).To4()
}

func requireDir(field, dir string) error {
	if dir == "" {
		return fmt.Errorf("%s is empty", field)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %s is not a directory", field, dir)
	}
	return nil
}
