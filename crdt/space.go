package crdt

import (
	"slices"
	"strings"
)

// This file holds a network's namespace entries and the join rules of each
// merge policy (putEntry), which use nothing but the records themselves.
// Who may write, decay, limits and which entry of a slot is current depend
// on the settings and the clock: entrypolicy.go applies them.
//
// The join keeps every entry except the adds of an add/remove set that a
// held tombstone removes. A register's or log's older entries in a slot are
// not dropped by the join but by policy (shadowed by a newer live entry):
// whether the newer entry lives can depend on the settings (its value may
// be over a bound the admin lowers), and an older entry dropped by the join
// would not come back when the newer one goes.

// spaceID names the entries of one namespace written under one policy. The
// join keeps entries of the same namespace written under different policies
// apart (the admin changed the policy); the policy no longer declared is
// dropped by Prune.
type spaceID struct {
	name   string
	policy Policy
}

// slotKey is what a register or log entry replaces: lww and fww keep each
// writer's latest live entry per key, a log one per (writer, seq).
type slotKey struct {
	writer PublicKey
	key    string
	seq    uint64
}

type space struct {
	id spaceID
	// slots lists the entries of each slot (lww, fww, log), sorted by
	// compareEntries. After Prune, one per slot.
	slots map[slotKey][]*Record
	// removedBy lists, for each add hash a held tombstone names, those
	// tombstones (orset): an add they cover is refused while they are held.
	removedBy map[Hash][]*Record
	// budgets holds every entry of the space, filed under the writer whose
	// limit it counts against.
	budgets map[PublicKey]*budget
	// fp summarizes the space's entries and their attestations.
	fp Fingerprint
}

// budget is one writer's entries in a space, sorted by compareEntries.
type budget struct {
	recs   []*Record
	weight int // sum of the entries' weights
}

// compareEntries is the order of entries for registers, logs and limits:
// by time, a put before a delete of the same time, then by hash. A
// tombstone thus comes after every add it removes (they are dated no later).
func compareEntries(a, b *Record) int {
	if c := a.Entry().Time.Compare(b.Entry().Time); c != 0 {
		return c
	}
	if a.Entry().Op != b.Entry().Op {
		return int(a.Entry().Op) - int(b.Entry().Op)
	}
	return a.hash.Compare(b.hash)
}

func slotOf(e *Entry) (slotKey, bool) {
	switch e.Policy {
	case PolicyLWW, PolicyFWW:
		return slotKey{writer: e.Writer, key: e.Key}, true
	case PolicyLog:
		return slotKey{writer: e.Writer, seq: e.Seq}, true
	}
	return slotKey{}, false
}

// covers reports whether tombstone t removes add a: a is one of the adds t
// lists, by t's target, under t's key, and not dated after t (a delete wins
// over the adds it has seen, never over a later add).
func covers(t *Entry, a *Record) bool {
	if a.kind != KindEntry {
		return false
	}
	ae := a.Entry()
	if ae.Policy != PolicyORSet || ae.Op != OpPut || ae.Namespace != t.Namespace ||
		ae.Writer != t.Target || ae.Key != t.Key || ae.Time.After(t.Time) {
		return false
	}
	_, listed := slices.BinarySearchFunc(t.Removes, a.hash, Hash.Compare)
	return listed
}

func (sp *space) covered(a *Record) bool {
	for _, t := range sp.removedBy[a.hash] {
		if covers(t.Entry(), a) {
			return true
		}
	}
	return false
}

// spaceFor returns the space of id, made if need be.
func (n *netState) spaceFor(id spaceID) *space {
	sp := n.spaces[id]
	if sp == nil {
		sp = &space{id: id, slots: map[slotKey][]*Record{}, removedBy: map[Hash][]*Record{}, budgets: map[PublicKey]*budget{}}
		n.spaces[id] = sp
	}
	return sp
}

func spaceOf(e *Entry) spaceID { return spaceID{name: e.Namespace, policy: e.Policy} }

// removed reports whether the join would not keep rec next to what the
// space holds: an add that a held tombstone removes.
func (sp *space) removed(rec *Record) bool {
	return sp != nil && rec.Entry().Policy == PolicyORSet && rec.Entry().Op == OpPut && sp.covered(rec)
}

// putEntry adds a verified entry by the join rules of its policy alone.
func (n *netState) putEntry(rec *Record) Outcome {
	e := rec.Entry()
	sp := n.spaceFor(spaceOf(e))
	if sp.removed(rec) {
		return Superseded
	}
	if k, ok := slotOf(e); ok {
		list := sp.slots[k]
		i, _ := slices.BinarySearchFunc(list, rec, compareEntries)
		sp.slots[k] = slices.Insert(list, i, rec)
	}
	if e.IsTombstone() {
		for _, h := range e.Removes {
			sp.removedBy[h] = append(sp.removedBy[h], rec)
			if a := n.index.get(h); a != nil && covers(e, a) {
				n.dropEntry(sp, a, nil)
			}
		}
	}
	b := sp.budgets[e.charged()]
	if b == nil {
		b = &budget{}
		sp.budgets[e.charged()] = b
	}
	i, _ := slices.BinarySearchFunc(b.recs, rec, compareEntries)
	b.recs = slices.Insert(b.recs, i, rec)
	b.weight += e.weight()
	n.index.add(rec)
	sp.fp.add(rec.hash, 1)
	return Added
}

// dropEntry removes a held entry and its attestations, appending them to
// dropped. It leaves the space in place even if empty (see dropEmpty).
func (n *netState) dropEntry(sp *space, rec *Record, dropped []*Record) []*Record {
	e := rec.Entry()
	if k, ok := slotOf(e); ok {
		list := slices.DeleteFunc(sp.slots[k], func(r *Record) bool { return r == rec })
		if len(list) == 0 {
			delete(sp.slots, k)
		} else {
			sp.slots[k] = list
		}
	}
	if e.IsTombstone() {
		for _, h := range e.Removes {
			list := slices.DeleteFunc(sp.removedBy[h], func(t *Record) bool { return t == rec })
			if len(list) == 0 {
				delete(sp.removedBy, h)
			} else {
				sp.removedBy[h] = list
			}
		}
	}
	if b := sp.budgets[e.charged()]; b != nil {
		if i, ok := slices.BinarySearchFunc(b.recs, rec, compareEntries); ok {
			b.recs = slices.Delete(b.recs, i, i+1)
			b.weight -= e.weight()
		}
		if len(b.recs) == 0 {
			delete(sp.budgets, e.charged())
		}
	}
	n.index.remove(rec.hash)
	sp.fp.add(rec.hash, -1)
	dropped = append(dropped, rec)
	return n.dropAtts(rec.hash, dropped)
}

// dropEmpty forgets a space that holds no entry any more.
func (n *netState) dropEmpty(sp *space) {
	if len(sp.budgets) == 0 {
		delete(n.spaces, sp.id)
	}
}

func (n *netState) sortedSpaces() []*space {
	out := make([]*space, 0, len(n.spaces))
	for _, sp := range n.spaces {
		out = append(out, sp)
	}
	slices.SortFunc(out, func(a, b *space) int {
		if c := strings.Compare(a.id.name, b.id.name); c != 0 {
			return c
		}
		return int(a.id.policy) - int(b.id.policy)
	})
	return out
}

func (sp *space) sortedWriters() []PublicKey {
	out := make([]PublicKey, 0, len(sp.budgets))
	for w := range sp.budgets {
		out = append(out, w)
	}
	slices.SortFunc(out, PublicKey.Compare)
	return out
}

// sortedEntries lists every held entry by hash.
func (n *netState) sortedEntries() []*Record {
	var out []*Record
	for _, sp := range n.spaces {
		for _, b := range sp.budgets {
			out = append(out, b.recs...)
		}
	}
	slices.SortFunc(out, func(a, b *Record) int { return a.hash.Compare(b.hash) })
	return out
}
