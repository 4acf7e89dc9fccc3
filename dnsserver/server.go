package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"

	"github.com/data-mesher/data-mesher/internal/sockopt"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Config configures a Server.
type Config struct {
	// Listen are the addresses to answer on: the tunnel address port 53,
	// and optionally a loopback address for systemd-resolved split DNS.
	Listen []netip.AddrPort
	// Forwarders receive queries outside the mesh's zones ("host:port").
	// Empty: such queries are refused (the server is not a resolver).
	Forwarders []string
	// FastPath answers common UDP queries from pre-packed replies on a
	// blocking socket (default on; Linux only).
	DisableFastPath bool
	// SlowWorkers answer what the fast path passes on (default 2).
	SlowWorkers int
	Logger      *slog.Logger
}

// Server answers DNS on the configured addresses until Stop.
type Server struct {
	cfg     Config
	handler *Handler
	log     *slog.Logger

	mu      sync.Mutex
	loops   []*udpLoop
	servers []*dns.Server
	wg      sync.WaitGroup
}

// NewServer prepares a server with an empty table.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SlowWorkers <= 0 {
		cfg.SlowWorkers = 2
	}
	return &Server{cfg: cfg, handler: NewHandler(cfg.Forwarders), log: cfg.Logger.With("component", "dns")}
}

// Handler returns the server's authoritative handler.
func (s *Server) Handler() *Handler { return s.handler }

// SetTable installs the answers; it never waits for queries.
func (s *Server) SetTable(t *Table) { s.handler.SetTable(t) }

// Start binds every address (UDP and TCP) and serves in the background. A
// failure to bind one address stops the others and is returned: the caller
// decides (doctor names the address and what holds it).
func (s *Server) Start() error {
	for _, a := range s.cfg.Listen {
		if err := s.startOne(a); err != nil {
			s.Stop()
			return err
		}
	}
	s.log.Info("DNS listening", "addrs", s.cfg.Listen, "fast_path", !s.cfg.DisableFastPath && runtime.GOOS == "linux",
		"forwarders", len(s.cfg.Forwarders))
	return nil
}

func (s *Server) startOne(a netip.AddrPort) error {
	tcp, err := listenTCP(a)
	if err != nil {
		return fmt.Errorf("DNS on TCP %s: %w", a, err)
	}
	ts := &dns.Server{Listener: tcp, Handler: s.handler, Net: "tcp"}
	s.serve(ts)
	if !s.cfg.DisableFastPath && runtime.GOOS == "linux" {
		fd, err := listenUDP(a)
		if err != nil {
			return fmt.Errorf("DNS on UDP %s: %w", a, err)
		}
		l := newUDPLoop(fd, s.handler)
		s.mu.Lock()
		s.loops = append(s.loops, l)
		s.mu.Unlock()
		s.wg.Add(1 + s.cfg.SlowWorkers)
		go func() { defer s.wg.Done(); l.run(); close(l.slow); unix.Close(fd) }()
		for range s.cfg.SlowWorkers {
			go func() { defer s.wg.Done(); l.slowWorker() }()
		}
		return nil
	}
	pc, err := listenPacket(a)
	if err != nil {
		return fmt.Errorf("DNS on UDP %s: %w", a, err)
	}
	s.serve(&dns.Server{PacketConn: pc, Handler: s.handler, Net: "udp"})
	return nil
}

// serve runs srv and returns once it is serving: a Shutdown before that
// would be lost and leave it running.
func (s *Server) serve(srv *dns.Server) {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	exited := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(exited)
		if err := srv.ActivateAndServe(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Warn("DNS server stopped", "err", err)
		}
	}()
	select {
	case <-started:
		s.mu.Lock()
		s.servers = append(s.servers, srv)
		s.mu.Unlock()
	case <-exited:
	}
}

// Stop closes every listener and waits for the loops.
func (s *Server) Stop() {
	s.mu.Lock()
	loops, servers := s.loops, s.servers
	s.loops, s.servers = nil, nil
	s.mu.Unlock()
	for _, l := range loops {
		l.stop()
	}
	for _, srv := range servers {
		_ = srv.Shutdown()
	}
	s.wg.Wait()
}

// FastAnswers counts replies sent by the fast path.
func (s *Server) FastAnswers() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, l := range s.loops {
		n += l.fast.Load()
	}
	return n
}

func listenTCP(a netip.AddrPort) (net.Listener, error) {
	return sockopt.ListenTCP(context.Background(), a)
}

func listenPacket(a netip.AddrPort) (net.PacketConn, error) {
	return sockopt.ListenUDP(context.Background(), a)
}
