package agent

import (
	"bytes"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
)

// ownRecords keeps this node's own records in the mesh: a fresh host
// record in every joined network, a claim for every configured name, a
// countersignature on every claim it has not witnessed yet (if it is a
// witness), and the list of its claims that still need a timestamp
// authority's token (for the stamper).
type ownRecords struct {
	key     crdt.PrivateKey
	store   *mesh.Store
	conf    func() *live
	tunnel  *tunnel
	log     *slog.Logger
	publish func(...*crdt.Record)
	// stamp asks the stamper for a round (a claim was just made).
	stamp func()
	// synced reports whether the mesh has synced with a peer.
	synced func() bool

	// claimsFrom: claims wait for a first sync (or 10 s), so that after a
	// lost state file the node's old claims, with their old attestations,
	// come back from the mesh instead of being made anew.
	claimsFrom time.Time

	// writes dates this node's entries (shared with the control API's
	// writes).
	writes *writeClock

	mu      sync.Mutex
	hostRec map[crdt.PublicKey]*crdt.Record // the current host record per network
	// fileErr is the last error reading each value file (logged once).
	fileErr map[string]string
}

// claimsWait is how long claims wait for a first sync before they are
// made anyway (a mesh nobody answers in).
var claimsWait = 10 * time.Second

// start sets when claims may be made: at once for a node with nobody to
// sync with (no WireGuard peer, no bootstrap source), else after a first
// sync (the loop refreshes the moment it comes) or claimsWait.
func (o *ownRecords) start(now time.Time) {
	o.claimsFrom = now.Add(claimsWait)
	alone := len(o.tunnel.peers()) == 0
	for _, n := range o.conf().Nets {
		alone = alone && len(n.Bootstrap) == 0
	}
	if alone {
		o.claimsFrom = now
	}
}

// refresh re-signs the host records that are due and makes the missing
// claims; it returns when it is next due.
func (o *ownRecords) refresh(now time.Time) time.Time {
	conf := o.conf()
	next := now.Add(time.Hour)
	for _, n := range conf.Nets {
		if at := o.refreshHost(conf, n.ID, now); at.Before(next) {
			next = at
		}
		if o.synced() || !now.Before(o.claimsFrom) {
			o.ensureClaims(n, now)
			if at := o.ensurePublished(n, now); at.Before(next) {
				next = at
			}
		} else if o.claimsFrom.Before(next) {
			next = o.claimsFrom
		}
	}
	return next
}

// publishedValue reads what p says to publish.
func (o *ownRecords) publishedValue(p Publish) ([]byte, bool) {
	if p.ValueFile == "" {
		return []byte(p.Value), true
	}
	b, err := os.ReadFile(p.ValueFile)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		if o.fileErr[p.ValueFile] != err.Error() {
			o.fileErr[p.ValueFile] = err.Error()
			o.log.Warn("reading a value to publish; the entry waits for it", "file", p.ValueFile, "namespace", p.Namespace, "key", p.Key, "err", err)
		}
		return nil, false
	}
	delete(o.fileErr, p.ValueFile)
	return b, true
}

// ensurePublished writes the configured entries of network n that are
// missing, changed, or half-way through their lifetime, and returns when
// to look again (value files are read again every 30 s).
func (o *ownRecords) ensurePublished(n Joined, now time.Time) time.Time {
	next := now.Add(time.Hour)
	self := o.key.Public()
	for _, p := range n.Publish {
		if p.ValueFile != "" {
			next = earlier(next, now.Add(30*time.Second))
		}
		value, ok := o.publishedValue(p)
		if !ok {
			continue
		}
		var entry *crdt.Entry
		var due time.Time
		o.store.Read(func(st *crdt.State) {
			decl := st.Namespace(n.ID, p.Namespace)
			if decl == nil {
				return // not declared (yet): the settings may bring it
			}
			have := false
			switch decl.Policy {
			case crdt.PolicyLog:
				o.log.Warn("a log namespace keeps no value to publish; configure an lww, fww or set namespace", "namespace", p.Namespace)
				return
			case crdt.PolicyORSet:
				if v := st.Items(n.ID, p.Namespace, now); v != nil {
					if k := v.Get(self, p.Key); k != nil {
						for _, it := range k.Items {
							if it.Writer == self && bytes.Equal(it.Value, value) {
								have, due = true, laterOf(due, halfLife(decl, it.Time))
							}
						}
					}
				}
			default: // lww, fww: this node's own latest write of the key; gset: its elements
				var latest *crdt.Entry
				for _, r := range st.EntriesOf(n.ID, p.Namespace) {
					e := r.Entry()
					if e.Writer != self || e.Key != p.Key || e.Policy != decl.Policy {
						continue
					}
					if decl.Policy == crdt.PolicyGSet {
						if bytes.Equal(e.Value, value) {
							have, due = true, laterOf(due, halfLife(decl, e.Time))
						}
						continue
					}
					if latest == nil || e.Time.After(latest.Time) {
						latest = e
					}
				}
				if latest != nil && latest.Op == crdt.OpPut && bytes.Equal(latest.Value, value) {
					have, due = true, halfLife(decl, latest.Time)
				}
			}
			if have && (due.IsZero() || now.Before(due)) {
				return
			}
			entry = &crdt.Entry{Network: n.ID, Namespace: p.Namespace, Writer: self, Key: p.Key, Policy: decl.Policy,
				Op: crdt.OpPut, Value: value, Time: o.writes.next(now)}
			due = halfLife(decl, entry.Time)
		})
		if !due.IsZero() {
			next = earlier(next, due)
		}
		if entry == nil {
			continue
		}
		rec, err := crdt.SignEntry(*entry, o.key)
		if err != nil {
			o.log.Error("signing an entry to publish", "namespace", p.Namespace, "key", p.Key, "err", err)
			continue
		}
		o.log.Info("publishing an entry", "network", n.Label, "namespace", p.Namespace, "key", p.Key)
		o.publish(rec)
	}
	return next
}

// halfLife is when an entry written at t should be written again: half
// way through its namespace's lifetime (zero: never).
func halfLife(decl *crdt.Namespace, t time.Time) time.Time {
	if decl.Lifetime <= 0 {
		return time.Time{}
	}
	return t.Add(decl.Lifetime / 2)
}

func laterOf(a, b time.Time) time.Time {
	if a.IsZero() || b.After(a) {
		return b
	}
	return a
}

// refreshHost re-signs the host record when it is due or the addresses
// changed, and returns when it is next due.
func (o *ownRecords) refreshHost(conf *live, id crdt.PublicKey, now time.Time) time.Time {
	addrs := o.tunnel.ownAddrs()
	ttl := crdt.DefaultHostTTL
	o.mu.Lock()
	cur := o.hostRec[id]
	o.mu.Unlock()
	o.store.Read(func(st *crdt.State) {
		if s := st.Settings(id); s != nil {
			ttl = s.Settings().HostTTL
		}
		if cur == nil {
			cur = st.Host(id, o.key.Public())
		}
	})
	every := conf.heartbeat(ttl)
	if cur != nil && slices.Equal(cur.Host().Addresses, addrs) && now.Sub(cur.Host().Heartbeat) < every {
		return cur.Host().Heartbeat.Add(every)
	}
	rec, err := crdt.SignHost(crdt.Host{Network: id, Node: o.key.Public(), Heartbeat: now, Addresses: addrs,
		GossipPort: uint16(conf.Ports.Gossip), HTTPPort: uint16(conf.Ports.HTTP), DNSPort: uint16(conf.Ports.DNS)}, o.key)
	if err != nil {
		o.log.Error("signing the host record", "err", err)
		return now.Add(time.Minute)
	}
	o.publish(rec)
	o.mu.Lock()
	o.hostRec[id] = rec
	o.mu.Unlock()
	return now.Add(every)
}

func (o *ownRecords) ensureClaims(n Joined, now time.Time) {
	var have []string
	o.store.Read(func(st *crdt.State) {
		for _, c := range st.Claims(n.ID, o.key.Public()) {
			have = append(have, c.Claim().Name)
		}
	})
	for _, name := range n.Hostnames {
		if slices.Contains(have, name) {
			continue
		}
		rec, err := crdt.SignClaim(crdt.Claim{Network: n.ID, Node: o.key.Public(), Name: name, Created: now}, o.key)
		if err != nil {
			o.log.Error("signing a claim", "name", name, "err", err)
			continue
		}
		o.log.Info("claiming a name", "name", name, "network", n.Label)
		o.publish(rec)
		o.stamp()
	}
}

// witness countersigns, as a witness, the claims the state holds and this
// node has not signed yet. Every claim in the state was verified.
func (o *ownRecords) witness(now time.Time) {
	var recs []*crdt.Record
	o.store.Read(func(st *crdt.State) {
		for _, id := range st.Joined() {
			for _, c := range st.Unwitnessed(id, o.key.Public()) {
				if r, err := crdt.WitnessClaim(id, c.Hash(), now, o.key); err == nil {
					recs = append(recs, r)
				}
			}
		}
	})
	if len(recs) > 0 {
		o.log.Debug("witnessing claims", "count", len(recs))
		o.publish(recs...)
	}
}

// pendingStamps lists this node's claims and first-writer-wins entries
// without an RFC 3161 token, in networks whose settings pin a TSA. The
// stamper calls it from its own goroutine.
func (o *ownRecords) pendingStamps() []mesh.StampJob {
	local := o.conf().TSAURLs
	var jobs []mesh.StampJob
	o.store.Read(func(st *crdt.State) {
		for _, id := range st.Joined() {
			s := st.Settings(id)
			if s == nil || len(s.Settings().TSARoots) == 0 {
				continue
			}
			urls := append(slices.Clone(local), s.Settings().TSAURLs...)
			if len(urls) == 0 {
				continue
			}
			for _, r := range st.Unstamped(id, o.key.Public()) {
				jobs = append(jobs, mesh.StampJob{Network: id, Claim: r.Hash(), URLs: urls, Trust: st.Trust(id)})
			}
		}
	})
	return jobs
}
