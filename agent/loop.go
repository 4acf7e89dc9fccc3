package agent

import (
	"context"
	"slices"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
	"github.com/data-mesher/data-mesher/wg"
)

// viewSettle is how long the loop lets a burst of changes settle before it
// recomputes the view: at most four times a second however busy the mesh
// is, and never so often that views take more than a tenth of a core. A
// view is computed from scratch, in time that grows with the mesh (half a
// second of CPU at 100,000 hosts, TestProfileStartup), and in a large mesh
// changes never stop (every host's heartbeat): there names follow within
// seconds rather than within a quarter of one.
const viewSettle = 250 * time.Millisecond

// viewFallback is the longest the loop goes without computing the view.
const viewFallback = 10 * time.Minute

// settle is the wait before the next view: viewSettle, or nine times what
// the last view cost.
func (p *viewPipeline) settle() time.Duration { return max(viewSettle, 9*p.cost) }

// due is when each of the loop's jobs is next to run.
type due struct {
	own, witness, prune, view, save time.Time
	// remesh is set while gossip is down after a failed move (zero: not).
	remesh time.Time
	// beat feeds the watchdog (zero: there is none).
	beat time.Time
}

func (d *due) earliest() time.Time {
	times := []time.Time{d.own, d.witness, d.prune, d.view, d.save}
	for _, t := range []time.Time{d.remesh, d.beat} {
		if !t.IsZero() {
			times = append(times, t)
		}
	}
	return slices.MinFunc(times, time.Time.Compare)
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// soonest is the earlier of two moments where the zero time is never.
func soonest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// loop is the agent's one event loop. Its inputs: the interface's events,
// the store's one notification of change (records added or dropped,
// networks joined or left), the prober's verdict changes, reloads, and
// the clock. Its jobs, run in this order when due: this node's own
// records, witnessing, pruning, the view (which hands the prober its
// targets), saving the verdicts. A job's output reaches the others only
// through the store's notification.
func (a *Agent) loop(ctx context.Context, events <-chan wg.Event) {
	p := a.up.Load()
	changed, settings := make(chan struct{}, 1), make(chan struct{}, 1)
	a.store.Subscribe(func(c mesh.Change) {
		kick(changed)
		if slices.ContainsFunc(c.Added, func(r *crdt.Record) bool { return r.Kind() == crdt.KindSettings }) {
			kick(settings) // new namespaces to publish into, a new host TTL
		}
	})
	saveEvery := min(max(time.Duration(a.conf.Load().ReachabilityTTL)/4, 5*time.Second), 2*time.Minute)
	now := a.now()
	next := due{own: now, witness: now, prune: now.Add(time.Minute), view: now, save: now.Add(saveEvery)}
	if a.opts.Watchdog != nil {
		next.beat = now
	}
	var saved uint64
	// A node's claims wait for its first sync (ownRecords.start): refresh
	// them the moment it comes, not when the 10 s fallback is due.
	syncedNode, firstSync := p.node, p.node.FirstSync()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			a.saveVerdicts(p.prober, saved)
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if a.interfaceChanged(p, ev) {
				if b, ok := a.newBind(a.conf.Load(), ev.Interface); ok {
					var up bool
					if p, up = a.rebind(ctx, p, b); !up {
						next.remesh = a.now().Add(5 * time.Second)
					}
				}
				next.own = a.now()
			}
			next.view = earlier(next.view, a.now().Add(a.view.settle()))
		case <-changed:
			next.view = earlier(next.view, a.now().Add(a.view.settle()))
			next.witness = a.now()
		case <-settings:
			next.own = a.now()
			next.view = earlier(next.view, a.now().Add(a.view.settle()))
			next.witness = a.now()
		case <-p.prober.Changes():
			next.view = earlier(next.view, a.now().Add(a.view.settle()))
			next.save = earlier(next.save, a.now().Add(5*time.Second))
		case <-firstSync:
			firstSync = nil
			next.own = a.now()
		case <-a.reloaded:
			a.applyNetworks(ctx, p.node)
			next.own, next.view = a.now(), a.now()
		case <-timer.C:
		}
		now = a.now()
		if !now.Before(next.own) {
			next.own = a.own.refresh(now)
		}
		if !now.Before(next.witness) {
			a.own.witness(now)
			next.witness = now.Add(30 * time.Second)
		}
		if !now.Before(next.prune) {
			if dropped := a.store.Prune(); len(dropped) > 0 {
				a.log.Info("pruned decayed records", "count", len(dropped))
			}
			next.prune = now.Add(time.Minute)
		}
		if !now.Before(next.view) {
			// Every input of the view tells when it changes (above), or
			// says when it will by itself (until: a record decays, a
			// pass lapses, a failed write is due again). The fallback is
			// for what escapes both: at 100,000 hosts a view is a third
			// of a second of CPU, once a minute the largest part of an
			// idle agent's.
			next.view = now.Add(viewFallback)
			until := a.view.update(now)
			if a.files != nil {
				until = soonest(until, a.files.update(now))
			}
			if a.known != nil {
				until = soonest(until, a.known.update(a.view.current(), now))
			}
			if !until.IsZero() {
				next.view = earlier(next.view, later(until, now.Add(100*time.Millisecond)))
			}
		}
		if !next.remesh.IsZero() && !now.Before(next.remesh) {
			next.remesh = time.Time{}
			if !a.remesh(ctx, p) {
				next.remesh = now.Add(5 * time.Second)
			}
			p = a.up.Load()
		}
		if !now.Before(next.save) {
			saved = a.saveVerdicts(p.prober, saved)
			next.save = now.Add(saveEvery)
		}
		if !next.beat.IsZero() && !now.Before(next.beat) {
			// The loop got here, and the state's lock can be taken: the
			// agent makes progress.
			a.store.Read(func(*crdt.State) {})
			a.opts.Watchdog()
			next.beat = now.Add(a.opts.WatchdogEvery)
		}
		if p.node != syncedNode { // gossip restarted on a new address
			syncedNode, firstSync = p.node, p.node.FirstSync()
		}
		timer.Reset(max(next.earliest().Sub(a.now()), 10*time.Millisecond))
	}
}

// interfaceChanged takes an interface event: new peers become gossip
// seeds; where routes changed, the hosts there are challenged again at
// once and the members judged again (a removed peer's names stop
// resolving within seconds). It reports whether the addresses changed, so
// the host record must be re-signed.
func (a *Agent) interfaceChanged(p *parts, ev wg.Event) bool {
	conf := a.conf.Load()
	if ev.Err != nil {
		a.log.Warn("mesh interface unreadable", "interface", conf.Interface, "err", ev.Err)
		return false
	}
	addrsChanged, seeds, rerouted := a.tunnel.update(ev.Interface, conf.Ports.Gossip)
	if len(rerouted) > 0 {
		a.log.Info("WireGuard routes changed; checking the hosts there again", "prefixes", rerouted)
		p.prober.Recheck(rerouted)
		p.node.RoutesChanged()
	}
	if len(seeds) > 0 {
		a.log.Info("new WireGuard peers; joining them", "seeds", seeds)
		p.node.AddSeeds(seeds...)
	}
	return addrsChanged
}

// applyNetworks makes the store's networks the configured ones after a
// reload: a network joined is bootstrapped from its sources, one left is
// dropped with its records.
func (a *Agent) applyNetworks(ctx context.Context, node *mesh.Node) {
	nets := a.conf.Load().Nets
	var have []crdt.PublicKey
	a.store.Read(func(st *crdt.State) { have = st.Joined() })
	for _, n := range nets {
		if slices.Contains(have, n.ID) {
			continue
		}
		a.store.Join(n.ID)
		a.log.Info("joined network", "network", n.Label)
		for _, u := range n.Bootstrap {
			go func() {
				if err := node.Bootstrap(ctx, u); err != nil {
					a.log.Info("bootstrap of a newly joined network failed; anti-entropy will bring its records", "url", u, "err", err)
				}
			}()
		}
	}
	for _, id := range have {
		if !slices.ContainsFunc(nets, func(n Joined) bool { return n.ID == id }) {
			a.store.Leave(id)
			a.log.Info("left network", "network", id.Short())
		}
	}
	node.SyncNow()
}
