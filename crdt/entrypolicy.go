package crdt

import (
	"slices"
	"time"
)

// The policy side of namespace entries: what the settings and the clock
// say about them. Ingestion (checkEntry), Prune (pruneEntries) and reading
// (items.go) all decide through entryLive and keptFrom, so the three always
// agree: a record Prune would drop is refused, and is not read.

// checkEntry applies the settings and the clock to a new entry, cheapest
// check first (the signature is checked by the caller, last). superseded
// means the join would not keep it next to what the state holds.
func (n *netState) checkEntry(rec *Record, now time.Time) (superseded bool, err error) {
	e := rec.entry
	var decl *Namespace
	if n.settings != nil {
		decl = n.settings.settings.Namespace(e.Namespace)
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
		return false, reject(rec, ReasonMayNotDelete, "only %s's own adds, or the admin, may be deleted by %s", e.Target.Short(), e.Writer.Short())
	}
	sp := n.spaces[spaceOf(e)]
	if sp.superseded(rec) {
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
	ns := n.settings.settings.Namespace(id.name)
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
	if h := n.hosts[e.Writer]; h != nil && !n.expired(h.host, now) {
		return false
	}
	return e.Time.Add(n.hostTTL()).Before(now)
}

// entryLive reports whether the settings and the clock let the state hold
// rec (the limit aside): its namespace declared with its policy, its writer
// admitted, not expired, its writer's host not gone.
func (n *netState) entryLive(decl *Namespace, rec *Record, now time.Time) bool {
	e := rec.entry
	return decl != nil && decl.Policy == e.Policy && n.writerRefusal(decl, e.Writer) == "" &&
		!entryExpired(decl, e, now) && !n.writerGone(decl, e, now)
}

// keptFrom applies a namespace's limit to one budget: walking from the
// newest, a live entry is kept while the weight of the newer live entries is
// below the limit. Entries below the returned index are beyond it (dead
// ones there too). Because the cut depends only on newer entries, an entry
// older than one that is beyond the limit is beyond it as well, and an
// entry's standing does not change when older entries come or go.
func (n *netState) keptFrom(b *budget, decl *Namespace, now time.Time) int {
	limit := decl.EntryLimit()
	if b.weight <= limit {
		// Even counting dead entries, no entry has as much newer weight
		// as the limit.
		return 0
	}
	newer := 0
	for i := len(b.recs) - 1; i >= 0; i-- {
		r := b.recs[i]
		if !n.entryLive(decl, r, now) {
			continue
		}
		if newer >= limit {
			return i + 1
		}
		newer += r.entry.weight()
	}
	return 0
}

// fits reports whether rec, not yet held, would be within its writer's
// limit: the weight of the live entries newer than it is below the limit.
func (n *netState) fits(sp *space, decl *Namespace, rec *Record, now time.Time) bool {
	if sp == nil {
		return true
	}
	b := sp.budgets[rec.entry.charged()]
	limit := decl.EntryLimit()
	if b == nil || b.weight < limit {
		return true
	}
	i, _ := slices.BinarySearchFunc(b.recs, rec, compareEntries)
	newer := 0
	for _, r := range b.recs[i:] {
		if n.entryLive(decl, r, now) {
			newer += r.entry.weight()
			if newer >= limit {
				return false
			}
		}
	}
	return true
}

// trim drops the entries of one budget that are beyond the limit.
func (n *netState) trim(sp *space, charged PublicKey, decl *Namespace, now time.Time, dropped []*Record) []*Record {
	b := sp.budgets[charged]
	if b == nil {
		return dropped
	}
	cut := n.keptFrom(b, decl, now)
	for _, r := range slices.Clone(b.recs[:cut]) {
		dropped = n.dropEntry(sp, r, dropped)
	}
	return dropped
}

// pruneEntries drops the entries the settings and the clock no longer
// admit, then those beyond their writer's limit.
func (n *netState) pruneEntries(now time.Time, dropped []*Record) []*Record {
	for _, sp := range n.sortedSpaces() {
		decl := n.declared(sp.id)
		for _, w := range sp.sortedWriters() {
			b := sp.budgets[w]
			for _, r := range slices.Clone(b.recs) {
				if !n.entryLive(decl, r, now) {
					dropped = n.dropEntry(sp, r, dropped)
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
