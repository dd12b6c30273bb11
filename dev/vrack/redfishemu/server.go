package redfishemu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"
)

// Config describes one emulated BMC.
type Config struct {
	Addr     string   // TCP listen address, e.g. "127.1.0.5:8443" (port 0 picks one)
	Username string   // the only account; required
	Password string   // its password; never logged
	Machine  *Machine // the state the BMC controls; required
	Name     string   // system name shown in ComputerSystem.Name (e.g. the node name)
	UUID     string   // ComputerSystem.UUID; optional
	Logger   *slog.Logger
	// Certificate is the TLS certificate served; nil generates a self-signed
	// ECDSA P-256 certificate for the listen host in memory.
	Certificate *tls.Certificate
	// MaxSessions bounds concurrent Redfish sessions (oldest evicted); 0 means 64.
	MaxSessions int
}

// Server is a running Redfish BMC emulator.
type Server struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	sessions *sessions
	done     chan struct{}

	mu       sync.Mutex
	requests []string // last maxRecorded "METHOD /path status"
}

const maxRecorded = 256

// Start listens on cfg.Addr with TLS and serves in the background until
// Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Machine == nil {
		return nil, errors.New("redfishemu: Config.Machine is nil")
	}
	if cfg.Username == "" {
		return nil, errors.New("redfishemu: Config.Username is empty")
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 64
	}
	if cfg.Name == "" {
		cfg.Name = "system"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cert := cfg.Certificate
	if cert == nil {
		host, _, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("redfishemu: address %q: %w", cfg.Addr, err)
		}
		c, err := SelfSigned(host)
		if err != nil {
			return nil, err
		}
		cert = &c
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("redfishemu: listen %s: %w", cfg.Addr, err)
	}
	log = log.With("bmc", ln.Addr().String())
	s := &Server{
		cfg:      cfg,
		log:      log,
		ln:       ln,
		sessions: newSessions(cfg.MaxSessions),
		done:     make(chan struct{}),
	}
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	tlsLn := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(tlsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("redfish emulator stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr returns the bound "host:port".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns "https://host:port".
func (s *Server) URL() string { return "https://" + s.Addr() }

// Close stops listening, closes open connections and waits for the server
// goroutine.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

// Requests returns the most recent requests served (at most 256), oldest
// first, as "METHOD /path status".
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *Server) record(r *http.Request, status int) {
	line := fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, status)
	s.mu.Lock()
	if len(s.requests) == maxRecorded {
		s.requests = append(s.requests[:0], s.requests[1:]...)
	}
	s.requests = append(s.requests, line)
	s.mu.Unlock()
	s.log.Debug("redfish request", "method", r.Method, "path", r.URL.Path, "status", status)
}

// SelfSigned returns a self-signed ECDSA P-256 certificate valid for one
// year for the given host names or IP addresses.
func SelfSigned(hosts ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("redfishemu: key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("redfishemu: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vrack BMC", Organization: []string{"rackflow"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("redfishemu: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
