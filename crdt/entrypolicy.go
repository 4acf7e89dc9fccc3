package crdt

import (
	"slices"
	"time"
)

// The policy side of namespace entries: what the settings and the clock
// say about them. Ingestion (checkEntry), Prune (pruneEntries) and reading
// (items.go) all decide through entryLive, current and keptFrom, so the
// three always agree: a record Prune would drop is refused, and is not read.
//
// Every check here is monotone along the orders the join and the limits
// use, which is what makes Prune commute with the join: a register's newer
// entry of a slot shadows the older ones only while it is live itself; a
// tombstone dies only when the adds it removes are dead too (they are dated
// no later, and by its target or the admin); and entries leave a writer's
// limit oldest first or all together.

// checkEntry applies the settings and the clock to a new entry, cheapest
// check first (the signature is checked by the caller, last). superseded
// means it is valid but would not count next to what the state holds: an
// add that a held tombstone removes, or an older entry of a slot that holds
// a newer live one.
func (n *netState) checkEntry(rec *Record, now time.Time) (superseded bool, err error) {
	e := rec.Entry()
	var decl *Namespace
	if n.settings != nil {
		decl = n.settings.Settings().Namespace(e.Namespace)
	}
	switch {
	case decl == nil:
		return false, reject(rec, ReasonNamespaceNotDeclared, "namespace %q is not declared in the network's settings", e.Namespace)
	case decl.Policy != e.Policy:
		return false, reject(rec, ReasonWrongPolicy, "written under policy %s, namespace %s has policy %s", e.Policy, e.Namespace, decl.Policy)
	}
	if r := n.writerRefusal(decl, e.Writer); r != "" {
		return false, reject(rec, r, "namespace %s (writers %s) does not let %s write", e.Namespace, decl.Writers, e.Writer.Short())
	}
	if len(e.Value) > decl.ValueLimit() {
		return false, reject(rec, ReasonOverLimit, "value of %d bytes, namespace %s allows %d", len(e.Value), e.Namespace, decl.ValueLimit())
	}
	if entryExpired(decl, e, now) {
		return false, reject(rec, ReasonExpired, "dated %s, older than namespace %s's lifetime %s", e.Time.Format(time.RFC3339), e.Namespace, decl.Lifetime)
	}
	if n.writerGone(decl, e, now) {
		return false, reject(rec, ReasonExpired, "dated %s and its writer has no live host record", e.Time.Format(time.RFC3339))
	}
	if e.Op == OpDelete && !e.Policy.allowsDelete() {
		return false, reject(rec, ReasonDeleteNotAllowed, "policy %s has no deletes", e.Policy)
	}
	if e.IsTombstone() && e.Target != e.Writer && e.Writer != n.id {
		return false, reject(rec, ReasonMayNotDelete, "%s may delete only its own adds, not %s's (only the admin may)", e.Writer.Short(), e.Target.Short())
	}
	sp := n.spaces[spaceOf(e)]
	if sp.removed(rec) || n.shadowed(sp, decl, rec, now) {
		return true, nil
	}
	if !n.fits(sp, decl, rec, now) {
		return false, reject(rec, ReasonOverLimit, "%s already holds %d newer entries in namespace %s", e.charged().Short(), decl.EntryLimit(), e.Namespace)
	}
	return false, nil
}

// declared returns the namespace declaration that admits entries of space
// id: declared in the held settings, under the same policy. Nil otherwise.
func (n *netState) declared(id spaceID) *Namespace {
	if n.settings == nil {
		return nil
	}
	ns := n.settings.Settings().Namespace(id.name)
	if ns == nil || ns.Policy != id.policy {
		return nil
	}
	return ns
}

// writerRefusal says why decl does not let w write, or "". The network's
// admin key writes everywhere; other writers must be admitted by the
// network (as hosts are) and by the namespace.
func (n *netState) writerRefusal(decl *Namespace, w PublicKey) Reason {
	if w == n.id {
		return ""
	}
	if r := n.policy(w); r != "" {
		return r
	}
	switch decl.Writers {
	case WritersAdmin:
		return ReasonNotWriter
	case WritersKeys:
		if _, ok := slices.BinarySearchFunc(decl.WriterKeys, w, PublicKey.Compare); !ok {
			return ReasonNotWriter
		}
	}
	return ""
}

// hostBound reports whether an entry lives only while its writer's host
// does: entries of members and owner namespaces, except the admin's.
func (n *netState) hostBound(decl *Namespace, e *Entry) bool {
	return e.Writer != n.id && (decl.Writers == WritersMembers || decl.Writers == WritersOwner)
}

// entryExpired: past the namespace's lifetime.
func entryExpired(decl *Namespace, e *Entry, now time.Time) bool {
	return decl.Lifetime > 0 && e.Time.Add(decl.Lifetime).Before(now)
}

// writerGone: a host-bound entry whose writer has no live host record and
// which is older than one host TTL (its host record may still be on its
// way), exactly as for claims.
func (n *netState) writerGone(decl *Namespace, e *Entry, now time.Time) bool {
	if !n.hostBound(decl, e) {
		return false
	}
	if h := n.host(e.Writer); h != nil && !n.expired(h.Host(), now) {
		return false
	}
	return e.Time.Add(n.hostTTL()).Before(now)
}

// entryLive reports whether the settings and the clock let the state hold
// rec (the per-writer limit aside): its namespace declared with its policy,
// its writer admitted, its value within the bound, not expired, its
// writer's host not gone. Every check of checkEntry that depends on the
// settings or the clock is here.
func (n *netState) entryLive(decl *Namespace, rec *Record, now time.Time) bool {
	e := rec.Entry()
	return decl != nil && decl.Policy == e.Policy && n.writerRefusal(decl, e.Writer) == "" &&
		len(e.Value) <= decl.ValueLimit() && !entryExpired(decl, e, now) && !n.writerGone(decl, e, now)
}

// shadowed reports whether a newer live entry of rec's slot holds the slot
// (lww, fww: the writer's key; log: the writer's seq), so that rec is no
// longer current.
func (n *netState) shadowed(sp *space, decl *Namespace, rec *Record, now time.Time) bool {
	if sp == nil {
		return false
	}
	k, ok := slotOf(rec.Entry())
	if !ok {
		return false
	}
	list := sp.slots[k]
	for i := len(list) - 1; i >= 0 && compareEntries(list[i], rec) > 0; i-- {
		if n.entryLive(decl, list[i], now) {
			return true
		}
	}
	return false
}

// current reports whether rec counts: live, and not shadowed in its slot.
func (n *netState) current(sp *space, decl *Namespace, rec *Record, now time.Time) bool {
	return n.entryLive(decl, rec, now) && !n.shadowed(sp, decl, rec, now)
}

// keptFrom applies a namespace's limit to one budget: walking from the
// newest, a current entry is kept while the weight of the newer current
// entries is below the limit. Entries below the returned index are beyond
// it (dead ones there too). Because the cut depends only on newer entries,
// an entry older than one beyond the limit is beyond it as well, and an
// entry's standing does not change when older entries come or go.
func (n *netState) keptFrom(sp *space, b *budget, decl *Namespace, now time.Time) int {
	limit := decl.EntryLimit()
	if b.weight <= limit {
		// Even counting dead entries, no entry has as much newer weight
		// as the limit.
		return 0
	}
	newer := 0
	for i := len(b.recs) - 1; i >= 0; i-- {
		r := b.recs[i]
		if !n.current(sp, decl, r, now) {
			continue
		}
		if newer >= limit {
			return i + 1
		}
		newer += r.Entry().weight()
	}
	return 0
}

// fits reports whether rec, not yet held, would be within its writer's
// limit: the weight of the current entries newer than it is below the
// limit.
func (n *netState) fits(sp *space, decl *Namespace, rec *Record, now time.Time) bool {
	if sp == nil {
		return true
	}
	b := sp.budgets[rec.Entry().charged()]
	limit := decl.EntryLimit()
	if b == nil || b.weight < limit {
		return true
	}
	i, _ := slices.BinarySearchFunc(b.recs, rec, compareEntries)
	newer := 0
	for _, r := range b.recs[i:] {
		if n.current(sp, decl, r, now) {
			newer += r.Entry().weight()
			if newer >= limit {
				return false
			}
		}
	}
	return true
}

// settle applies the policy to a space after rec joined it: the older
// entries of its slot are shadowed now, and its writer's oldest entries may
// be beyond the limit.
func (n *netState) settle(sp *space, decl *Namespace, rec *Record, now time.Time) {
	if k, ok := slotOf(rec.Entry()); ok {
		for _, r := range slices.Clone(sp.slots[k]) {
			if compareEntries(r, rec) < 0 {
				n.dropEntry(sp, r, nil)
			}
		}
	}
	n.trim(sp, rec.Entry().charged(), decl, now, nil)
}

// trim drops the entries of one budget that are beyond the limit.
func (n *netState) trim(sp *space, charged PublicKey, decl *Namespace, now time.Time, dropped []*Record) []*Record {
	b := sp.budgets[charged]
	if b == nil {
		return dropped
	}
	cut := n.keptFrom(sp, b, decl, now)
	for _, r := range slices.Clone(b.recs[:cut]) {
		dropped = n.dropEntry(sp, r, dropped)
	}
	return dropped
}

// pruneEntries drops the entries the settings and the clock no longer
// admit, then those shadowed in their slot, then those beyond their
// writer's limit.
func (n *netState) pruneEntries(now time.Time, dropped []*Record) []*Record {
	for _, sp := range n.sortedSpaces() {
		decl := n.declared(sp.id)
		for _, w := range sp.sortedWriters() {
			b := sp.budgets[w]
			if slices.ContainsFunc(b.recs, func(r *Record) bool { return !n.entryLive(decl, r, now) }) {
				for _, r := range slices.Clone(b.recs) {
					if !n.entryLive(decl, r, now) {
						dropped = n.dropEntry(sp, r, dropped)
					}
				}
			}
			if slices.ContainsFunc(b.recs, func(r *Record) bool { return n.shadowed(sp, decl, r, now) }) {
				for _, r := range slices.Clone(b.recs) {
					if n.shadowed(sp, decl, r, now) {
						dropped = n.dropEntry(sp, r, dropped)
					}
				}
			}
			if decl != nil {
				dropped = n.trim(sp, w, decl, now, dropped)
			}
		}
		n.dropEmpty(sp)
	}
	return dropped
}
