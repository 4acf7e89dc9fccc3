package wg

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The reachability challenge. Before a host's names enter a node's view,
// the node sends a fresh nonce to each of the host's claimed addresses, at
// its peer endpoint port, over the tunnel. Whoever answers must sign
//
//	"data-mesher/v1 challenge\0" ‖ nonce (32) ‖ network (32) ‖ address (16) ‖ port (2)
//
// with the host's node key. A host claiming another node's address is
// answered there by that other node, whose signature does not verify under
// the claimant's key; and the address must lie inside the allowed IPs of
// one of this node's WireGuard peers, or WireGuard would not deliver there
// at all. A host passes only if all its addresses pass.

const challengeContext = "data-mesher/v1 challenge\x00"

// ChallengePath is where the peer endpoint answers challenges.
const ChallengePath = "/v1/challenge"

const challengeLen = 1 + 32 + 32 + 16 + 2

func challengeMessage(nonce, network [32]byte, addr netip.Addr, port uint16) []byte {
	m := make([]byte, 0, len(challengeContext)+challengeLen)
	m = append(m, challengeContext...)
	m = append(m, nonce[:]...)
	m = append(m, network[:]...)
	a := addr.As16()
	m = append(m, a[:]...)
	return binary.BigEndian.AppendUint16(m, port)
}

// Responder answers challenges for this node.
type Responder struct {
	Key ed25519.PrivateKey
	// Serves reports whether this node answers for network at addr:port
	// (one of its tunnel addresses and its HTTP port, in a joined
	// network). It refuses to sign for anything else, so it cannot be used
	// to vouch for an address it does not hold.
	Serves func(network [32]byte, at netip.AddrPort) bool
}

// ServeHTTP implements the POST /v1/challenge endpoint.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, challengeLen+1))
	if err != nil || len(body) != challengeLen || body[0] != 1 {
		http.Error(w, "bad challenge", http.StatusBadRequest)
		return
	}
	var nonce, network [32]byte
	copy(nonce[:], body[1:33])
	copy(network[:], body[33:65])
	addr := netip.AddrFrom16([16]byte(body[65:81])).Unmap()
	port := binary.BigEndian.Uint16(body[81:83])
	if r.Serves == nil || !r.Serves(network, netip.AddrPortFrom(addr, port)) {
		http.Error(w, "this node does not answer for that address and network", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(append(ed25519.Sign(r.Key, challengeMessage(nonce, network, addr, port)), r.Key.Public().(ed25519.PublicKey)...))
}

// Target is a host to check: its node key and where it claims to answer.
type Target struct {
	Network [32]byte
	Node    [32]byte
	Addrs   []netip.Addr
	Port    uint16
}

// check is one address to challenge, as a worker gets it.
type check struct {
	host          [64]byte // network ‖ node
	network, node [32]byte
	addr          netip.Addr
	port          uint16
}

// hostCheck is a host's addresses and their verdicts, kept together so
// that 10,000 hosts cost one map entry each.
type hostCheck struct {
	network, node [32]byte
	port          uint16
	addrs         []netip.Addr
	results       []result // one per address
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

// Prober checks targets in the background and keeps the verdicts.
type Prober struct {
	// Client reaches peer endpoints over the tunnel (default: 3 s timeout).
	Client *http.Client
	// Peers returns this node's current WireGuard peers.
	Peers func() []Peer
	// Self reports whether a node key is this node's (never challenged).
	Self func(node [32]byte) bool
	// TTL is how long a pass counts (default 10 min); checks are renewed
	// at half of it so a healthy host never lapses.
	TTL time.Duration
	// RetryAfter is the first wait after a failure (default 15 s),
	// doubling up to TTL.
	RetryAfter time.Duration
	// Concurrency bounds checks in flight (default 8).
	Concurrency int
	// OnChange is called (from a prober goroutine) when a verdict changes.
	OnChange func()
	Logger   *slog.Logger

	mu     sync.Mutex
	hosts  map[[64]byte]*hostCheck
	queue  chan check
	once   sync.Once
	checks atomic.Uint64 // checks completed
}

// Checks counts the checks completed so far (passed or failed): a saver
// of the verdicts compares it to know whether there is anything new.
func (p *Prober) Checks() uint64 { return p.checks.Load() }

func (p *Prober) init() {
	p.once.Do(func() {
		if p.Client == nil {
			p.Client = &http.Client{Timeout: 3 * time.Second}
		}
		if p.TTL <= 0 {
			p.TTL = 10 * time.Minute
		}
		if p.RetryAfter <= 0 {
			p.RetryAfter = 15 * time.Second
		}
		if p.Concurrency <= 0 {
			p.Concurrency = 8
		}
		if p.Logger == nil {
			p.Logger = slog.New(slog.DiscardHandler)
		}
		if p.Peers == nil {
			p.Peers = func() []Peer { return nil }
		}
		p.hosts = map[[64]byte]*hostCheck{}
		p.queue = make(chan check, 1024)
	})
}

func targetKey(network, node [32]byte) [64]byte {
	var k [64]byte
	copy(k[:32], network[:])
	copy(k[32:], node[:])
	return k
}

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
	t := time.NewTicker(time.Second)
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

// Update sets the hosts to keep checked (the hosts of the current state);
// checks for new ones start at once. Verdicts of addresses a host still
// claims are kept.
func (p *Prober) Update(targets []Target) {
	p.init()
	p.mu.Lock()
	old := p.hosts
	p.hosts = make(map[[64]byte]*hostCheck, len(targets))
	for _, t := range targets {
		if p.Self != nil && p.Self(t.Node) {
			continue
		}
		k := targetKey(t.Network, t.Node)
		h := &hostCheck{network: t.Network, node: t.Node, port: t.Port, addrs: t.Addrs, results: make([]result, len(t.Addrs))}
		if o := old[k]; o != nil && o.port == t.Port {
			for i, a := range t.Addrs {
				if j := slices.Index(o.addrs, a); j >= 0 {
					h.results[i] = o.results[j]
				}
			}
		}
		p.hosts[k] = h
	}
	p.mu.Unlock()
	p.schedule()
}

// schedule queues the checks that are due. It runs every second and
// allocates nothing.
func (p *Prober) schedule() {
	now := time.Now().UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, h := range p.hosts {
		for i := range h.results {
			r := &h.results[i]
			if r.inFlight || now < r.next {
				continue
			}
			select {
			case p.queue <- check{host: k, network: h.network, node: h.node, addr: h.addrs[i].Unmap(), port: h.port}:
				r.inFlight = true
			default: // full: next tick
				return
			}
		}
	}
}

// Reachable reports whether every address of node in network has passed a
// challenge within the TTL. A node's own key is always reachable.
func (p *Prober) Reachable(network, node [32]byte) bool {
	p.init()
	if p.Self != nil && p.Self(node) {
		return true
	}
	oldest := time.Now().Add(-p.TTL).UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts[targetKey(network, node)]
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

// Status is one address's last verdict, for doctor and status.
type Status struct {
	Network, Node [32]byte
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
	for _, h := range p.hosts {
		for i, r := range h.results {
			if r.checked == 0 {
				continue
			}
			out = append(out, Status{Network: h.network, Node: h.node, Addr: h.addrs[i], Port: h.port, OK: r.ok, Err: r.err,
				Checked: time.Unix(0, r.checked)})
		}
	}
	return out
}

func (p *Prober) check(ctx context.Context, c check) {
	err := p.challenge(ctx, c)
	now := time.Now()
	p.mu.Lock()
	// The host's record may have changed while we checked: find the
	// address by value (Update keeps its result, in-flight mark included,
	// but perhaps at another index).
	h := p.hosts[c.host]
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
		r.backoff = 0
		r.next = now.Add(p.TTL / 2).UnixNano()
	} else {
		r.backoff = min(max(2*r.backoff, p.RetryAfter), p.TTL)
		r.next = now.Add(r.backoff).UnixNano()
	}
	backoff := r.backoff
	p.mu.Unlock()
	p.checks.Add(1)
	if err != nil {
		p.Logger.Info("host failed the reachability challenge; its names stay out of this node's view",
			"addr", netip.AddrPortFrom(c.addr, c.port), "err", err, "retry_in", backoff)
	}
	if changed && p.OnChange != nil {
		p.OnChange()
	}
}

func (p *Prober) challenge(ctx context.Context, k check) error {
	if !Routed(k.addr, p.Peers()) {
		return fmt.Errorf("%w: %s", ErrNotRouted, k.addr)
	}
	var nonce [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	body := make([]byte, 0, challengeLen)
	body = append(body, 1)
	body = append(body, nonce[:]...)
	body = append(body, k.network[:]...)
	a := k.addr.As16()
	body = append(body, a[:]...)
	body = binary.BigEndian.AppendUint16(body, k.port)
	url := "http://" + netip.AddrPortFrom(k.addr, k.port).String() + ChallengePath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := p.Client.Do(req)
	if err != nil {
		return fmt.Errorf("no answer at %s: %w", url, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return fmt.Errorf("reading the answer from %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", url, resp.Status, bytes.TrimSpace(reply))
	}
	if len(reply) != ed25519.SignatureSize+ed25519.PublicKeySize {
		return fmt.Errorf("%s answered %d bytes, not a signature and key", url, len(reply))
	}
	if !ed25519.Verify(k.node[:], challengeMessage(nonce, k.network, k.addr, k.port), reply[:ed25519.SignatureSize]) {
		return fmt.Errorf("the node answering at %s holds key %s, not the key of the host claiming it", url,
			shortKey(reply[ed25519.SignatureSize:]))
	}
	return nil
}

func shortKey(b []byte) string { return base64.StdEncoding.EncodeToString(b)[:10] }

// Verdict is a passed challenge, as the agent persists it across restarts:
// a node that restarts within the TTL keeps what it verified instead of
// dropping every name until it has challenged every host again.
type Verdict struct {
	Network [32]byte   `json:"network"`
	Node    [32]byte   `json:"node"`
	Addr    netip.Addr `json:"addr"`
	Port    uint16     `json:"port"`
	Checked time.Time  `json:"checked"`
}

// Passed lists the current passes.
func (p *Prober) Passed() []Verdict {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Verdict
	for _, h := range p.hosts {
		for i, r := range h.results {
			if r.ok {
				out = append(out, Verdict{Network: h.network, Node: h.node, Addr: h.addrs[i], Port: h.port, Checked: time.Unix(0, r.checked)})
			}
		}
	}
	return out
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
		k := targetKey(v.Network, v.Node)
		h := p.hosts[k]
		if h == nil || h.port != v.Port {
			h = &hostCheck{network: v.Network, node: v.Node, port: v.Port}
			p.hosts[k] = h
		}
		h.addrs = append(h.addrs, v.Addr.Unmap())
		h.results = append(h.results, result{ok: true, checked: v.Checked.UnixNano(), next: next.UnixNano()})
		n++
	}
	return n
}
