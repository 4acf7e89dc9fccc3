package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// Watchdog, if set, is called every WatchdogEvery while the agent
	// makes progress: from its loop, after the loop's heartbeat reached
	// the state (systemd's WATCHDOG=1). A loop or a state lock that is
	// stuck stops it, and systemd restarts the agent.
	Watchdog      func()
	WatchdogEvery time.Duration
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
	loadTook time.Duration // reading the state file
	store    *mesh.Store
	persist  *persister
	metrics  *metrics
	tunnel   *tunnel
	view     *viewPipeline
	files    *filesView  // nil when data_dir is off
	known    *knownHosts // nil when known_hosts_file is off
	own      *ownRecords
	// up holds the network parts once they all run; the control API,
	// metrics and the loop read them through it, and rebind replaces them.
	up atomic.Pointer[parts]

	// changes tells watchers that the state changed; writes dates this
	// node's entries.
	changes notifier
	writes  writeClock

	mu        sync.Mutex
	listening map[string]string // listener name → address, for doctor
}

// parts are the agent's network-facing parts, started by Run: the
// prober and stamper, and the listeners on the tunnel address (DNS, the
// peer endpoint, gossip), which move together when the address changes.
type parts struct {
	prober  *mesh.Prober
	stamper *mesh.Stamper
	dns     *dnsserver.Server
	peer    *peerListener
	node    *mesh.Node
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
	if opts.Watchdog != nil && opts.WatchdogEvery <= 0 {
		opts.WatchdogEvery = 10 * time.Second
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

	// The saved verdicts are read beside the state (at 100,000 hosts,
	// 0.1 s of the start-up): the prober takes them once it exists.
	verdicts := make(chan []mesh.Verdict, 1)
	go func() { verdicts <- loadVerdicts(conf.StateDir, a.key, a.log) }()
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
	p := &parts{prober: &mesh.Prober{
		TTL:    time.Duration(conf.ReachabilityTTL),
		Routed: a.tunnel.routed,
		Self:   func(n crdt.PublicKey) bool { return n == a.key.Public() },
		Logger: a.opts.Logger.With("component", "challenge"),
	}}
	if n := p.prober.Restore(<-verdicts); n > 0 {
		a.log.Info("restored reachability verdicts", "count", n)
	}
	a.view.prober = p.prober
	stops = append(stops, func() { a.current(p).stopListeners() })

	// DNS first, from the state we had: the server starts with its table.
	a.setWaiting("DNS to start")
	a.view.update(a.now())
	dns, err := a.startDNS(conf, bind, a.view.table)
	if err != nil {
		return err
	}
	p.dns, a.view.dns = dns, dns
	if a.opts.Ready != nil {
		a.opts.Ready()
	}
	a.view.finishFast()
	a.view.writeDNSJSON(conf)
	// Start-up decoded the whole state file at once; give that memory back
	// now rather than keep it as headroom.
	debug.FreeOSMemory()
	a.log.Info("answering DNS", "names", len(a.view.current().Names), "restored_records", a.restored,
		"state_load", a.loadTook.Round(time.Millisecond), "first_view", a.view.cost.Round(time.Millisecond),
		"since_start", a.now().Sub(a.started).Round(time.Millisecond))
	run(p.prober.Run)

	// The mesh, and the peer endpoint first, so that others can sync and
	// challenge us as soon as gossip announces us.
	a.setWaiting("the mesh to start")
	if p.node, p.peer, err = a.startMesh(ctx, conf, bind); err != nil {
		return err
	}

	// This node's own records, and TSA tokens for its claims. Both publish
	// through whichever mesh node runs now (rebind replaces it).
	publish := func(r ...*crdt.Record) { a.publish(a.up.Load().node, r...) }
	a.own = &ownRecords{key: a.key, store: a.store, conf: a.conf.Load, tunnel: a.tunnel, log: a.log,
		publish: publish, synced: func() bool { return a.up.Load().node.Synced() }, writes: &a.writes,
		hostRec: map[crdt.PublicKey]*crdt.Record{}, fileErr: map[string]string{}}
	p.stamper = mesh.NewStamper(&mesh.TSAClient{Logger: a.opts.Logger.With("component", "tsa")}, a.own.pendingStamps,
		func(r *crdt.Record) { publish(r) }, a.opts.Logger.With("component", "tsa"))
	p.stamper.Interval = time.Duration(conf.TSARetry)
	p.stamper.MaxBackoff = 10 * time.Duration(conf.TSARetry)
	a.own.stamp = p.stamper.Kick
	a.own.start(a.now())
	a.up.Store(p)
	a.setWaiting("")
	run(p.stamper.Run)
	if err := a.metrics.serve(ctx, conf.MetricsListen, run); err != nil {
		return err
	}
	a.loop(ctx, events)
	a.log.Info("stopping")
	return nil
}

// current is the network parts that run now: p, or what replaced it.
func (a *Agent) current(p *parts) *parts {
	if q := a.up.Load(); q != nil {
		return q
	}
	return p
}

// openState loads the state file into a new store, and starts persisting
// and counting what changes.
func (a *Agent) openState(conf *live) error {
	// Group members may traverse the state directory to read dns.json and
	// the files view; the key and the state file are the owner's alone.
	if err := os.MkdirAll(conf.StateDir, 0o750); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	opts := crdt.DefaultOptions()
	opts.MaxSkew = time.Duration(conf.MaxSkew)
	newState := func() *crdt.State {
		st := crdt.NewState(opts)
		for _, n := range conf.Nets {
			st.Join(n.ID)
		}
		return st
	}
	began := time.Now()
	state, restored, err := loadState(conf.StatePath(), a.key, newState, a.now(), a.log)
	if err != nil {
		return err
	}
	a.restored, a.loadTook = restored, time.Since(began)
	a.store = mesh.NewStore(state, a.now)
	a.view.store = a.store
	a.persist = newPersister(conf.StatePath(), a.key, a.store, a.log)
	a.metrics = newMetrics(a)
	a.view.updated = a.metrics.viewUpdated
	if conf.DataDir != "off" {
		a.files = &filesView{dir: conf.DataDir, store: a.store, conf: a.conf.Load, log: a.log}
	}
	if conf.KnownHostsFile != "off" {
		a.known = &knownHosts{path: conf.KnownHostsFile, store: a.store, conf: a.conf.Load, log: a.log}
	}
	a.store.Subscribe(func(c mesh.Change) {
		a.persist.changed()
		a.metrics.added(c.Added)
		a.changes.notify()
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
	var feed <-chan time.Time
	if a.opts.Watchdog != nil { // waiting is progress too
		t := time.NewTicker(a.opts.WatchdogEvery)
		defer t.Stop()
		feed = t.C
	}
	for {
		var ev wg.Event
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-feed:
			a.opts.Watchdog()
			continue
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
