package crdt

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// The laws of the state, checked on random universes of records: valid and
// invalid, several settings versions that tighten and loosen policy,
// hosts old and new, conflicting claims, attestations by trusted and
// untrusted witnesses, a node over its claim limit, two networks, and
// namespaces of every policy and writers mode whose declarations change
// between settings versions, written by concurrent writers, with deletes
// racing writes, tombstones, equivocating logs, writers over their limit
// and expiring entries (laws_namespaces_test.go).

var (
	lawNow      = epoch.Add(1000 * time.Hour)
	lawAdmins   = []PrivateKey{testKey("admin"), testKey("admin2")}
	lawNodes    = []PrivateKey{testKey("n0"), testKey("n1"), testKey("n2"), testKey("n3"), testKey("n4")}
	lawWitness  = []PrivateKey{testKey("w0"), testKey("w1"), testKey("w2"), testKey("mallory")}
	lawGreedy   = testKey("greedy")
	lawNames    = []string{"a", "b", "c", "mors"}
	lawAddrPool = []string{"fd00::1", "fd00::2", "fd00::3", "10.0.0.1"}
)

func lawView() ViewConfig {
	return ViewConfig{Networks: []JoinedNetwork{{ID: lawAdmins[0].Public(), Priority: 1}, {ID: lawAdmins[1].Public(), Priority: 2}}}
}

func newLawState() *State {
	return NewState(DefaultOptions(), lawAdmins[0].Public(), lawAdmins[1].Public())
}

func minutesAgo(t *rapid.T, label string, max int) time.Time {
	return lawNow.Add(-time.Duration(rapid.IntRange(0, max).Draw(t, label)) * time.Minute)
}

func subset[T any](t *rapid.T, label string, from []T) []T {
	var out []T
	for i, x := range from {
		if rapid.Bool().Draw(t, fmt.Sprintf("%s%d", label, i)) {
			out = append(out, x)
		}
	}
	return out
}

func keysOf(ks []PrivateKey) []PublicKey {
	var out []PublicKey
	for _, k := range ks {
		out = append(out, k.Public())
	}
	return out
}

// genUniverse draws every record that may be delivered, good and bad.
func genUniverse(t *rapid.T) []*Record { return genWorld(t, false) }

// genWorld draws a universe. fixed draws one settings record per network
// and one live host record per node, so that every state holding them
// admits the same records: what differs between such states is only what
// the join and the limits do.
func genWorld(t *rapid.T, fixed bool) []*Record {
	var recs []*Record
	for ni, admin := range lawAdmins {
		net := admin.Public()
		nsettings := rapid.IntRange(0, 3).Draw(t, "settings")
		if fixed {
			nsettings = 1
		}
		for i := range nsettings {
			s := Settings{Network: net, Updated: minutesAgo(t, "updated", 200), Domain: "nether",
				HostTTL: []time.Duration{30 * time.Minute, time.Hour}[rapid.IntRange(0, 1).Draw(t, "ttl")], DNSTTL: time.Minute,
				Witnesses: keysOf(subset(t, "witness", lawWitness[:3])),
				Banned:    keysOf(subset(t, "ban", lawNodes[3:])),
			}
			if rapid.IntRange(0, 4).Draw(t, "restricted") == 0 {
				s.Restricted, s.AllowedNodes = true, keysOf(subset(t, "allow", lawNodes))
			}
			if rapid.IntRange(0, 3).Draw(t, "override") == 0 {
				s.Overrides = []Override{{Name: rapid.SampledFrom(lawNames).Draw(t, "oname"), Node: rapid.SampledFrom(lawNodes).Draw(t, "onode").Public()}}
			}
			_ = i
			s.Namespaces = genNamespaces(t)
			recs = append(recs, must(SignSettings(s, admin)))
		}
		nodes := lawNodes
		if ni == 0 && rapid.Bool().Draw(t, "greedy") {
			nodes = append(slices.Clone(lawNodes), lawGreedy)
		}
		for _, node := range nodes {
			if fixed {
				recs = append(recs, hostRec(net, node, minutesAgo(t, "heartbeat", 20), subset(t, "addr", lawAddrPool)...))
			} else {
				for range rapid.IntRange(0, 2).Draw(t, "hosts") {
					addrs := subset(t, "addr", lawAddrPool)
					recs = append(recs, hostRec(net, node, minutesAgo(t, "heartbeat", 90), addrs...))
				}
			}
			nclaims := rapid.IntRange(0, 3).Draw(t, "claims")
			if node.Public() == lawGreedy.Public() {
				nclaims = MaxClaimsPerNode + 4
			}
			for c := range nclaims {
				name := rapid.SampledFrom(lawNames).Draw(t, "name")
				if node.Public() == lawGreedy.Public() {
					name = fmt.Sprintf("g%d", c)
				}
				claim := claimRec(net, node, name, minutesAgo(t, "created", 90))
				recs = append(recs, claim)
				for range rapid.IntRange(0, 3).Draw(t, "attestations") {
					w := rapid.SampledFrom(lawWitness).Draw(t, "witness")
					recs = append(recs, witnessRec(claim, w, minutesAgo(t, "attested", 90)))
				}
				if node.Public() == lawGreedy.Public() && c == 0 {
					for i := range 6 {
						recs = append(recs, witnessRec(claim, lawWitness[i%3], lawNow.Add(-time.Duration(i)*time.Minute)))
					}
				}
			}
		}
		// Bad records: forged, tampered, from the future.
		victim := lawNodes[0]
		forged := Host{Network: net, Node: victim.Public(), Heartbeat: lawNow}
		recs = append(recs, must(sign(&Record{kind: KindHost, body: &forged}, lawNodes[1])))
		recs = append(recs, hostRec(net, lawNodes[2], lawNow.Add(time.Hour), "fd00::9"))
		c := claimRec(net, victim, "mors", lawNow.Add(-time.Minute))
		tampered := slices.Clone(c.Bytes())
		tampered[len(tampered)-1] ^= 1
		recs = append(recs, must(DecodeRecord(tampered)))
		recs = append(recs, genEntries(t, admin)...)
	}
	return recs
}

// deliver ingests recs in the given order, then offers them all again until
// nothing more is accepted: what anti-entropy does over time, where the
// peers holding a record keep offering it to the nodes that do not. (An
// attestation that arrives before its claim is refused, and accepted on a
// later round; a record pruned under older settings comes back once newer
// settings admit it again.)
func deliver(s *State, recs []*Record) {
	for round := 0; ; round++ {
		if round > 4*len(recs)+10 {
			panic("delivery does not settle: ingestion keeps adding and dropping records")
		}
		progress := false
		for _, r := range recs {
			if o, err := s.Ingest(r, lawNow); err == nil && o == Added {
				progress = true
			}
		}
		if !progress {
			return
		}
	}
}

func shuffled(t *rapid.T, label string, recs []*Record) []*Record {
	out := rapid.Permutation(recs).Draw(t, label)
	if len(recs) == 0 {
		return out
	}
	// With duplicates.
	for _, i := range rapid.SliceOfN(rapid.IntRange(0, len(recs)-1), 0, 10).Draw(t, label+"-dups") {
		out = append(out, recs[i])
	}
	return out
}

func randomState(t *rapid.T, label string, universe []*Record) *State {
	s := newLawState()
	deliver(s, shuffled(t, label, subset(t, label+"-pick", universe)))
	return s
}

// contents is a state's observable meaning: its records and its view.
func contents(s *State) string {
	out := ""
	for _, id := range s.Joined() {
		for _, r := range s.Records(id) {
			out += r.Kind().String()[:1] + ":" + r.Hash().Short() + " "
		}
		out += "| "
	}
	return out + describe(s.View(lawView(), lawNow), nil) + describeItems(s)
}

func clone(s *State) *State {
	c := newLawState()
	c.Merge(s)
	return c
}

func merged(a, b *State) *State {
	m := clone(a)
	m.Merge(b)
	return m
}

func pruned(s *State) *State {
	p := clone(s)
	p.Prune(lawNow)
	return p
}

// meaning is what a state says at lawNow: its view, and (for NameStatus)
// who holds every name.
func meaning(s *State) string {
	out := describe(s.View(lawView(), lawNow), nil)
	for _, id := range s.Joined() {
		for _, name := range lawNames {
			st := s.NameStatus(id, name, lawNow)
			out += fmt.Sprintf(" %s=%s", name, st.Holder.Short())
		}
	}
	return out + describeItems(s)
}

func TestLawDeliveryOrderDoesNotMatter(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := genUniverse(t)
		a, b := newLawState(), newLawState()
		deliver(a, shuffled(t, "order-a", u))
		deliver(b, shuffled(t, "order-b", u))
		if ca, cb := contents(a), contents(b); ca != cb {
			t.Fatalf("two delivery orders disagree:\n%s\n%s", ca, cb)
		}
		checkInvariants(t, a)
	})
}

func TestLawMergeIsASemilattice(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := genUniverse(t)
		a, b, c := randomState(t, "a", u), randomState(t, "b", u), randomState(t, "c", u)
		if x, y := contents(merged(a, b)), contents(merged(b, a)); x != y {
			t.Fatalf("not commutative:\n%s\n%s", x, y)
		}
		if x, y := contents(merged(merged(a, b), c)), contents(merged(a, merged(b, c))); x != y {
			t.Fatalf("not associative:\n%s\n%s", x, y)
		}
		if x, y := contents(merged(a, a)), contents(a); x != y {
			t.Fatalf("not idempotent:\n%s\n%s", x, y)
		}
		// Policy and time are not part of the join, and collecting garbage
		// does not change what the state means: merging, then pruning, is
		// the same as delivering both states' records to a fresh node.
		ab := merged(a, b)
		union := newLawState()
		var recs []*Record
		for _, s := range []*State{a, b} {
			for _, id := range s.Joined() {
				recs = append(recs, s.Records(id)...)
			}
		}
		deliver(union, recs)
		if x, y := meaning(ab), meaning(pruned(ab)); x != y {
			t.Fatalf("pruning changed the view:\n%s\n%s", x, y)
		}
		if x, y := contents(pruned(ab)), contents(union); x != y {
			t.Fatalf("merge+prune differs from delivering the union:\n%s\n%s", x, y)
		}
		checkInvariants(t, pruned(ab))
	})
}

// checkInvariants re-verifies everything a state holds from scratch: no
// invalid record ever enters.
func checkInvariants(t *rapid.T, s *State) {
	for _, id := range s.Joined() {
		n := s.nets[id]
		fp := Fingerprint{}
		for _, r := range s.Records(id) {
			fp.add(r.Hash(), 1)
			if r.Network() != id {
				t.Fatalf("%s filed under network %s", r, id.Short())
			}
			if err := r.VerifySignature(); err != nil {
				t.Fatalf("state holds %s: %v", r, err)
			}
			if r.Time().After(lawNow.Add(DefaultMaxSkew)) {
				t.Fatalf("state holds %s from the future", r)
			}
			switch r.Kind() {
			case KindHost, KindClaim:
				if reason := n.policy(r.Signer()); reason != "" {
					t.Fatalf("state holds %s though %s", r, reason)
				}
			case KindAttestation:
				if _, err := (Verifier{}).VerifyAttestation(r.Attestation(), n.trust); err != nil {
					t.Fatalf("state holds %s: %v", r, err)
				}
				if n.subject(r.Attestation().Claim) == nil {
					t.Fatalf("state holds %s without its subject", r)
				}
			}
			if r.Kind() == KindHost && n.expired(r.Host(), lawNow) {
				t.Fatalf("state holds expired %s", r)
			}
		}
		if fp != s.Fingerprint(id) {
			t.Fatalf("incremental fingerprint %v, recomputed %v", s.Fingerprint(id), fp)
		}
		// The index: every bucket sorted by hash, keyed by the hash's
		// bytes 1-8, holding exactly the state's records.
		indexed := 0
		for i := range n.index.buckets {
			b := &n.index.buckets[i]
			for j, sl := range b.slots {
				if sl.rec.hash[0] != byte(i) || sl.key != hashSlotKey(sl.rec.hash) || (j > 0 && b.slots[j-1].rec.hash.Compare(sl.rec.hash) >= 0) {
					t.Fatalf("bucket %d misfiles %s at %d", i, sl.rec, j)
				}
				indexed++
			}
		}
		if indexed != fp.Count || n.index.count != fp.Count {
			t.Fatalf("index holds %d records (count %d), the state %d", indexed, n.index.count, fp.Count)
		}
		checkEntryInvariants(t, n)
		for node, r := range n.nodes {
			if len(r.claims) > MaxClaimsPerNode {
				t.Fatalf("%s holds %d claims", node.Short(), len(r.claims))
			}
			if r.host == nil && len(r.claims) == 0 {
				t.Fatalf("%s has an empty entry", node.Short())
			}
		}
		for c, list := range n.byClaim {
			seen := map[Attestor]bool{}
			for _, e := range list {
				if seen[e.at.By] {
					t.Fatalf("claim %s has two attestations by %s", c.Short(), e.at.By)
				}
				seen[e.at.By] = true
			}
		}
	}
}

// The view only ever names addresses of the name's holder, and every
// reverse entry points back to a name that resolves to it.
func TestLawViewIsConsistent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := randomState(t, "s", genUniverse(t))
		v := s.View(lawView(), lawNow)
		for fqdn, e := range v.Names {
			if e.Node.IsZero() {
				continue
			}
			h := s.Host(e.Network, e.Node)
			if h == nil || !slices.Equal(h.Host().Addresses, e.Addrs) {
				t.Fatalf("%s: addresses %v are not its holder's", fqdn, e.Addrs)
			}
			for _, a := range e.Addrs {
				if !slices.Contains(v.Reverse[a], fqdn) {
					t.Fatalf("%s: no reverse entry for %v", fqdn, a)
				}
			}
		}
		for a, names := range v.Reverse {
			for _, n := range names {
				if !slices.Contains(v.Names[n].Addrs, a) {
					t.Fatalf("reverse %v -> %s, which does not resolve to it", a, n)
				}
			}
		}
	})
}

// The view's holder of every claimed name is the winner NameStatus
// explains, claim by claim: the fast path through winners and the
// explaining one through claimState agree.
func TestLawViewAgreesWithNameStatus(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := randomState(t, "s", genUniverse(t))
		for _, id := range s.Joined() {
			n := s.nets[id]
			if n.settings == nil {
				continue
			}
			won := n.winners(lawNow)
			names := map[string]bool{}
			for _, c := range n.allClaims() {
				names[c.Claim().Name] = true
			}
			for name := range names {
				st := s.NameStatus(id, name, lawNow)
				w, ok := won[name]
				switch {
				case st.Override:
					continue
				case st.Holder.IsZero() && ok:
					t.Fatalf("%q: winners say %s, NameStatus nobody", name, w.host.Host().Node.Short())
				case !st.Holder.IsZero() && (!ok || w.host == nil || w.host.Host().Node != st.Holder):
					t.Fatalf("%q: winners say %+v, NameStatus %s", name, w, st.Holder.Short())
				}
			}
		}
	})
}

// A view computed with the one before as Previous is the view computed
// from scratch, it shares every entry that did not change (a view costs
// its changes, not a copy of every name), and the view before is left as
// it was.
func TestLawViewSharesWhatDidNotChange(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		universe := genUniverse(t)
		s1 := randomState(t, "s1", universe)
		s2 := randomState(t, "s2", universe)
		if rapid.Bool().Draw(t, "grows") {
			s2 = merged(s1, s2)
		}
		reach := func(label string) func(_, node PublicKey) bool {
			up := keysOf(subset(t, label, lawNodes))
			return func(_, node PublicKey) bool { return slices.Contains(up, node) }
		}
		cfg1, cfg2 := lawView(), lawView()
		cfg1.Reachable, cfg2.Reachable = reach("up1"), reach("up2")
		v1 := s1.View(cfg1, lawNow)
		cfg2.Previous = v1
		v2 := s2.View(cfg2, lawNow)
		cfg2.Previous = nil
		if want := s2.View(cfg2, lawNow); !reflect.DeepEqual(v2, want) {
			t.Fatalf("with the view before: %s\nfrom scratch: %s", describe(v2, nil), describe(want, nil))
		}
		if again := s1.View(cfg1, lawNow); !reflect.DeepEqual(v1, again) {
			t.Fatalf("the view before changed: %s, was %s", describe(v1, nil), describe(again, nil))
		}
		for fqdn, e := range v2.Names {
			if o := v1.Names[fqdn]; o != nil && len(e.Extra) == 0 && reflect.DeepEqual(o, e) && o != e {
				t.Fatalf("%s: the same entry, not shared", fqdn)
			}
		}
		for a, names := range v2.Reverse {
			if o := v1.Reverse[a]; len(o) == 1 && slices.Equal(o, names) && &o[0] != &names[0] {
				t.Fatalf("%v: the same reverse list, not shared", a)
			}
		}
	})
}

// A Snapshot holds what Verified lists, the same records with the same
// verification results, in dependency order.
func TestLawSnapshotIsVerified(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := randomState(t, "s", genUniverse(t))
		for _, id := range s.Joined() {
			recs, atts := s.Snapshot(id)
			want := map[Hash]Attested{}
			for _, v := range s.Verified(id) {
				want[v.Record.Hash()] = v.Attested
			}
			if len(recs) != len(want) {
				t.Fatalf("%d records, Verified has %d", len(recs), len(want))
			}
			first := len(recs) - len(atts)
			for i, r := range recs {
				got := Attested{}
				if i >= first {
					got = atts[i-first]
				}
				if (r.Kind() == KindAttestation) != (i >= first) {
					t.Fatalf("record %d (%v): the attestations are the last %d", i, r.Kind(), len(atts))
				}
				if w, held := want[r.Hash()]; !held || got != w {
					t.Fatalf("record %d (%v): %+v, Verified %+v (held %v)", i, r.Kind(), got, w, held)
				}
				if i > 0 && dependencyRank(recs[i-1].Kind()) > dependencyRank(r.Kind()) {
					t.Fatalf("record %d (%v) after a %v", i, r.Kind(), recs[i-1].Kind())
				}
			}
		}
	})
}
