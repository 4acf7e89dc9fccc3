package agent

import (
	"log/slog"
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

	mu      sync.Mutex
	hostRec map[crdt.PublicKey]*crdt.Record // the current host record per network
}

// start sets when claims may be made: at once for a node with nobody to
// sync with (no WireGuard peer, no bootstrap source), else after a first
// sync or 10 s.
func (o *ownRecords) start(now time.Time) {
	o.claimsFrom = now.Add(10 * time.Second)
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
		} else if o.claimsFrom.Before(next) {
			next = o.claimsFrom
		}
	}
	return next
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
