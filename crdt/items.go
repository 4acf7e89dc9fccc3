package crdt

import (
	"bytes"
	"cmp"
	"slices"
	"strings"
	"time"
)

// Reading namespaces: what a key holds, resolved by the namespace's policy,
// for consumers that know nothing of policies' internals (the control
// socket, the files view, DNS). Like the view, this is a pure function of
// the state and the clock; it applies the settings and the clock exactly as
// Prune does, so reading before or after a Prune gives the same items.

// Item is one resolved entry.
type Item struct {
	Hash   Hash
	Writer PublicKey
	Key    string
	Time   time.Time // the writer's time
	Op     Op        // OpDelete only as the winning write of a deleted lww key
	Value  []byte    // must not be modified
	Seq    uint64    // log entries

	// First-writer-wins namespaces: where the entry stands in the contest
	// for its key.
	Standing   Standing
	Attested   bool      // at least one attestation by a trusted attestor
	AttestedAt time.Time // the earliest attested time (if Attested)
	By         Attestor  // who attested it
	// WriterLive: the writer's host is live, or the entry does not depend
	// on it (admin and keys namespaces, the admin's entries).
	WriterLive bool
}

// Standing says how a first-writer-wins entry stands in the contest for its
// key.
type Standing string

// The standings of a first-writer-wins entry.
const (
	StandingHolds       Standing = "holds"         // it decides the key
	StandingLater       Standing = "later"         // active, but attested after the holder
	StandingUnattested  Standing = "unattested"    // no trusted attestation yet: inactive
	StandingHostNotLive Standing = "host-not-live" // its writer's host is not live: inactive
)

// KeyItems is what one key of a namespace holds.
type KeyItems struct {
	// Owner is the writer whose key-space holds Key in an owner
	// namespace; zero otherwise.
	Owner PublicKey
	Key   string
	// Deleted: in an lww namespace the latest write is a delete (Items
	// holds that delete, so readers see who deleted it and when).
	Deleted bool
	// Items, by policy: lww, the latest write; fww, every writer's
	// contending entry, the holder (if any) first, then the others as they
	// stand; gset and orset, the live elements (adds) ordered by value,
	// writer and time; log, the entries in the order (time, writer, seq).
	Items []Item
}

// NamespaceItems is the resolved content of one namespace.
type NamespaceItems struct {
	Network   PublicKey
	Namespace Namespace
	Keys      []KeyItems // sorted by (Owner, Key)
	// ValidUntil is the earliest time the items change by themselves (an
	// entry decays, a writer's host stops being live); recompute then at the
	// latest. Zero if nothing will.
	ValidUntil time.Time
}

// Get returns what key holds (in owner's key-space, for owner namespaces;
// owner is ignored otherwise), or nil.
func (v *NamespaceItems) Get(owner PublicKey, key string) *KeyItems {
	if v.Namespace.Writers != WritersOwner {
		owner = PublicKey{}
	}
	i, ok := slices.BinarySearchFunc(v.Keys, groupKey{owner, key}, func(k KeyItems, g groupKey) int { return compareGroup(groupKey{k.Owner, k.Key}, g) })
	if !ok {
		return nil
	}
	return &v.Keys[i]
}

// Current returns a key's value as a register sees it: the winning put of
// an lww key, or the holder of an fww key. False for deleted or unheld
// keys, and in sets and logs.
func (v *NamespaceItems) Current(owner PublicKey, key string) (Item, bool) {
	k := v.Get(owner, key)
	if k == nil || len(k.Items) == 0 || k.Deleted {
		return Item{}, false
	}
	switch it := k.Items[0]; v.Namespace.Policy {
	case PolicyLWW:
		return it, true
	case PolicyFWW:
		return it, it.Standing == StandingHolds
	}
	return Item{}, false
}

type groupKey struct {
	owner PublicKey
	key   string
}

func compareGroup(a, b groupKey) int {
	if c := a.owner.Compare(b.owner); c != 0 {
		return c
	}
	return strings.Compare(a.key, b.key)
}

// Namespaces lists the namespaces network id's settings declare.
func (s *State) Namespaces(id PublicKey) []Namespace {
	n := s.nets[id]
	if n == nil || n.settings == nil {
		return nil
	}
	return slices.Clone(n.settings.Settings().Namespaces)
}

// Namespace returns the declaration of namespace name in network id's
// settings, or nil.
func (s *State) Namespace(id PublicKey, name string) *Namespace {
	n := s.nets[id]
	if n == nil || n.settings == nil {
		return nil
	}
	if ns := n.settings.Settings().Namespace(name); ns != nil {
		c := *ns
		return &c
	}
	return nil
}

// Items resolves namespace name of network id at now. Nil if the network
// is not joined or its settings do not declare the namespace.
func (s *State) Items(id PublicKey, name string, now time.Time) *NamespaceItems {
	decl := s.Namespace(id, name)
	if decl == nil {
		return nil
	}
	n := s.nets[id]
	out := &NamespaceItems{Network: id, Namespace: *decl}
	sp := n.spaces[spaceID{name: name, policy: decl.Policy}]
	if sp == nil {
		return out
	}
	until := func(t time.Time) {
		if t.After(now) && (out.ValidUntil.IsZero() || t.Before(out.ValidUntil)) {
			out.ValidUntil = t
		}
	}
	groups := map[groupKey][]*Record{}
	for _, w := range sp.sortedWriters() {
		b := sp.budgets[w]
		for _, r := range b.recs[n.keptFrom(sp, b, decl, now):] {
			if !n.current(sp, decl, r, now) {
				continue
			}
			until(n.entryEnd(decl, r.Entry()))
			if r.Entry().IsTombstone() {
				continue // tombstones are not items: the adds they removed are gone
			}
			g := groupKey{key: r.Entry().Key}
			if decl.Writers == WritersOwner {
				g.owner = r.Entry().Writer
			}
			groups[g] = append(groups[g], r)
		}
	}
	for g, recs := range groups {
		k := KeyItems{Owner: g.owner, Key: g.key}
		switch decl.Policy {
		case PolicyLWW:
			w := slices.MaxFunc(recs, compareEntries)
			k.Deleted = w.Entry().Op == OpDelete
			k.Items = []Item{itemOf(w)}
		case PolicyFWW:
			k.Items = n.contest(decl, recs, now, until)
			if len(k.Items) == 0 {
				continue
			}
		case PolicyGSet, PolicyORSet:
			for _, r := range recs {
				k.Items = append(k.Items, itemOf(r))
			}
			slices.SortFunc(k.Items, func(a, b Item) int {
				if c := bytes.Compare(a.Value, b.Value); c != 0 {
					return c
				}
				if c := a.Writer.Compare(b.Writer); c != 0 {
					return c
				}
				if c := a.Time.Compare(b.Time); c != 0 {
					return c
				}
				return a.Hash.Compare(b.Hash)
			})
		case PolicyLog:
			for _, r := range recs {
				k.Items = append(k.Items, itemOf(r))
			}
			slices.SortFunc(k.Items, compareLog)
		}
		out.Keys = append(out.Keys, k)
	}
	slices.SortFunc(out.Keys, func(a, b KeyItems) int { return compareGroup(groupKey{a.Owner, a.Key}, groupKey{b.Owner, b.Key}) })
	return out
}

// compareLog is the one order in which readers see a log: (time, writer,
// seq).
func compareLog(a, b Item) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := a.Writer.Compare(b.Writer); c != 0 {
		return c
	}
	return cmp.Compare(a.Seq, b.Seq)
}

func itemOf(r *Record) Item {
	e := r.Entry()
	return Item{Hash: r.hash, Writer: e.Writer, Key: e.Key, Time: e.Time, Op: e.Op, Value: e.Value, Seq: e.Seq, WriterLive: true}
}

// contest decides a first-writer-wins key: among the active puts (attested
// by a trusted attestor, writer live), the earliest attested time wins;
// equal times go to the smaller hash. The writer's own time never counts.
// A writer's delete withdraws it from the contest.
func (n *netState) contest(decl *Namespace, recs []*Record, now time.Time, until func(time.Time)) []Item {
	var items []Item
	for _, r := range recs {
		if r.Entry().Op != OpPut {
			continue
		}
		it := itemOf(r)
		for _, a := range n.byClaim[r.hash] {
			if n.trust.Trusts(a.at.By) {
				it.Attested, it.AttestedAt, it.By = true, a.at.Time, a.at.By
				break
			}
		}
		if n.hostBound(decl, r.Entry()) {
			h := n.host(r.Entry().Writer)
			it.WriterLive = h != nil && !n.expired(h.Host(), now)
			if it.WriterLive {
				until(h.Host().Heartbeat.Add(n.hostTTL()))
			}
		}
		switch {
		case !it.Attested:
			it.Standing = StandingUnattested
		case !it.WriterLive:
			it.Standing = StandingHostNotLive
		default:
			it.Standing = StandingLater
		}
		items = append(items, it)
	}
	rank := map[Standing]int{StandingLater: 0, StandingHostNotLive: 1, StandingUnattested: 2}
	slices.SortFunc(items, func(a, b Item) int {
		if c := rank[a.Standing] - rank[b.Standing]; c != 0 {
			return c
		}
		if a.Attested {
			if c := a.AttestedAt.Compare(b.AttestedAt); c != 0 {
				return c
			}
		} else if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return a.Hash.Compare(b.Hash)
	})
	if len(items) > 0 && items[0].Standing == StandingLater {
		items[0].Standing = StandingHolds
	}
	return items
}

// entryEnd is the last instant a live entry lives, given the state now: its
// lifetime, and for a host-bound entry the later of its writer's host
// record's end and one host TTL after its time.
func (n *netState) entryEnd(decl *Namespace, e *Entry) time.Time {
	var end time.Time
	if decl.Lifetime > 0 {
		end = e.Time.Add(decl.Lifetime)
	}
	if n.hostBound(decl, e) {
		hostEnd := e.Time.Add(n.hostTTL())
		if h := n.host(e.Writer); h != nil {
			if t := h.Host().Heartbeat.Add(n.hostTTL()); t.After(hostEnd) {
				hostEnd = t
			}
		}
		if end.IsZero() || hostEnd.Before(end) {
			end = hostEnd
		}
	}
	return end
}

// NamespaceVersion is a comparable summary of everything Items reads for one
// namespace: the settings, the namespace's entries and their attestations,
// and (for namespaces whose entries depend on their writers' hosts) the
// host records. While it stays equal, Items changes only at its ValidUntil.
type NamespaceVersion struct {
	Settings Hash
	Entries  Fingerprint
	Hosts    Fingerprint
}

// NamespaceVersion returns the change signal of namespace name of network
// id; the zero value if it is not declared.
func (s *State) NamespaceVersion(id PublicKey, name string) NamespaceVersion {
	decl := s.Namespace(id, name)
	if decl == nil {
		return NamespaceVersion{}
	}
	n := s.nets[id]
	v := NamespaceVersion{Settings: n.settings.hash}
	if sp := n.spaces[spaceID{name: name, policy: decl.Policy}]; sp != nil {
		v.Entries = sp.fp
	}
	if decl.Writers == WritersMembers || decl.Writers == WritersOwner {
		v.Hosts = n.hostFP
	}
	return v
}

// EntriesOf lists the entry records network id holds for namespace name
// (under any policy), by hash: the raw records, for export and debugging.
func (s *State) EntriesOf(id PublicKey, name string) []*Record {
	n := s.nets[id]
	if n == nil {
		return nil
	}
	var out []*Record
	for sid, sp := range n.spaces {
		if sid.name != name {
			continue
		}
		for _, b := range sp.budgets {
			out = append(out, b.recs...)
		}
	}
	slices.SortFunc(out, func(a, b *Record) int { return a.hash.Compare(b.hash) })
	return out
}

// NextSeq returns the sequence number for writer's next entry in log
// namespace name: one more than the highest the state holds, or 0. (Entries
// already pruned are not counted; they are gone everywhere by then.)
func (s *State) NextSeq(id PublicKey, name string, writer PublicKey) uint64 {
	n := s.nets[id]
	if n == nil {
		return 0
	}
	sp := n.spaces[spaceID{name: name, policy: PolicyLog}]
	if sp == nil {
		return 0
	}
	var next uint64
	if b := sp.budgets[writer]; b != nil {
		for _, r := range b.recs {
			next = max(next, r.Entry().Seq+1)
		}
	}
	return next
}
