package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/hashicorp/memberlist"
)

// Default ports, as in the existing data-mesher deployments.
const (
	DefaultGossipPort = 7946
	DefaultHTTPPort   = 7331
)

// Config configures a Node. The zero value of every field but Key,
// BindAddr and Routed has a sensible default, written next to it.
type Config struct {
	// Key is the node's key: its public half is the node's memberlist
	// name, and it signs the node's member proof (member.go).
	Key crdt.PrivateKey
	// Routed reports whether WireGuard routes an address to one of this
	// node's peers (the agent builds it from wg): a member whose gossip
	// address is not routed is refused.
	Routed func(netip.Addr) bool
	// BindAddr is the address gossip binds to and advertises: the tunnel
	// address in production, loopback in tests.
	BindAddr netip.Addr
	// GossipPort (default 7946, TCP and UDP).
	GossipPort int
	// HTTPPort is where this node's peer endpoint listens (default 7331);
	// it is told to others in the node's memberlist metadata.
	HTTPPort int
	// Seeds are gossip addresses ("[fd00::1]:7946") to join: the WireGuard
	// peers' tunnel addresses and configured peers.
	Seeds []string
	// Bootstrap are URLs of data.json copies: a peer ("http://[fd…]:7331")
	// or any static file. Fetched until the mesh is reached.
	Bootstrap []string
	// SyncInterval is how often anti-entropy runs with a random peer
	// (default 2 s): a missed broadcast is repaired in seconds.
	SyncInterval time.Duration
	// GossipInterval is memberlist's gossip period (default 200 ms).
	GossipInterval time.Duration
	// RetransmitMult scales how often each broadcast is retransmitted
	// (memberlist default 4: 4·log(N+1) times).
	RetransmitMult int
	// InlineLimit is the largest record gossiped whole (default 1000
	// bytes); larger ones are announced and fetched over HTTP.
	InlineLimit int
	// MaxBody bounds any request or answer body (default 8 MiB).
	MaxBody int64
	// PeerRate and PeerBurst bound requests per peer address to the peer
	// endpoint (default 20/s, burst 40).
	PeerRate  float64
	PeerBurst int
	// RequestTimeout bounds every outgoing request (default 10 s).
	RequestTimeout time.Duration
	// ReconnectInterval is how often the node tries to rejoin live hosts
	// that gossip lost (default 30 s), in a mesh of up to 32 members;
	// ReconnectScale stretches it for larger ones.
	ReconnectInterval time.Duration

	// Transport replaces the real network (tests: MemNetwork.Transport).
	Transport memberlist.NodeAwareTransport
	// HTTPClient reaches other nodes' peer endpoints and bootstrap URLs
	// (tests: MemNetwork.HTTPClient).
	HTTPClient *http.Client
	// Challenge, if set, answers the reachability challenge on the peer
	// endpoint (PathChallenge).
	Challenge *Responder
	Logger    *slog.Logger
	// TuneMemberlist, if set, adjusts memberlist's configuration last
	// (tests at scale widen its failure-detection timeouts for a loaded
	// machine; see scale_test.go).
	TuneMemberlist func(*memberlist.Config)
	// wireVersion, if 1, makes the node speak only version 1 of
	// anti-entropy, as older nodes do (tests).
	wireVersion int
}

func (c *Config) defaults() {
	if c.GossipPort == 0 {
		c.GossipPort = DefaultGossipPort
	}
	if c.HTTPPort == 0 {
		c.HTTPPort = DefaultHTTPPort
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = 2 * time.Second
	}
	if c.GossipInterval <= 0 {
		c.GossipInterval = 200 * time.Millisecond
	}
	if c.RetransmitMult <= 0 {
		c.RetransmitMult = 4
	}
	if c.InlineLimit <= 0 {
		c.InlineLimit = 1000
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 8 << 20
	}
	if c.PeerRate <= 0 {
		c.PeerRate = 20
	}
	if c.PeerBurst <= 0 {
		c.PeerBurst = 40
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.ReconnectInterval <= 0 {
		c.ReconnectInterval = 30 * time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.RequestTimeout}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration before anything starts.
func (c *Config) Validate() error {
	if c.Key.IsZero() {
		return errors.New("mesh: Key (the node key) is not set")
	}
	if c.Routed == nil {
		return errors.New("mesh: Routed (which addresses WireGuard routes) is not set")
	}
	if !c.BindAddr.IsValid() {
		return errors.New("mesh: BindAddr (the tunnel address) is not set")
	}
	for _, p := range []int{c.GossipPort, c.HTTPPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("mesh: port %d out of range", p)
		}
	}
	return nil
}

// Node is one member of the mesh: it gossips, runs anti-entropy, bootstraps
// and serves the peer endpoint for a Store.
type Node struct {
	cfg    Config
	store  *Store
	log    *slog.Logger
	ml     *memberlist.Memberlist
	queue  *Queue
	limits *peerLimits
	inbox  chan []byte
	fetch  *fetcher
	// refusals counts and reports refused records and members; filter
	// shuts the addresses of refused members at the transport.
	refusals *refusals
	filter   *addrSet
	proofs   proofCache // member proofs whose signature verified
	// wireVersion is the highest anti-entropy version spoken (0: the
	// newest; tests set 1 to play an older node); old remembers the peers
	// that refused version 2.
	wireVersion int
	old         oldPeers
	rounds      roundPeers

	stats Stats

	stop    context.CancelFunc
	wg      sync.WaitGroup
	running atomic.Bool
	kick    chan struct{}
	// newSeeds are gossip addresses AddSeeds was given that the join
	// loop has not tried yet; seedKick wakes it.
	seedMu   sync.Mutex
	newSeeds []string
	seedKick chan struct{}
	synced   atomic.Bool // one sync succeeded
	// firstSync is closed when synced first becomes true.
	firstSync     chan struct{}
	firstSyncOnce sync.Once

	// The live members other than this node, copied in memberlist's event
	// callbacks: the *memberlist.Node values Members() hands out are
	// rewritten in place by gossip (hashicorp/memberlist#306), and the
	// callbacks run under memberlist's lock, the one safe place to read
	// them.
	membersMu sync.Mutex
	members   map[string]Member
	// refusedAt holds members refused after they were admitted.
	refusedAt map[string]Member
	// recheckMu runs one recheckMembers at a time.
	recheckMu sync.Mutex
	// strangers are hosts whose new records arrived but that gossip does
	// not list (strangers.go).
	strangers *strangers
	// crowd tracks the room memberlist leaves the mesh's gossip;
	// gossipNodes and packetSize are memberlist's, for packets of the
	// mesh's own (crowding.go).
	crowd                   *Crowding
	gossipNodes, packetSize int
}

// Stats counts what crossed this node; the agent exports them as metrics.
type Stats struct {
	GossipIn, GossipDropped, Broadcasts    atomic.Int64
	GossipBatches                          atomic.Int64 // packets of its own (crowding.go)
	SyncRounds, SyncFailures, SyncRecords  atomic.Int64
	SyncBytesOut, SyncBytesIn              atomic.Int64
	Rejected, PeersPenalized, Fetches      atomic.Int64
	BootstrapOK, BootstrapFailures, Served atomic.Int64
}

// New prepares a node; Start runs it.
func New(cfg Config, store *Store) (*Node, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, store: store, log: cfg.Logger.With("component", "mesh"),
		inbox: make(chan []byte, 4096), kick: make(chan struct{}, 1), seedKick: make(chan struct{}, 1), fetch: newFetcher(), firstSync: make(chan struct{}),
		refusals: newRefusals(cfg.Logger.With("component", "mesh")), filter: &addrSet{},
		members: map[string]Member{}, refusedAt: map[string]Member{}, wireVersion: cfg.wireVersion,
		limits: newPeerLimits(cfg.PeerRate, cfg.PeerBurst, 3, 10*time.Minute)}
	n.queue = &Queue{
		NumNodes:       func() int { return n.numMembers() },
		RetransmitMult: cfg.RetransmitMult,
	}
	return n, nil
}

func (n *Node) numMembers() int {
	if n.ml == nil {
		return 1
	}
	return n.ml.NumMembers()
}

// Stats returns the node's counters.
func (n *Node) Stats() *Stats { return &n.stats }

// Start joins the mesh and runs gossip, anti-entropy and bootstrap until
// Stop. Failing to reach any seed is not an error: the node keeps trying.
func (n *Node) Start(ctx context.Context) error {
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.Key.Public().String()
	mc.BindAddr = n.cfg.BindAddr.String()
	mc.BindPort = n.cfg.GossipPort
	mc.AdvertiseAddr = n.cfg.BindAddr.String()
	mc.AdvertisePort = n.cfg.GossipPort
	mc.GossipInterval = n.cfg.GossipInterval
	mc.RetransmitMult = n.cfg.RetransmitMult
	// Our own anti-entropy replaces memberlist's state push/pull (which
	// stretches to a minute or more in large clusters); membership still
	// syncs on join.
	mc.PushPullInterval = 0
	mc.Delegate = &delegate{n}
	mc.Events = &events{n}
	mc.Alive = alive{n}
	mc.Merge = alive{n}
	mc.Logger = log.New(&slogWriter{n.log}, "", 0)
	if n.cfg.TuneMemberlist != nil {
		n.cfg.TuneMemberlist(mc)
	}
	inner := n.cfg.Transport
	if inner == nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger})
		if err != nil {
			return fmt.Errorf("starting gossip on %s: %w", net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort)), err)
		}
		inner = nodeAware{nt}
	}
	mc.Transport = newFilterTransport(inner, n.filter)
	n.gossipNodes, n.packetSize = mc.GossipNodes, mc.UDPBufferSize
	n.crowd = NewCrowding(mc.UDPBufferSize, time.Now())
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("starting gossip on %s: %w", net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort)), err)
	}
	n.ml = ml
	ctx, n.stop = context.WithCancel(ctx)
	n.running.Store(true)
	n.strangers = newStrangers(n.cfg.Key.Public(), n.cfg.Routed)
	isMember := func(k crdt.PublicKey) bool {
		_, ok := n.member(k.String())
		return ok
	}
	n.store.Subscribe(func(c Change) {
		if slices.ContainsFunc(c.Added, func(r *crdt.Record) bool { return r.Kind() == crdt.KindSettings }) {
			n.recheckMembers() // a ban or an allow-list may have changed
		}
		if n.strangers.note(c.Added, time.Now(), n.store.Now(), isMember) {
			select {
			case n.seedKick <- struct{}{}: // the join loop looks at its clock again
			default:
			}
		}
	})
	n.wg.Add(7)
	go n.receive(ctx)
	go n.crowdLoop(ctx)
	go n.maintain(ctx)
	go n.fetchLoop(ctx)
	go n.syncLoop(ctx)
	go n.joinLoop(ctx)
	go n.bootstrapLoop(ctx)
	n.log.Info("mesh started", "addr", net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort)), "seeds", len(n.seeds()), "bootstrap", len(n.cfg.Bootstrap))
	return nil
}

// Stop leaves the mesh and waits for the node's goroutines.
func (n *Node) Stop() {
	if !n.running.Swap(false) {
		return
	}
	if err := n.ml.Leave(time.Second); err != nil {
		n.log.Debug("leaving gossip", "err", err)
	}
	n.stop()
	n.wg.Wait()
	if err := n.ml.Shutdown(); err != nil {
		n.log.Debug("gossip shutdown", "err", err)
	}
}

// Publish ingests records made or received by this node outside the mesh
// (its own host record and claims, a witness signature, settings from the
// admin) and spreads those that are new.
func (n *Node) Publish(recs ...*crdt.Record) crdt.BatchResult {
	res := n.store.Ingest(recs)
	for _, r := range res.AddedRecords {
		n.broadcast(r)
	}
	return res
}

// AddSeeds hands the join loop gossip addresses to join (WireGuard peers
// appear and go): it joins one of them that answers, and returns at once.
func (n *Node) AddSeeds(seeds ...string) {
	if len(seeds) == 0 || !n.running.Load() {
		return
	}
	n.seedMu.Lock()
	n.newSeeds = append(n.newSeeds, seeds...)
	have := make(map[string]bool, len(n.cfg.Seeds))
	for _, s := range n.cfg.Seeds {
		have[s] = true
	}
	for _, s := range seeds { // and kept: tried again while alone, and by the rejoins
		if !have[s] {
			have[s] = true
			n.cfg.Seeds = append(n.cfg.Seeds, s)
		}
	}
	n.seedMu.Unlock()
	select {
	case n.seedKick <- struct{}{}:
	default:
	}
}

// seedTries bounds the addresses one attempt to join tries in turn: each
// that does not answer costs memberlist's TCP timeout.
const seedTries = 8

// joinOneOf joins the first of cands that answers, trying at most tries
// of them in turn. memberlist's Join exchanges the whole member list with
// every address it is given, one after another: given the 10,000 peers of
// a large mesh, it would pull 10,000 lists of 10,000 members where one is
// enough (the member joined learns this node, and gossip the rest).
func (n *Node) joinOneOf(cands []string, tries int) (string, error) {
	err := errors.New("no address to join")
	for _, c := range cands[:min(tries, len(cands))] {
		var k int
		if k, err = n.ml.Join([]string{c}); k > 0 {
			return c, nil
		}
	}
	return "", err
}

// seeds is a copy of the configured seeds and those added since.
func (n *Node) seeds() []string {
	n.seedMu.Lock()
	defer n.seedMu.Unlock()
	return slices.Clone(n.cfg.Seeds)
}

// shuffled is a shuffled copy of addrs.
func shuffled(addrs []string) []string {
	out := slices.Clone(addrs)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Member is another node as gossip sees it, admitted: its proof holds.
type Member struct {
	Name       string
	Addr       netip.Addr
	GossipPort uint16
	HTTPPort   int
	meta       []byte // its proof, to judge it again
}

// Members lists the live members other than this node, by name.
func (n *Node) Members() []Member {
	out := n.memberList()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// MemberCount is len(Members()) without the copy: with a thousand
// members, Members copies and sorts 80 KB.
func (n *Node) MemberCount() int {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	return len(n.members)
}

// memberList is Members in no order, for who picks at random.
func (n *Node) memberList() []Member {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	return slices.Collect(maps.Values(n.members))
}

// member is the live member named name.
func (n *Node) member(name string) (Member, bool) {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	m, ok := n.members[name]
	return m, ok
}

// memberUp records a member that joined or changed; memberDown one that
// left or died. Both run inside memberlist's event callbacks.
func (n *Node) memberUp(m *memberlist.Node) {
	if m.Name == n.cfg.Key.Public().String() {
		return
	}
	addr, ok := netip.AddrFromSlice(m.Addr)
	if !ok {
		return
	}
	p, err := parseMeta(m.Meta)
	if err != nil {
		return // NotifyAlive refused it; this is memberlist reporting its own state
	}
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	n.members[m.Name] = Member{Name: m.Name, Addr: addr.Unmap(), GossipPort: m.Port, HTTPPort: int(p.httpPort), meta: slices.Clone(m.Meta)}
	n.rounds.forget(addr.Unmap()) // back, or changed: worth a round again
	delete(n.refusedAt, m.Name)
}

func (n *Node) memberDown(m *memberlist.Node) {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	delete(n.members, m.Name)
	delete(n.refusedAt, m.Name)
}

// RoutesChanged tells the node that WireGuard's routes changed (a peer or
// its allowed IPs came or went): members are judged again at once.
func (n *Node) RoutesChanged() { n.recheckMembers() }

// Refusals counts the records and members this node refused since it
// started, by reason.
func (n *Node) Refusals() map[string]int64 { return n.refusals.byReason() }

// maintain runs the node's slow chores: reporting refusals not logged
// yet, judging members again as their proofs age, and re-signing this
// node's own proof before it ages.
func (n *Node) maintain(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(refusalEvery)
	defer t.Stop()
	signed, rechecked := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			n.refusals.flush()
			return
		case <-t.C:
		}
		n.refusals.flush()
		if time.Since(rechecked) >= recheckEvery {
			rechecked = time.Now()
			n.recheckMembers()
		}
		if time.Since(signed) >= proofRefresh {
			signed = time.Now()
			if err := n.ml.UpdateNode(5 * time.Second); err != nil {
				n.log.Debug("re-signing this node's member proof", "err", err)
			}
		}
	}
}

// Synced reports whether the node has completed a sync with a peer (a
// bootstrap file alone does not count: it may be old).
func (n *Node) Synced() bool { return n.synced.Load() }

// FirstSync is closed once the node has synced with a peer, so that what
// waits for a first sync (a node's claims) need not poll Synced.
func (n *Node) FirstSync() <-chan struct{} { return n.firstSync }

func (n *Node) markSynced() {
	n.synced.Store(true)
	n.firstSyncOnce.Do(func() { close(n.firstSync) })
}

// SyncNow asks for an anti-entropy round now.
func (n *Node) SyncNow() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// joinLoop keeps the node in the mesh: while it is alone it tries the
// seeds with back-off, and every ReconnectInterval it tries a few seeds and
// live hosts of its state that gossip does not list as members. memberlist
// never probes a node again once it declared it dead, so without this a
// mesh cut in two would stay in two halves after the cut heals.
func (n *Node) joinLoop(ctx context.Context) {
	defer n.wg.Done()
	wait := 500 * time.Millisecond
	lastReconnect := time.Now()
	// seedJoined: a join with a seed succeeded. Until then the seeds are
	// tried even once others joined this node: nodes started together
	// that joined one whose own join had failed would otherwise stay an
	// island of their own, none of them alone, none holding a record of
	// the rest (seen in the scale test: 50 nodes started together
	// formed clusters of 44, 4 and 2 that never merged).
	seedJoined := false
	for {
		n.seedMu.Lock()
		added := n.newSeeds
		n.newSeeds = nil
		n.seedMu.Unlock()
		if len(added) > 0 {
			if c, err := n.joinOneOf(shuffled(added), seedTries); err != nil {
				n.log.Debug("no new seed answered", "seeds", len(added), "err", err)
			} else {
				n.log.Debug("joined a new seed", "addr", c)
				seedJoined = true
				n.SyncNow()
			}
		}
		alone := n.ml.NumMembers() <= 1
		seeds := n.seeds()
		switch {
		case (alone || !seedJoined) && len(seeds) > 0:
			if _, err := n.joinOneOf(shuffled(seeds), seedTries); err != nil {
				n.log.Debug("no seed answered", "err", err, "retry_in", wait, "members", n.MemberCount())
			} else {
				seedJoined = true
				n.SyncNow()
			}
		case !alone:
			wait = 500 * time.Millisecond
		}
		if time.Since(lastReconnect) >= ReconnectScale(n.cfg.ReconnectInterval, n.MemberCount()) {
			lastReconnect = time.Now()
			n.rejoinOne(n.absentHosts(3, netip.Addr{}))
		}
		if n.meetStrangers() {
			n.SyncNow()
		}
		sleep := min(wait, n.cfg.ReconnectInterval)
		if d, ok := n.strangers.next(time.Now()); ok {
			sleep = min(sleep, d)
		}
		select {
		case <-ctx.Done():
			return
		case <-n.seedKick:
		case <-time.After(sleep):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// rejoinOne joins the first of cands that answers. A join is a full
// push/pull of the member list both ways (memberlist's Join exchanges with
// every address it is given), and one is enough: the member joined learns
// from this node's list which of its side this node holds dead, suspects
// them in turn, and they refute by gossip, as after any join. Trying the
// next only after a failure keeps the tries a round makes for a host that
// is really down.
func (n *Node) rejoinOne(cands []string) {
	if c, err := n.joinOneOf(cands, len(cands)); err == nil {
		n.log.Info("rejoined a member gossip had lost", "addr", c)
		n.SyncNow()
	}
}

// ReconnectScale stretches the reconnection interval as the mesh grows, by
// memberlist's own rule for its periodic push/pulls (one more interval per
// doubling beyond 32 members; the mesh turns those off, its anti-entropy
// syncs the records): a rejoin is a push/pull of the whole member list, so
// a node's rejoin traffic grows as N/log N instead of N, and the mesh as a
// whole still tries a rejoin every interval/members. With the base of
// 30 s, each node of a mesh of 800 tries every 3 minutes, one try every
// 0.2 s somewhere in the mesh.
func ReconnectScale(base time.Duration, members int) time.Duration {
	if members <= 32 {
		return base
	}
	return base * time.Duration(math.Ceil(math.Log2(float64(members))-5)+1)
}

// absentHosts picks up to k gossip addresses, from the seeds and the live
// hosts of the state, of nodes that are not members now: uniformly, by
// reservoir sampling, so that a look at 100,000 hosts formats k addresses,
// not 100,000 (it runs every reconnection interval). The addresses of a
// host at prefer (a bootstrap source, which just answered) come first,
// beside the k. The seeds no member is at are candidates too: an island
// of nodes that hold no record of the rest finds them only there.
func (n *Node) absentHosts(k int, prefer netip.Addr) []string {
	members := map[crdt.PublicKey]bool{n.cfg.Key.Public(): true}
	at := map[netip.AddrPort]bool{netip.AddrPortFrom(n.cfg.BindAddr, uint16(n.cfg.GossipPort)): true}
	for _, m := range n.memberList() {
		if id, err := crdt.ParsePublicKey(m.Name); err == nil {
			members[id] = true
		}
		at[netip.AddrPortFrom(m.Addr, m.GossipPort)] = true
	}
	type cand struct {
		addr netip.Addr
		port uint16
		seed string
	}
	var first, picked []cand
	seen := 0
	offer := func(c cand) {
		seen++
		if len(picked) < k {
			picked = append(picked, c)
		} else if j := rand.IntN(seen); j < k {
			picked[j] = c
		}
	}
	n.store.Read(func(st *crdt.State) {
		now := n.store.Now()
		for _, id := range st.Joined() {
			ttl := crdt.DefaultHostTTL
			if s := st.Settings(id); s != nil {
				ttl = s.Settings().HostTTL
			}
			st.EachHost(id, func(h *crdt.Record) bool {
				host := h.Host()
				if host.Heartbeat.Add(ttl).Before(now) || members[host.Node] {
					return true
				}
				for _, a := range host.Addresses {
					if c := (cand{addr: a, port: host.GossipPort}); a.Unmap() == prefer {
						first = append(first, c)
					} else {
						offer(c)
					}
				}
				return true
			})
		}
	})
	for _, s := range n.seeds() {
		if ap, err := netip.ParseAddrPort(s); err != nil || !at[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] {
			offer(cand{seed: s})
		}
	}
	rand.Shuffle(len(picked), func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
	out := make([]string, 0, len(first)+len(picked))
	for _, c := range append(first, picked...) {
		if c.seed != "" {
			out = append(out, c.seed)
		} else {
			out = append(out, gossipAddr(c.addr, c.port))
		}
	}
	return out
}

// randomPeer picks a live member not in the penalty box: one that avoid
// does not name if there is one, else one that shun does not name.
//
// It looks at the members in a random order (a Fisher–Yates shuffle done
// as far as needed) and takes the first that passes, so that it usually
// judges one or two members, not all: at 1,000 members, judging each took
// 8% of TestScale's CPU. The first of a uniformly random order that passes
// is a uniformly random one of those that pass.
func (n *Node) randomPeer(shun, avoid func(netip.Addr, time.Time) bool) (Member, bool) {
	ms := n.memberList()
	now := time.Now()
	fallback := -1
	for i := range ms {
		j := i + rand.IntN(len(ms)-i)
		ms[i], ms[j] = ms[j], ms[i]
		m := ms[i]
		if n.limits.penalized(m.Addr, now) || shun(m.Addr, now) {
			continue
		}
		if !avoid(m.Addr, now) {
			return m, true
		}
		if fallback < 0 {
			fallback = i
		}
	}
	if fallback < 0 {
		return Member{}, false
	}
	return ms[fallback], true
}

// slogWriter carries memberlist's log lines into slog at their level.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(b []byte) (int, error) {
	line := strings.TrimSpace(string(b))
	level := slog.LevelDebug
	switch {
	case strings.Contains(line, "[ERR]"):
		level = slog.LevelWarn // memberlist's errors are peers misbehaving or gone
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelInfo
	}
	w.log.Log(context.Background(), level, line, "source", "memberlist")
	return len(b), nil
}

var _ io.Writer = (*slogWriter)(nil)
