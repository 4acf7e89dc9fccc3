package agent

import (
	"bytes"
	"crypto/sha256"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/dnsserver"
	"github.com/data-mesher/data-mesher/mesh"
)

// viewPipeline turns the state into answers: the hosts to challenge go to
// the prober, then the resolved view is computed (state, configuration,
// verdicts, now), installed in the DNS server, and written to dns.json
// when it changed. The loop runs it after the store or the verdicts
// changed, and when the view says it would change by itself (a host
// decays).
type viewPipeline struct {
	self   crdt.PublicKey
	store  *mesh.Store
	conf   func() *live
	tunnel *tunnel
	log    *slog.Logger
	// prober and dns are set once they run (before the loop starts).
	prober *mesh.Prober
	dns    *dnsserver.Server
	// updated is told about every new view (metrics).
	updated func(*crdt.ResolvedView)

	view atomic.Pointer[crdt.ResolvedView]
	// table is the last DNS table built: it goes to dns when that runs, so
	// the server starts with its answers.
	table *dnsserver.Table
	// dnsJSON is the hash of the dns.json last written (the file is
	// rewritten only when it changes; its hash costs less than a copy).
	dnsJSON *[sha256.Size]byte
	// jsonSize is the size of the last dns.json built: the next is built
	// in a buffer of about that size, not one doubled into it (at 100,000
	// hosts 7.8 MB, which doubling makes 23 MB of garbage).
	jsonSize int
	jsonDue  bool // the table changed since dns.json was written
	// cost is how long the last update took (the loop spaces views by it).
	cost time.Duration
	// targetsVersion is the state version the prober's targets come from.
	targetsVersion uint64
}

// current is the last view computed (never nil once New returned).
func (p *viewPipeline) current() *crdt.ResolvedView { return p.view.Load() }

// update recomputes the view and returns when it would change by itself.
func (p *viewPipeline) update(now time.Time) time.Time {
	began := time.Now()
	defer func() { p.cost = time.Since(began) }()
	conf := p.conf()
	// The prober learns the hosts' current addresses before the view asks
	// it about them: a host that dropped a failing address is reachable
	// now, on the verdicts its other addresses already have, and no later
	// event would recompute the view for it.
	if p.prober != nil {
		p.store.Read(func(st *crdt.State) {
			if st.Version() == p.targetsVersion {
				return
			}
			p.targetsVersion = st.Version()
			// Host by host, not a list of them all (at 100,000 hosts
			// 10 MB, on every change of the state).
			p.prober.Update(func(yield func(mesh.Target) bool) {
				for _, id := range st.Joined() {
					more := true
					st.EachHost(id, func(h *crdt.Record) bool {
						host := h.Host()
						more = yield(mesh.Target{Network: id, Node: host.Node, Addrs: host.Addresses, Port: host.HTTPPort})
						return more
					})
					if !more {
						return
					}
				}
			})
		})
	}
	cfg := crdt.ViewConfig{Previous: p.current()} // what did not change is shared
	for _, n := range conf.Nets {
		cfg.Networks = append(cfg.Networks, crdt.JoinedNetwork{ID: n.ID, Priority: n.Priority})
	}
	if p.prober != nil {
		cfg.Reachable = p.prober.Reachable
	} else {
		cfg.Reachable = func(_, node crdt.PublicKey) bool { return node == p.self }
	}
	var v *crdt.ResolvedView
	p.store.Read(func(st *crdt.State) { v = st.View(cfg, now) })
	prev := p.table
	// Until DNS runs, no query takes the fast path: start-up packs its
	// replies once the server answers (finishFast).
	t, err := dnsserver.NewTable(v, dnsserver.TableOptions{ReversePrefixes: p.tunnel.reversePrefixes(),
		NSAddrs: p.tunnel.ownAddrs(), Previous: prev, DeferFast: p.dns == nil})
	if err == nil && t == prev {
		// The same answers: keep one copy of the names, the table's (two
		// would be 30 MB at 100,000 hosts), with the new view's decay time.
		old := t.View()
		v = &crdt.ResolvedView{Zones: old.Zones, Names: old.Names, Reverse: old.Reverse, ValidUntil: v.ValidUntil}
	}
	p.view.Store(v)
	switch {
	case err != nil:
		p.log.Error("building the DNS table", "err", err)
	case t == prev && !p.jsonDue:
		return p.until(v) // the answers did not change: nothing to write
	default:
		p.table, p.jsonDue = t, true
		if p.dns != nil {
			p.dns.SetTable(t)
		}
	}
	if p.dns != nil { // at start-up Run writes it once DNS answers
		p.writeDNSJSON(conf)
	}
	if p.updated != nil {
		p.updated(v)
	}
	if p.dns != nil && p.jsonDue { // the write failed: again in 5 s
		return soonest(p.until(v), time.Now().Add(5*time.Second))
	}
	return p.until(v)
}

// until is when the view v would change by itself: a record decays, or a
// pass lapses (the prober's answers are the view's input too).
func (p *viewPipeline) until(v *crdt.ResolvedView) time.Time {
	if p.prober == nil {
		return v.ValidUntil
	}
	return soonest(v.ValidUntil, p.prober.Lapse())
}

// finishFast gives the DNS server the table with the fast path's packed
// replies, if the last update deferred them.
func (p *viewPipeline) finishFast() {
	if p.table == nil {
		return
	}
	if t := p.table.WithFast(); t != p.table {
		p.table = t
		if p.dns != nil {
			p.dns.SetTable(t)
		}
	}
}

// writeDNSJSON writes dns.json from the last table if it is due: every
// A/AAAA name the server answers, from the table it answers with. A write
// that fails stays due.
func (p *viewPipeline) writeDNSJSON(conf *live) {
	if !p.jsonDue || p.table == nil {
		return
	}
	if conf.DNS.JSONFile == "off" {
		p.jsonDue = false
		return
	}
	var b bytes.Buffer
	if p.jsonSize == 0 {
		p.jsonSize = 80 * len(p.current().Names) // a name with one address
	}
	b.Grow(p.jsonSize + p.jsonSize/16)
	if err := p.table.WriteDNSJSON(&b); err != nil {
		p.log.Warn("writing dns.json", "err", err)
		return
	}
	p.jsonSize = b.Len()
	if sum := sha256.Sum256(b.Bytes()); p.dnsJSON == nil || sum != *p.dnsJSON {
		if err := WriteFileAtomic(conf.DNS.JSONFile, b.Bytes(), 0o640); err != nil {
			p.log.Warn("writing dns.json", "err", err)
			return
		}
		p.dnsJSON = &sum
	}
	p.jsonDue = false
}
