package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/data-mesher/data-mesher/control"
	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/dnsserver"
	"github.com/data-mesher/data-mesher/mesh"
	"github.com/data-mesher/data-mesher/wg"
)

// Version is set at build time (-ldflags "-X …/agent.Version=…").
var Version = "dev"

// DataFormat is the version of the on-disk and on-wire formats.
const DataFormat = crdt.DataFormat

// Options are what the agent takes from its surroundings; tests replace
// them.
type Options struct {
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// WatchInterface reports the mesh interface and its changes (default:
	// wg.Watch polling peers every 5 s).
	WatchInterface func(ctx context.Context, name string) <-chan wg.Event
	// Ready is called once DNS answers (systemd notification).
	Ready func()
}

// Agent is one running data-mesher node: the parts (state, DNS, mesh,
// prober, stamper, control API, metrics) around one loop that keeps the
// node's own records and its view up to date.
type Agent struct {
	opts Options
	log  *slog.Logger
	key  crdt.PrivateKey
	now  func() time.Time
	// conf is the configuration in force; Reload swaps it whole.
	conf     atomic.Pointer[live]
	reloaded chan struct{}
	// waiting says what Run waits for before the mesh runs ("" after).
	waiting atomic.Pointer[string]

	started  time.Time
	restored int
	store    *mesh.Store
	persist  *persister
	metrics  *metrics
	tunnel   *tunnel
	view     *viewPipeline
	own      *ownRecords
	peer     peerListener
	// up holds the network parts once they all run; the control API and
	// metrics read them through it.
	up atomic.Pointer[parts]

	mu        sync.Mutex
	listening map[string]string // listener name → address, for doctor
}

// parts are the agent's network-facing parts, started by Run.
type parts struct {
	dns     *dnsserver.Server
	prober  *mesh.Prober
	node    *mesh.Node
	stamper *mesh.Stamper
}

// New checks the configuration and reads the key; Run starts the node.
func New(cfg *Config, opts Options) (*Agent, error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WatchInterface == nil {
		opts.WatchInterface = func(ctx context.Context, name string) <-chan wg.Event { return wg.Watch(ctx, name, 5*time.Second) }
	}
	key, err := LoadKey(cfg.KeyPath())
	if err != nil {
		return nil, err
	}
	a := &Agent{opts: opts, log: opts.Logger.With("component", "agent"), key: key, now: opts.Now,
		reloaded: make(chan struct{}, 1), tunnel: &tunnel{name: cfg.Interface}, listening: map[string]string{}}
	a.conf.Store(newLive(cfg))
	a.view = &viewPipeline{self: key.Public(), conf: a.conf.Load, tunnel: a.tunnel, log: a.log}
	a.view.view.Store(&crdt.ResolvedView{Names: map[string]*crdt.Name{}})
	a.setWaiting("loading the state")
	return a, nil
}

// PublicKey is the node's identity.
func (a *Agent) PublicKey() crdt.PublicKey { return a.key.Public() }

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (a *Agent) setWaiting(what string) { a.waiting.Store(&what) }

// Run runs the node until ctx ends: the state loaded and the control API
// answering at once, DNS answering from the state as soon as the interface
// gives an address, then the mesh. It returns when everything has stopped
// and the state is on disk; a ctx that ends while it waits for the
// interface is a clean stop, not an error.
func (a *Agent) Run(ctx context.Context) error {
	a.started = a.now()
	ctx, cancel := context.WithCancel(ctx)
	var tasks sync.WaitGroup
	var stops []func() // run in reverse at the end, before the tasks end
	defer func() {
		slices.Reverse(stops)
		for _, stop := range stops {
			stop()
		}
		cancel()
		tasks.Wait()
	}()
	run := func(f func(context.Context)) {
		tasks.Add(1)
		go func() { defer tasks.Done(); f(ctx) }()
	}
	conf := a.conf.Load()

	if err := a.openState(conf); err != nil {
		return err
	}
	run(a.persist.run)
	if err := a.serveControl(ctx, conf, run); err != nil {
		return err
	}

	// The interface: its addresses decide where we listen.
	a.setWaiting("the interface " + conf.Interface + " to have an address")
	events := a.opts.WatchInterface(ctx, conf.Interface)
	if err := a.awaitInterface(ctx, conf, events); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	bind := a.tunnel.Bind()

	// The reachability challenge: what this node verified before a restart
	// counts until it expires, so the names stay while they are re-checked.
	ttl := time.Duration(conf.ReachabilityTTL)
	p := &parts{prober: &mesh.Prober{
		TTL:        ttl,
		RetryAfter: min(15*time.Second, ttl/4),
		Routed:     a.tunnel.routed,
		Self:       func(n crdt.PublicKey) bool { return n == a.key.Public() },
		Logger:     a.opts.Logger.With("component", "challenge"),
	}}
	if n := p.prober.Restore(loadVerdicts(a.verdictPath(conf), a.log)); n > 0 {
		a.log.Info("restored reachability verdicts", "count", n)
	}

	// DNS first, from the state we had.
	a.setWaiting("DNS to start")
	p.dns = dnsserver.NewServer(dnsserver.Config{Listen: dnsListen(conf, bind), Forwarders: conf.DNS.Forwarders, Logger: a.opts.Logger})
	a.view.prober, a.view.dns = p.prober, p.dns
	a.view.update(a.now())
	if err := p.dns.Start(); err != nil {
		return fmt.Errorf("starting DNS: %w (is another DNS server bound there? `dm-agent doctor` names it)", err)
	}
	stops = append(stops, p.dns.Stop)
	for _, l := range dnsListen(conf, bind) {
		a.listen("dns "+l.String(), l)
	}
	if a.opts.Ready != nil {
		a.opts.Ready()
	}
	// Start-up decoded the whole state file at once; give that memory back
	// now rather than keep it as headroom.
	debug.FreeOSMemory()
	a.log.Info("answering DNS", "names", len(a.view.current().Names), "restored_records", a.restored,
		"since_start", a.now().Sub(a.started).Round(time.Millisecond))
	run(p.prober.Run)

	// The mesh, and the peer endpoint first, so that others can sync and
	// challenge us as soon as gossip announces us.
	a.setWaiting("the mesh to start")
	node, err := a.startMesh(ctx, conf, bind)
	if err != nil {
		return err
	}
	p.node = node
	stops = append(stops, node.Stop, a.peer.stop)

	// Attestation: TSA tokens for our claims.
	a.own = &ownRecords{key: a.key, store: a.store, conf: a.conf.Load, tunnel: a.tunnel, log: a.log,
		publish: func(r ...*crdt.Record) { a.publish(node, r...) }, synced: node.Synced, hostRec: map[crdt.PublicKey]*crdt.Record{}}
	p.stamper = mesh.NewStamper(&mesh.TSAClient{Logger: a.opts.Logger.With("component", "tsa")}, a.own.pendingStamps,
		func(r *crdt.Record) { a.publish(node, r) }, a.opts.Logger.With("component", "tsa"))
	p.stamper.Interval = time.Duration(conf.TSARetry)
	p.stamper.MaxBackoff = 10 * time.Duration(conf.TSARetry)
	a.own.stamp = p.stamper.Kick
	a.own.start(a.now())
	run(p.stamper.Run)

	a.up.Store(p)
	a.setWaiting("")
	if err := a.metrics.serve(ctx, conf.MetricsListen, run); err != nil {
		return err
	}
	a.loop(ctx, events)
	a.log.Info("stopping")
	return nil
}

// openState loads the state file into a new store, and starts persisting
// and counting what changes.
func (a *Agent) openState(conf *live) error {
	if err := os.MkdirAll(conf.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	opts := crdt.DefaultOptions()
	opts.MaxSkew = time.Duration(conf.MaxSkew)
	state := crdt.NewState(opts)
	for _, n := range conf.Nets {
		state.Join(n.ID)
	}
	restored, err := loadState(conf.StatePath(), a.key, state, a.now(), a.log)
	if err != nil {
		return err
	}
	a.restored = restored
	a.store = mesh.NewStore(state, a.now)
	a.view.store = a.store
	a.persist = newPersister(conf.StatePath(), a.key, a.store, a.log)
	a.metrics = newMetrics(a)
	a.view.updated = a.metrics.viewUpdated
	a.store.Subscribe(func(c mesh.Change) {
		a.persist.changed()
		a.metrics.added(c.Added)
	})
	return nil
}

// awaitInterface waits for the first snapshot of the interface with an
// address to bind (or uses bind_address right away). Until then the
// control API's status says what it waits for, with the interface's own
// problem when it has one (not found, not a WireGuard device).
func (a *Agent) awaitInterface(ctx context.Context, conf *live, events <-chan wg.Event) error {
	var warned time.Time
	var lastWhy string
	for {
		var ev wg.Event
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev = <-events:
		}
		a.tunnel.update(ev.Interface, conf.Ports.Gossip)
		notWG := errors.Is(ev.Err, wg.ErrNotWireGuard)
		if b, ok := pickBind(conf.BindAddress, ev.Interface); ok && (!notWG || conf.BindAddress != "") {
			a.tunnel.setBind(b)
			a.log.Info("mesh interface", "interface", conf.Interface, "bind", b, "peers", len(a.tunnel.peers()))
			return nil
		}
		why := "the interface " + conf.Interface + " to have an address"
		switch {
		case notWG:
			why = fmt.Sprintf("%s to be the mesh's WireGuard interface: %v (set \"interface\" to it: wg show interfaces)", conf.Interface, ev.Err)
		case ev.Err != nil:
			why = fmt.Sprintf("the interface %s: %v", conf.Interface, ev.Err)
		}
		a.setWaiting(why)
		if why != lastWhy || a.now().Sub(warned) > 30*time.Second {
			warned, lastWhy = a.now(), why
			a.log.Warn("waiting for "+why, "interface", conf.Interface)
		}
	}
}

func dnsListen(conf *live, bind netip.Addr) []netip.AddrPort {
	out := []netip.AddrPort{netip.AddrPortFrom(bind, uint16(conf.Ports.DNS))}
	for _, l := range conf.DNS.Listen {
		out = append(out, netip.MustParseAddrPort(l))
	}
	return out
}

// listen records a bound listener for status and doctor.
func (a *Agent) listen(name string, at netip.AddrPort) {
	a.mu.Lock()
	a.listening[name] = at.String()
	a.mu.Unlock()
}

// startMesh starts the peer endpoint and joins the mesh.
func (a *Agent) startMesh(ctx context.Context, conf *live, bind netip.Addr) (*mesh.Node, error) {
	var boot []string
	for _, n := range conf.Nets {
		boot = append(boot, n.Bootstrap...)
	}
	joined := func(id crdt.PublicKey) bool { return a.conf.Load().joined(id) }
	node, err := mesh.New(mesh.Config{
		Key: a.key, Routed: a.tunnel.routed, BindAddr: bind, GossipPort: conf.Ports.Gossip, HTTPPort: conf.Ports.HTTP,
		Seeds: wg.Seeds(a.tunnel.peers(), conf.Ports.Gossip), Bootstrap: boot, SyncInterval: time.Duration(conf.SyncInterval),
		Challenge: &mesh.Responder{Key: a.key, Serves: a.tunnel.serves(conf.Ports.HTTP, joined)},
		Logger:    a.opts.Logger,
	}, a.store)
	if err != nil {
		return nil, err
	}
	httpAddr := netip.AddrPortFrom(bind, uint16(conf.Ports.HTTP))
	if err := a.peer.start(ctx, httpAddr, node.Handler(), a.log); err != nil {
		return nil, err
	}
	a.listen("http "+httpAddr.String(), httpAddr)
	if err := node.Start(ctx); err != nil {
		a.peer.stop()
		return nil, err
	}
	gossipAddr := netip.AddrPortFrom(bind, uint16(conf.Ports.Gossip))
	a.listen("gossip "+gossipAddr.String(), gossipAddr)
	return node, nil
}

// publish ingests records made here and spreads the new ones.
func (a *Agent) publish(node *mesh.Node, recs ...*crdt.Record) crdt.BatchResult {
	res := node.Publish(recs...)
	for _, r := range res.Rejected {
		a.log.Warn("a record made by this node was refused", "reason", r.Reason, "err", r.Err)
	}
	return res
}

// serveControl opens the control socket and answers on it until ctx ends.
func (a *Agent) serveControl(ctx context.Context, conf *live, run func(func(context.Context))) error {
	l, err := control.Listen(conf.ControlSocket)
	if err != nil {
		return err
	}
	run(func(ctx context.Context) {
		if err := control.Serve(ctx, l, a, a.log.With("source", "control")); err != nil {
			a.log.Warn("control socket", "err", err)
		}
	})
	return nil
}
