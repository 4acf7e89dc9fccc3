package mesh

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Target is a host to check: its node key and where it claims to answer.
type Target struct {
	Network crdt.PublicKey
	Node    crdt.PublicKey
	Addrs   []netip.Addr
	Port    uint16
}

// check is one address to challenge, as a worker gets it.
type check struct {
	host hostKey
	addr netip.Addr
	port uint16
}

type hostKey struct{ network, node crdt.PublicKey }

// hostTable holds the hosts by network, then node: one map per network
// whose keys are 32 bytes, not one whose keys are 64 (at 100,000 hosts,
// 4 MB less).
type hostTable map[crdt.PublicKey]map[crdt.PublicKey]*hostCheck

func (t hostTable) get(k hostKey) *hostCheck { return t[k.network][k.node] }

func (t hostTable) set(k hostKey, h *hostCheck) {
	m := t[k.network]
	if m == nil {
		m = map[crdt.PublicKey]*hostCheck{}
		t[k.network] = m
	}
	m[k.node] = h
}

// all yields every host.
func (t hostTable) all(yield func(hostKey, *hostCheck) bool) {
	for network, m := range t {
		for node, h := range m {
			if !yield(hostKey{network, node}, h) {
				return
			}
		}
	}
}

// keepGen drops the hosts the Update of generation gen did not name.
func (t hostTable) keepGen(gen uint64) {
	for network, m := range t {
		maps.DeleteFunc(m, func(_ crdt.PublicKey, h *hostCheck) bool { return h.gen != gen })
		if len(m) == 0 {
			delete(t, network)
		}
	}
}

// hostCheck is a host's addresses and their verdicts, kept together so
// that 10,000 hosts cost one map entry each.
type hostCheck struct {
	port    uint16
	addrs   []netip.Addr
	results []result // one per address
	gen     uint64   // the Update that last named it
}

type result struct {
	ok, inFlight  bool
	checked, next int64 // Unix nanoseconds; checked 0 = never
	backoff       time.Duration
	err           error
}

// ErrNotRouted is wrapped when a claimed address is not inside any
// WireGuard peer's allowed IPs.
var ErrNotRouted = errors.New("address is not routed to any WireGuard peer")

// Prober runs the reachability challenge against the hosts of the state in
// the background and keeps the verdicts: its scheduler renews passes
// before they lapse and backs off failures.
type Prober struct {
	// Client reaches peer endpoints over the tunnel (default: 3 s timeout).
	Client *http.Client
	// Routed reports whether an address lies inside the allowed IPs of one
	// of this node's WireGuard peers (the agent builds it from wg). Nil
	// routes nothing: every check fails with ErrNotRouted.
	Routed func(netip.Addr) bool
	// Self reports whether a node key is this node's (never challenged).
	Self func(node crdt.PublicKey) bool
	// TTL is how long a pass counts (default 10 min); checks are renewed
	// at half of it so a healthy host never lapses.
	TTL time.Duration
	// RetryFirst is the first wait after a failure (default 250 ms),
	// doubling up to RetryMax (default TTL): a host whose agent is not up
	// yet when it is first checked (a cold start) passes within seconds of
	// it coming up, and one that stays down costs a check per RetryMax.
	RetryFirst, RetryMax time.Duration
	// Concurrency bounds checks in flight (default 8).
	Concurrency int
	Logger      *slog.Logger

	mu    sync.Mutex
	hosts hostTable
	gen   uint64 // of the last Update
	// due is when the next check falls due, at the earliest: until then
	// schedule has nothing to look for (0: look now).
	due int64
	// lapse is when the earliest pass lapses, at the earliest: until then
	// no pass does (0: look).
	lapse   int64
	queue   chan check
	once    sync.Once
	checks  atomic.Uint64 // checks completed
	changed chan struct{}

	// logMu guards the count of failure lines in the current minute.
	logMu     sync.Mutex
	logWindow int64
	logLines  int
}

func (p *Prober) init() {
	p.once.Do(func() {
		if p.Client == nil {
			p.Client = &http.Client{Timeout: 3 * time.Second}
		}
		if p.TTL <= 0 {
			p.TTL = 10 * time.Minute
		}
		if p.RetryFirst <= 0 {
			p.RetryFirst = 250 * time.Millisecond
		}
		if p.RetryMax <= 0 {
			p.RetryMax = p.TTL
		}
		if p.Concurrency <= 0 {
			p.Concurrency = 8
		}
		if p.Logger == nil {
			p.Logger = slog.New(slog.DiscardHandler)
		}
		p.hosts = hostTable{}
		p.queue = make(chan check, 1024)
		p.changed = make(chan struct{}, 1)
	})
}

// Changes receives a value after a verdict changed (coalesced: one value
// may stand for several changes).
func (p *Prober) Changes() <-chan struct{} {
	p.init()
	return p.changed
}

// Checks counts the checks completed so far (passed or failed): a saver
// of the verdicts compares it to know whether there is anything new.
func (p *Prober) Checks() uint64 { return p.checks.Load() }

// Run checks what Update schedules, until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	p.init()
	var wg sync.WaitGroup
	for range p.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case c := <-p.queue:
					p.check(ctx, c)
				}
			}
		}()
	}
	// The scheduler looks as often as the quickest retry needs (at most
	// once a second, at least four times).
	t := time.NewTicker(min(max(p.RetryFirst, 250*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
			p.schedule()
		}
	}
}

// Update sets the hosts to keep checked (the hosts of the current state,
// which it may read while the state is locked: it calls nothing back);
// checks for new ones start at once. Verdicts of addresses a host still
// claims are kept.
func (p *Prober) Update(targets iter.Seq[Target]) {
	p.init()
	p.mu.Lock()
	// In place: a host whose port and addresses did not change keeps its
	// entry as it is (in a large mesh, nearly every host on every update).
	p.gen++
	for t := range targets {
		if p.Self != nil && p.Self(t.Node) {
			continue
		}
		k := hostKey{t.Network, t.Node}
		o := p.hosts.get(k)
		if o != nil && o.port == t.Port && slices.Equal(o.addrs, t.Addrs) {
			// The record's own slice from now on (records never change):
			// the copy Restore made is dropped.
			o.gen, o.addrs = p.gen, t.Addrs
			continue
		}
		h := &hostCheck{port: t.Port, addrs: t.Addrs, results: make([]result, len(t.Addrs)), gen: p.gen}
		if o != nil && o.port == t.Port {
			for i, a := range t.Addrs {
				if j := slices.Index(o.addrs, a); j >= 0 {
					h.results[i] = o.results[j]
				}
			}
		}
		p.hosts.set(k, h)
		p.due = 0 // its new addresses are checked at once
	}
	p.hosts.keepGen(p.gen)
	p.mu.Unlock()
	p.schedule()
}

// Recheck checks again, at once, every address inside the given prefixes:
// WireGuard's routes for them changed (a peer removed or added, its allowed
// IPs edited), so a pass there may no longer hold, or a failure may now
// pass. Their back-off starts over.
func (p *Prober) Recheck(changed []netip.Prefix) {
	if len(changed) == 0 {
		return
	}
	p.init()
	p.mu.Lock()
	for _, h := range p.hosts.all {
		for i, a := range h.addrs {
			if slices.ContainsFunc(changed, func(pr netip.Prefix) bool { return pr.Contains(a.Unmap()) }) {
				h.results[i].next, h.results[i].backoff = 0, 0
				p.due = 0
			}
		}
	}
	p.mu.Unlock()
	p.schedule()
}

// schedule queues the checks that are due. It runs several times a second
// and allocates nothing; until the earliest check falls due it looks at
// nothing (at 100,000 hosts, a look at every host four times a second
// was 9% of a core at rest).
func (p *Prober) schedule() {
	now := time.Now().UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	if now < p.due {
		return
	}
	due := int64(math.MaxInt64)
	for k, h := range p.hosts.all {
		for i := range h.results {
			r := &h.results[i]
			if r.inFlight {
				continue // its end sets its next
			}
			if now < r.next {
				due = min(due, r.next)
				continue
			}
			select {
			case p.queue <- check{host: k, addr: h.addrs[i].Unmap(), port: h.port}:
				r.inFlight = true
			default: // full: look again next tick
				p.due = 0
				return
			}
		}
	}
	p.due = due
}

// Reachable reports whether every address of node in network has passed a
// challenge within the TTL. A node's own key is always reachable.
func (p *Prober) Reachable(network, node crdt.PublicKey) bool {
	p.init()
	if p.Self != nil && p.Self(node) {
		return true
	}
	oldest := time.Now().Add(-p.TTL).UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts.get(hostKey{network, node})
	if h == nil || len(h.results) == 0 {
		return false
	}
	for _, r := range h.results {
		if !r.ok || r.checked < oldest {
			return false
		}
	}
	return true
}

// Lapse is when Reachable next turns false by itself: the first moment a
// pass is older than the TTL without a newer one (a renewal that has not
// come back in half the TTL). Whoever keeps Reachable's answers asks again
// then; a verdict that changes with a check is told on Changes. Zero: no
// pass to lapse. It looks at every host only when the last answer has
// passed (about every half TTL while renewals keep up).
func (p *Prober) Lapse() time.Time {
	p.init()
	now := time.Now().UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	if now < p.lapse {
		return time.Unix(0, p.lapse)
	}
	lapse, ttl := int64(math.MaxInt64), p.TTL.Nanoseconds()
	for _, h := range p.hosts.all {
		for _, r := range h.results {
			if at := r.checked + ttl + 1; r.ok && at > now {
				lapse = min(lapse, at)
			}
		}
	}
	p.lapse = lapse
	if lapse == math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(0, lapse)
}

// Status is one address's last verdict, for doctor and status.
type Status struct {
	Network, Node crdt.PublicKey
	Addr          netip.Addr
	Port          uint16
	OK            bool
	Err           error
	Checked       time.Time
}

// Statuses lists the verdicts.
func (p *Prober) Statuses() []Status {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Status
	for k, h := range p.hosts.all {
		for i, r := range h.results {
			if r.checked == 0 {
				continue
			}
			out = append(out, Status{Network: k.network, Node: k.node, Addr: h.addrs[i], Port: h.port, OK: r.ok, Err: r.err,
				Checked: time.Unix(0, r.checked)})
		}
	}
	return out
}

func (p *Prober) check(ctx context.Context, c check) {
	var err error
	if p.Routed == nil || !p.Routed(c.addr) {
		err = fmt.Errorf("%w: %s", ErrNotRouted, c.addr)
	} else {
		err = challenge(ctx, p.Client, c.host.network, c.host.node, c.addr, c.port)
	}
	now := time.Now()
	p.mu.Lock()
	// The host's record may have changed while we checked: find the
	// address by value (Update keeps its result, in-flight mark included,
	// but perhaps at another index).
	h := p.hosts.get(c.host)
	i := -1
	if h != nil && h.port == c.port {
		i = slices.IndexFunc(h.addrs, func(a netip.Addr) bool { return a.Unmap() == c.addr })
	}
	if i < 0 {
		p.mu.Unlock() // the host no longer claims this address
		return
	}
	r := &h.results[i]
	changed := r.ok != (err == nil) || r.checked == 0
	r.inFlight, r.checked, r.ok, r.err = false, now.UnixNano(), err == nil, err
	if err == nil {
		p.lapse = min(p.lapse, r.checked+p.TTL.Nanoseconds()+1)
		r.backoff = 0
		r.next = now.Add(p.TTL / 2).UnixNano()
	} else {
		r.backoff = min(max(2*r.backoff, p.RetryFirst), p.RetryMax)
		r.next = now.Add(r.backoff).UnixNano()
	}
	p.due = min(p.due, r.next)
	backoff := r.backoff
	p.mu.Unlock()
	p.checks.Add(1)
	if err != nil {
		p.logFailure(changed, netip.AddrPortFrom(c.addr, c.port), err, backoff)
	}
	if changed {
		select {
		case p.changed <- struct{}{}:
		default:
		}
	}
}

// failLinesPerMinute bounds the prober's lines about hosts that fail: a
// node that cannot reach a large mesh (its WireGuard routes lost, or not
// yet set up while it bootstraps) would write one per host and retry: a
// new node bootstrapping 100,000 hosts it could not reach wrote 190,000
// lines in 40 s. dm-agent status and doctor list every verdict.
const failLinesPerMinute = 20

// logFailure writes a failed check: at Info when the address's verdict
// changed (its first check, or a pass that failed), up to
// failLinesPerMinute a minute, then one line saying the rest of the minute
// is not logged; at Debug otherwise (a retry that failed again).
func (p *Prober) logFailure(changed bool, at netip.AddrPort, err error, retry time.Duration) {
	const msg = "host failed the reachability challenge; its names stay out of this node's view"
	if !changed {
		p.Logger.Debug(msg, "addr", at, "err", err, "retry_in", retry)
		return
	}
	now := time.Now().UnixNano()
	p.logMu.Lock()
	if now-p.logWindow >= int64(time.Minute) {
		p.logWindow, p.logLines = now, 0
	}
	p.logLines++
	n := p.logLines
	p.logMu.Unlock()
	switch {
	case n <= failLinesPerMinute:
		p.Logger.Info(msg, "addr", at, "err", err, "retry_in", retry)
	case n == failLinesPerMinute+1:
		p.Logger.Warn("more hosts failed the reachability challenge; the rest of this minute's failures are not logged (dm-agent status lists every verdict)",
			"logged", failLinesPerMinute)
	}
}

// Verdict is a passed challenge, as the agent persists it across restarts:
// a node that restarts within the TTL keeps what it verified instead of
// dropping every name until it has challenged every host again.
type Verdict struct {
	Network crdt.PublicKey `json:"network"`
	Node    crdt.PublicKey `json:"node"`
	Addr    netip.Addr     `json:"addr"`
	Port    uint16         `json:"port"`
	Checked time.Time      `json:"checked"`
}

// Passed yields the current passes, one at a time (at 100,000 hosts a
// list of them was 12 MB, and 22 MB of garbage, on every save). It holds
// the prober's lock while it runs: the loop over it must not call the
// prober.
func (p *Prober) Passed() iter.Seq[Verdict] {
	return func(yield func(Verdict) bool) {
		p.init()
		p.mu.Lock()
		defer p.mu.Unlock()
		for k, h := range p.hosts.all {
			for i, r := range h.results {
				if r.ok && !yield(Verdict{Network: k.network, Node: k.node, Addr: h.addrs[i], Port: h.port, Checked: time.Unix(0, r.checked)}) {
					return
				}
			}
		}
	}
}

// Restore brings back passes this node established before a restart. Those
// older than the TTL are ignored; the others count until they expire and are
// renewed when they would have been (half the TTL after the check), or,
// when that moment passed during the restart, spread over the next quarter
// of the TTL: a restart does not challenge every host at once. Call it
// before the first Update; Update keeps what matches the hosts.
func (p *Prober) Restore(vs []Verdict) int {
	p.init()
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(vs) > 0 && p.hosts[vs[0].Network] == nil {
		// Sized once: at 100,000 hosts a map grown step by step leaves
		// 6 MB of garbage during start-up.
		p.hosts[vs[0].Network] = make(map[crdt.PublicKey]*hostCheck, len(vs))
	}
	n := 0
	for i, v := range vs {
		age := now.Sub(v.Checked)
		if age < 0 || age > p.TTL || !v.Addr.IsValid() {
			continue
		}
		next := v.Checked.Add(p.TTL / 2)
		if next.Before(now) {
			next = now.Add(time.Duration(i%1000) * (p.TTL / 4 / 1000))
		}
		k := hostKey{v.Network, v.Node}
		h := p.hosts.get(k)
		if h == nil || h.port != v.Port {
			h = &hostCheck{port: v.Port}
			p.hosts.set(k, h)
		}
		h.addrs = append(h.addrs, v.Addr.Unmap())
		h.results = append(h.results, result{ok: true, checked: v.Checked.UnixNano(), next: next.UnixNano()})
		p.due = min(p.due, next.UnixNano())
		p.lapse = min(p.lapse, v.Checked.UnixNano()+p.TTL.Nanoseconds()+1)
		n++
	}
	return n
}
