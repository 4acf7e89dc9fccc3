package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/dnsserver"
	"github.com/data-mesher/data-mesher/mesh"
	"github.com/data-mesher/data-mesher/wg"
)

// Version is set at build time (-ldflags "-X …/agent.Version=…").
var Version = "dev"

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

// Agent is one running data-mesher node.
type Agent struct {
	cfg  *Config
	opts Options
	log  *slog.Logger
	key  crdt.PrivateKey
	now  func() time.Time

	state   *crdt.State
	store   *mesh.Store
	node    *mesh.Node
	dns     *dnsserver.Server
	prober  *wg.Prober
	stamper *mesh.Stamper
	persist *persister
	metrics *metrics

	mu       sync.Mutex
	nets     []Joined
	iface    *wg.Interface
	bind     netip.Addr
	hostRec  map[crdt.PublicKey]*crdt.Record // own current host record per network
	started  time.Time
	restored int
	bound    map[string]string // listener name → address, for doctor

	view    atomic.Pointer[crdt.ResolvedView]
	dnsJSON []byte
	// targetsVersion is the state version the prober's targets come from.
	targetsVersion uint64
	viewKick       chan struct{}
	ownKick        chan struct{}
	witKick        chan struct{}
	// verdictKick asks for the reachability verdicts to be saved.
	verdictKick chan struct{}
	httpSrv     *http.Server
	ready       atomic.Bool
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
	a := &Agent{cfg: cfg, opts: opts, log: opts.Logger.With("component", "agent"), key: key, now: opts.Now,
		nets: cfg.JoinedNetworks(), hostRec: map[crdt.PublicKey]*crdt.Record{}, bound: map[string]string{},
		viewKick: make(chan struct{}, 1), ownKick: make(chan struct{}, 1), witKick: make(chan struct{}, 1),
		verdictKick: make(chan struct{}, 1)}
	a.view.Store(&crdt.ResolvedView{Names: map[string]*crdt.Name{}})
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

// Run runs the node until ctx ends: state loaded, DNS answering from it at
// once, then the mesh. It returns when everything has stopped and the
// state is on disk.
func (a *Agent) Run(ctx context.Context) error {
	a.started = a.now()
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	opts := crdt.DefaultOptions()
	opts.MaxSkew = time.Duration(a.cfg.MaxSkew)
	a.state = crdt.NewState(opts)
	for _, n := range a.nets {
		a.state.Join(n.ID)
	}
	restored, err := loadState(a.cfg.StatePath(), a.key, a.state, a.now(), a.log)
	if err != nil {
		return err
	}
	a.restored = restored
	a.store = mesh.NewStore(a.state, a.now)
	a.persist = newPersister(a.cfg.StatePath(), a.key, a.store, a.log)
	a.metrics = newMetrics(a)
	a.store.OnAdded(func(added []*crdt.Record) {
		a.persist.changed()
		kick(a.viewKick)
		kick(a.witKick)
		a.metrics.added(added)
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tasks sync.WaitGroup
	defer tasks.Wait()
	run := func(f func(context.Context)) {
		tasks.Add(1)
		go func() { defer tasks.Done(); f(ctx) }()
	}
	run(a.persist.run)

	// The interface: its addresses decide where we listen.
	events := a.opts.WatchInterface(ctx, a.cfg.Interface)
	if err := a.awaitInterface(ctx, events); err != nil {
		return err
	}

	// The reachability challenge: what this node verified before a restart
	// counts until it expires, so the names stay while they are re-checked.
	ttl := time.Duration(a.cfg.ReachabilityTTL)
	a.prober = &wg.Prober{
		TTL:        ttl,
		RetryAfter: min(15*time.Second, ttl/4),
		Peers:      a.ifacePeers,
		Self:       func(n [32]byte) bool { return n == [32]byte(a.key.Public()) },
		OnChange:   func() { kick(a.viewKick); kick(a.verdictKick) },
		Logger:     a.opts.Logger.With("component", "challenge"),
	}
	if n := a.prober.Restore(loadVerdicts(a.verdictPath(), a.log)); n > 0 {
		a.log.Info("restored reachability verdicts", "count", n)
	}

	// DNS first, from the state we had.
	a.dns = dnsserver.NewServer(dnsserver.Config{Listen: a.dnsListen(), Forwarders: a.cfg.DNS.Forwarders,
		Logger: a.opts.Logger})
	a.updateView()
	if err := a.dns.Start(); err != nil {
		return fmt.Errorf("starting DNS: %w (is another DNS server bound there? `dm-agent doctor` names it)", err)
	}
	defer a.dns.Stop()
	for _, l := range a.dnsListen() {
		a.bound["dns "+l.String()] = l.String()
	}
	a.ready.Store(true)
	if a.opts.Ready != nil {
		a.opts.Ready()
	}
	// Start-up decoded the whole state file at once; give that memory back
	// now rather than keep it as headroom.
	debug.FreeOSMemory()
	a.log.Info("answering DNS", "names", len(a.view.Load().Names), "restored_records", restored,
		"since_start", a.now().Sub(a.started).Round(time.Millisecond))

	run(a.prober.Run)
	run(a.verdictLoop)

	// The mesh.
	if err := a.startMesh(ctx); err != nil {
		return err
	}
	defer a.node.Stop()
	defer a.stopHTTP()

	// Attestation: TSA tokens for our claims, countersignatures if we are
	// a witness.
	a.stamper = mesh.NewStamper(&mesh.TSAClient{Logger: a.opts.Logger.With("component", "tsa")}, a.pendingStamps,
		func(r *crdt.Record) { a.publish(r) }, a.opts.Logger.With("component", "tsa"))
	a.stamper.Interval = time.Duration(a.cfg.TSARetry)
	a.stamper.MaxBackoff = 10 * time.Duration(a.cfg.TSARetry)
	run(a.stamper.Run)
	run(a.witnessLoop)
	run(a.ownLoop)
	run(a.viewLoop)
	run(a.pruneLoop)
	run(func(ctx context.Context) { a.interfaceLoop(ctx, events) })
	if err := a.startControl(ctx, run); err != nil {
		return err
	}
	if err := a.metrics.serve(ctx, run); err != nil {
		return err
	}
	<-ctx.Done()
	a.log.Info("stopping")
	return nil
}

// awaitInterface waits for the first snapshot of the interface with an
// address to bind (or uses bind_address right away).
func (a *Agent) awaitInterface(ctx context.Context, events <-chan wg.Event) error {
	warned := time.Time{}
	for {
		var ev wg.Event
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev = <-events:
		}
		if ev.Interface != nil {
			a.mu.Lock()
			a.iface = ev.Interface
			a.mu.Unlock()
		}
		if b, ok := a.pickBind(ev.Interface); ok {
			a.bind = b
			a.log.Info("mesh interface", "interface", a.cfg.Interface, "bind", b, "peers", len(a.ifacePeers()))
			return nil
		}
		if a.now().Sub(warned) > 30*time.Second {
			warned = a.now()
			a.log.Warn("waiting for the mesh interface to have an address", "interface", a.cfg.Interface, "err", ev.Err)
		}
	}
}

func (a *Agent) pickBind(ifc *wg.Interface) (netip.Addr, bool) {
	if a.cfg.BindAddress != "" {
		b, _ := netip.ParseAddr(a.cfg.BindAddress)
		return b, true // IP_FREEBIND: listening works before the address is up
	}
	if ifc == nil {
		return netip.Addr{}, false
	}
	addrs := slices.Clone(ifc.Addrs)
	slices.SortStableFunc(addrs, func(x, y netip.Prefix) int {
		if x.Addr().Is6() != y.Addr().Is6() {
			if x.Addr().Is6() {
				return -1
			}
			return 1
		}
		return 0
	})
	if len(addrs) == 0 {
		return netip.Addr{}, false
	}
	return addrs[0].Addr(), true
}

func (a *Agent) ifacePeers() []wg.Peer {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.iface == nil {
		return nil
	}
	return a.iface.Peers
}

// ownAddrs are the tunnel addresses this node publishes.
func (a *Agent) ownAddrs() []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []netip.Addr
	if a.iface != nil {
		for _, p := range a.iface.Addrs {
			out = append(out, p.Addr())
		}
	}
	if a.bind.IsValid() && !slices.Contains(out, a.bind) {
		out = append(out, a.bind)
	}
	return out
}

func (a *Agent) dnsListen() []netip.AddrPort {
	out := []netip.AddrPort{netip.AddrPortFrom(a.bind, uint16(a.cfg.Ports.DNS))}
	for _, l := range a.cfg.DNS.Listen {
		out = append(out, netip.MustParseAddrPort(l))
	}
	return out
}

// serves says whether the challenge responder may sign for at in network.
func (a *Agent) serves(network [32]byte, at netip.AddrPort) bool {
	if at.Port() != uint16(a.cfg.Ports.HTTP) || !slices.Contains(a.ownAddrs(), at.Addr()) {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.ContainsFunc(a.nets, func(j Joined) bool { return [32]byte(j.ID) == network })
}

func (a *Agent) startMesh(ctx context.Context) error {
	var seeds []string
	seeds = append(seeds, wg.Seeds(a.ifacePeers(), a.cfg.Ports.Gossip)...)
	var boot []string
	for _, n := range a.nets {
		boot = append(boot, n.Bootstrap...)
	}
	node, err := mesh.New(mesh.Config{
		Name: a.key.Public(), BindAddr: a.bind, GossipPort: a.cfg.Ports.Gossip, HTTPPort: a.cfg.Ports.HTTP,
		Seeds: seeds, Bootstrap: boot, SyncInterval: time.Duration(a.cfg.SyncInterval),
		Challenge: &wg.Responder{Key: a.key.Ed25519(), Serves: a.serves},
		Logger:    a.opts.Logger,
	}, a.store)
	if err != nil {
		return err
	}
	a.node = node
	// The peer endpoint first, so that others can sync and challenge us
	// as soon as gossip announces us.
	addr := netip.AddrPortFrom(a.bind, uint16(a.cfg.Ports.HTTP))
	lc := net.ListenConfig{Control: dnsserver.FreeBind}
	l, err := lc.Listen(ctx, "tcp", addr.String())
	if err != nil {
		return fmt.Errorf("peer endpoint on %s: %w", addr, err)
	}
	a.bound["http "+addr.String()] = addr.String()
	a.httpSrv = &http.Server{Handler: node.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slogLogger(a.log, "peer endpoint")}
	go func() {
		if err := a.httpSrv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("peer endpoint stopped", "err", err)
		}
	}()
	if err := node.Start(ctx); err != nil {
		return err
	}
	a.bound["gossip "+netip.AddrPortFrom(a.bind, uint16(a.cfg.Ports.Gossip)).String()] = netip.AddrPortFrom(a.bind, uint16(a.cfg.Ports.Gossip)).String()
	return nil
}

func (a *Agent) stopHTTP() {
	if a.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = a.httpSrv.Shutdown(ctx)
	}
}

// publish ingests records made here and spreads the new ones.
func (a *Agent) publish(recs ...*crdt.Record) crdt.BatchResult {
	res := a.node.Publish(recs...)
	for _, r := range res.Rejected {
		a.log.Warn("a record made by this node was refused", "reason", r.Reason, "err", r.Err)
	}
	return res
}

// interfaceLoop follows the interface: new peers become seeds and
// challenge routes, new addresses a new host record.
func (a *Agent) interfaceLoop(ctx context.Context, events <-chan wg.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Err != nil {
				a.log.Warn("mesh interface unreadable", "interface", a.cfg.Interface, "err", ev.Err)
				continue
			}
			a.mu.Lock()
			old := a.iface
			a.iface = ev.Interface
			a.mu.Unlock()
			if old == nil || !slices.Equal(old.Addrs, ev.Interface.Addrs) {
				kick(a.ownKick) // re-sign the host record
			}
			newSeeds := wg.Seeds(ev.Interface.Peers, a.cfg.Ports.Gossip)
			if old != nil {
				oldSeeds := wg.Seeds(old.Peers, a.cfg.Ports.Gossip)
				newSeeds = slices.DeleteFunc(newSeeds, func(s string) bool { return slices.Contains(oldSeeds, s) })
			}
			if len(newSeeds) > 0 {
				a.log.Info("new WireGuard peers; joining them", "seeds", newSeeds)
				a.node.AddSeeds(newSeeds...)
			}
			kick(a.viewKick)
		}
	}
}

// heartbeat is how often the host record is re-signed.
func (a *Agent) heartbeat(id crdt.PublicKey) time.Duration {
	if d := time.Duration(a.cfg.Heartbeat); d > 0 {
		return d
	}
	ttl := crdt.DefaultHostTTL
	a.store.Read(func(st *crdt.State) {
		if s := st.Settings(id); s != nil {
			ttl = s.Settings().HostTTL
		}
	})
	return min(ttl/4, time.Hour)
}

// ownLoop keeps this node's own records: a fresh host record in every
// network, and a claim for every configured name.
func (a *Agent) ownLoop(ctx context.Context) {
	// Claims wait for a first sync (or 10 s): after a lost state file the
	// node's old claims, with their old attestations, come back from the
	// mesh instead of being made anew. A node with nobody to sync with
	// (no WireGuard peer, no bootstrap source) has nothing to wait for.
	claimsFrom := a.now().Add(10 * time.Second)
	alone := len(a.ifacePeers()) == 0
	for _, n := range a.nets {
		alone = alone && len(n.Bootstrap) == 0
	}
	if alone {
		claimsFrom = a.now()
	}
	for {
		next := a.now().Add(time.Hour)
		a.mu.Lock()
		nets := slices.Clone(a.nets)
		a.mu.Unlock()
		for _, n := range nets {
			if at := a.refreshHost(n.ID); at.Before(next) {
				next = at
			}
			if a.node.Synced() || a.now().After(claimsFrom) {
				a.ensureClaims(n)
			} else if claimsFrom.Before(next) {
				next = claimsFrom
			}
		}
		wait := max(time.Until(next), 100*time.Millisecond)
		select {
		case <-ctx.Done():
			return
		case <-a.ownKick:
		case <-time.After(min(wait, time.Second)):
		}
	}
}

// refreshHost re-signs the host record when it is due or the addresses
// changed, and returns when it is next due.
func (a *Agent) refreshHost(id crdt.PublicKey) time.Time {
	addrs := a.ownAddrs()
	slices.SortFunc(addrs, netip.Addr.Compare)
	every := a.heartbeat(id)
	a.mu.Lock()
	cur := a.hostRec[id]
	a.mu.Unlock()
	if cur == nil {
		a.store.Read(func(st *crdt.State) { cur = st.Host(id, a.key.Public()) })
	}
	if cur != nil && slices.Equal(cur.Host().Addresses, addrs) && a.now().Sub(cur.Host().Heartbeat) < every {
		return cur.Host().Heartbeat.Add(every)
	}
	rec, err := crdt.SignHost(crdt.Host{Network: id, Node: a.key.Public(), Heartbeat: a.now(), Addresses: addrs,
		GossipPort: uint16(a.cfg.Ports.Gossip), HTTPPort: uint16(a.cfg.Ports.HTTP), DNSPort: uint16(a.cfg.Ports.DNS)}, a.key)
	if err != nil {
		a.log.Error("signing the host record", "err", err)
		return a.now().Add(time.Minute)
	}
	a.publish(rec)
	a.mu.Lock()
	a.hostRec[id] = rec
	a.mu.Unlock()
	return a.now().Add(every)
}

func (a *Agent) ensureClaims(n Joined) {
	var have []string
	a.store.Read(func(st *crdt.State) {
		for _, c := range st.Claims(n.ID, a.key.Public()) {
			have = append(have, c.Claim().Name)
		}
	})
	for _, name := range n.Hostnames {
		if slices.Contains(have, name) {
			continue
		}
		rec, err := crdt.SignClaim(crdt.Claim{Network: n.ID, Node: a.key.Public(), Name: name, Created: a.now()}, a.key)
		if err != nil {
			a.log.Error("signing a claim", "name", name, "err", err)
			continue
		}
		a.log.Info("claiming a name", "name", name, "network", n.Label)
		a.publish(rec)
		a.stamper.Kick()
		kick(a.witKick)
	}
}

// pendingStamps lists this node's claims without an RFC 3161 token in
// networks whose settings pin a TSA.
func (a *Agent) pendingStamps() []mesh.StampJob {
	var jobs []mesh.StampJob
	a.store.Read(func(st *crdt.State) {
		for _, id := range st.Joined() {
			s := st.Settings(id)
			if s == nil || len(s.Settings().TSARoots) == 0 {
				continue
			}
			urls := append(slices.Clone(a.cfg.TSAURLs), s.Settings().TSAURLs...)
			if len(urls) == 0 {
				continue
			}
			for _, c := range st.Claims(id, a.key.Public()) {
				stamped := false
				for _, att := range st.Attestations(id, c.Hash()) {
					if len(att.Attestation().RFC3161) > 0 {
						stamped = true
					}
				}
				if !stamped {
					jobs = append(jobs, mesh.StampJob{Network: id, Claim: c.Hash(), URLs: urls, Trust: st.Trust(id)})
				}
			}
		}
	})
	return jobs
}

// witnessLoop countersigns, as a witness, the claims the state holds and
// this node has not signed yet. Every claim in the state was verified.
func (a *Agent) witnessLoop(ctx context.Context) {
	for {
		var recs []*crdt.Record
		now := a.now()
		a.store.Read(func(st *crdt.State) {
			for _, id := range st.Joined() {
				for _, c := range st.Unwitnessed(id, a.key.Public()) {
					r, err := crdt.WitnessClaim(id, c.Hash(), now, a.key)
					if err == nil {
						recs = append(recs, r)
					}
				}
			}
		})
		if len(recs) > 0 {
			a.log.Debug("witnessing claims", "count", len(recs))
			a.publish(recs...)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.witKick:
		case <-time.After(30 * time.Second):
		}
	}
}

// viewLoop recomputes the view when the state, the challenge verdicts or
// the clock change it.
func (a *Agent) viewLoop(ctx context.Context) {
	for {
		until := a.updateView()
		wait := time.Minute
		if !until.IsZero() {
			wait = min(max(until.Sub(a.now()), 100*time.Millisecond), time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.viewKick:
			// Let a burst of changes settle, and recompute at most four
			// times a second however busy the mesh is.
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		case <-time.After(wait):
		}
	}
}

// updateView computes the view, installs it in DNS, writes dns.json if it
// changed, and tells the prober which hosts to check.
func (a *Agent) updateView() time.Time {
	now := a.now()
	a.mu.Lock()
	nets := slices.Clone(a.nets)
	a.mu.Unlock()
	cfg := crdt.ViewConfig{}
	for _, n := range nets {
		cfg.Networks = append(cfg.Networks, crdt.JoinedNetwork{ID: n.ID, Priority: n.Priority})
	}
	if a.prober != nil {
		cfg.Reachable = func(network, node crdt.PublicKey) bool { return a.prober.Reachable(network, node) }
	} else {
		self := a.key.Public()
		cfg.Reachable = func(_, node crdt.PublicKey) bool { return node == self }
	}
	var v *crdt.ResolvedView
	a.store.Read(func(st *crdt.State) {
		// The prober learns the hosts' current addresses before the view
		// asks it about them: a host that dropped a failing address is
		// reachable now, on the verdicts its other addresses already have,
		// and no later event would recompute the view for it. The hosts
		// to challenge change only with the state.
		if a.prober != nil && st.Version() != a.targetsVersion {
			var targets []wg.Target
			for _, id := range st.Joined() {
				for _, h := range st.Hosts(id) {
					targets = append(targets, wg.Target{Network: id, Node: h.Host().Node, Addrs: h.Host().Addresses, Port: h.Host().HTTPPort})
				}
			}
			a.prober.Update(targets)
			a.targetsVersion = st.Version()
		}
		v = st.View(cfg, now)
	})
	a.view.Store(v)
	if a.dns != nil {
		prev := a.dns.Handler().Table()
		t, err := dnsserver.NewTable(v, dnsserver.TableOptions{ReversePrefixes: a.reversePrefixes(), Previous: prev})
		switch {
		case err != nil:
			a.log.Error("building the DNS table", "err", err)
		case t == prev && a.dnsJSON != nil:
			return v.ValidUntil // the answers did not change: nothing to write
		default:
			a.dns.SetTable(t)
		}
	}
	if a.cfg.DNS.JSONFile != "off" {
		var b bytes.Buffer
		if err := dnsserver.WriteDNSJSON(&b, v); err == nil && !bytes.Equal(b.Bytes(), a.dnsJSON) {
			if err := WriteFileAtomic(a.cfg.DNS.JSONFile, b.Bytes(), 0o644); err != nil {
				a.log.Warn("writing dns.json", "err", err)
			} else {
				a.dnsJSON = b.Bytes()
			}
		}
	}
	if a.metrics != nil {
		a.metrics.viewUpdated(v)
	}
	return v.ValidUntil
}

// reversePrefixes are the mesh prefixes of the interface addresses.
func (a *Agent) reversePrefixes() []netip.Prefix {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []netip.Prefix
	if a.iface != nil {
		for _, p := range a.iface.Addrs {
			out = append(out, p.Masked())
		}
	}
	return out
}

// pruneLoop drops what decayed, every minute.
func (a *Agent) pruneLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var dropped []*crdt.Record
		a.store.Write(func(st *crdt.State, now time.Time) []*crdt.Record {
			dropped = st.Prune(now)
			return nil
		})
		if len(dropped) > 0 {
			a.log.Info("pruned decayed records", "count", len(dropped))
			a.persist.changed()
			kick(a.viewKick)
		}
	}
}

func slogLogger(l *slog.Logger, what string) *log.Logger {
	return slog.NewLogLogger(l.With("source", what).Handler(), slog.LevelDebug)
}
