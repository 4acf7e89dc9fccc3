package crdt

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// The namespace part of the law universes (laws_test.go): every settings
// version declares each of these names (or not) in one of its variants, so
// that policies, writers and limits change between versions, and every
// writer writes to each name under its policies.

var lawSpaceNames = []string{"reg", "first", "set", "or", "log"}

// lawVariants lists the declarations a name may take. The first policy is
// the name's own; the others make "the admin changed the policy" happen.
func lawVariants(name string) []Namespace {
	three := keysOf(lawNodes[:3])
	switch name {
	case "reg":
		return []Namespace{
			{Writers: WritersKeys, WriterKeys: three, Policy: PolicyLWW},
			{Writers: WritersOwner, Policy: PolicyLWW},
			{Writers: WritersAdmin, Policy: PolicyLWW},
			{Writers: WritersMembers, Policy: PolicyGSet},
		}
	case "first":
		return []Namespace{
			{Writers: WritersMembers, Policy: PolicyFWW},
			{Writers: WritersOwner, Policy: PolicyFWW, Lifetime: time.Hour},
			{Writers: WritersKeys, WriterKeys: three[:2], Policy: PolicyFWW},
		}
	case "set":
		return []Namespace{
			{Writers: WritersMembers, Policy: PolicyGSet},
			{Writers: WritersOwner, Policy: PolicyGSet, Lifetime: time.Hour},
			{Writers: WritersOwner, Policy: PolicyORSet, Lifetime: time.Hour},
		}
	case "or":
		return []Namespace{
			{Writers: WritersOwner, Policy: PolicyORSet, Lifetime: time.Hour},
			{Writers: WritersMembers, Policy: PolicyORSet, Lifetime: 2 * time.Hour},
			{Writers: WritersKeys, WriterKeys: three, Policy: PolicyORSet, Lifetime: 80 * time.Minute},
		}
	case "log":
		return []Namespace{
			{Writers: WritersOwner, Policy: PolicyLog},
			{Writers: WritersMembers, Policy: PolicyLog, Lifetime: time.Hour},
		}
	}
	panic(name)
}

func lawPolicies(name string) []Policy {
	var out []Policy
	for _, v := range lawVariants(name) {
		if !slices.Contains(out, v.Policy) {
			out = append(out, v.Policy)
		}
	}
	return out
}

func genNamespaces(t *rapid.T) []Namespace {
	var out []Namespace
	for _, name := range lawSpaceNames {
		if rapid.IntRange(0, 6).Draw(t, "undeclared") == 0 {
			continue
		}
		ns := rapid.SampledFrom(lawVariants(name)).Draw(t, "variant")
		ns.Name = name
		ns.MaxEntriesPerWriter = rapid.SampledFrom([]int{0, 2, 3}).Draw(t, "max-entries")
		if rapid.IntRange(0, 3).Draw(t, "small-values") == 0 {
			ns.MaxValue = 4
		}
		out = append(out, ns)
	}
	return out
}

// genEntries draws the entries of one network: concurrent writers (the
// admin and the law nodes) on two keys of every name, deletes racing writes,
// equivocating log entries, tombstones by the adds' writer, by the admin and
// by someone who may not delete, dated before and after the adds they name,
// attestations of fww entries, a forgery and an undeclared namespace.
func genEntries(t *rapid.T, admin PrivateKey) []*Record {
	net := admin.Public()
	writers := append([]PrivateKey{admin}, lawNodes...)
	byKey := map[PublicKey]PrivateKey{}
	for _, w := range writers {
		byKey[w.Public()] = w
	}
	var recs []*Record
	for _, name := range lawSpaceNames {
		policies := lawPolicies(name)
		var adds []*Record
		for _, w := range writers {
			for range rapid.IntRange(0, 3).Draw(t, "entries") {
				p := policies[0]
				if len(policies) > 1 && rapid.IntRange(0, 4).Draw(t, "other-policy") == 0 {
					p = rapid.SampledFrom(policies[1:]).Draw(t, "policy")
				}
				value := fmt.Sprintf("v%d", rapid.IntRange(0, 9).Draw(t, "value"))
				if rapid.IntRange(0, 7).Draw(t, "long-value") == 0 {
					value = "long!"
				}
				key := rapid.SampledFrom([]string{"k1", "k1", "k2"}).Draw(t, "key")
				e := Entry{Network: net, Namespace: name, Writer: w.Public(), Key: key,
					Time: minutesAgo(t, "entry-time", 90), Policy: p, Op: OpPut, Value: []byte(value)}
				switch p {
				case PolicyLWW, PolicyFWW:
					if rapid.IntRange(0, 3).Draw(t, "delete") == 0 {
						e.Op, e.Value = OpDelete, nil
					}
				case PolicyGSet:
					if rapid.IntRange(0, 9).Draw(t, "delete") == 0 {
						e.Op, e.Value = OpDelete, nil // refused: delete-not-allowed
					}
				case PolicyLog:
					e.Seq = uint64(rapid.IntRange(0, 2).Draw(t, "seq"))
				}
				r := must(SignEntry(e, w))
				recs = append(recs, r)
				switch {
				case p == PolicyORSet:
					adds = append(adds, r)
				case p == PolicyFWW && e.Op == OpPut:
					for range rapid.IntRange(0, 3).Draw(t, "entry-attestations") {
						w := rapid.SampledFrom(lawWitness).Draw(t, "witness")
						recs = append(recs, witnessRec(r, w, lawNow.Add(-time.Duration(rapid.IntRange(0, 60).Draw(t, "attested"))*time.Minute)))
					}
				}
			}
		}
		for i := range rapid.IntRange(0, 3).Draw(t, "tombstones") {
			if len(adds) == 0 {
				break
			}
			a := rapid.SampledFrom(adds).Draw(t, "removed").Entry()
			signer := byKey[a.Writer]
			switch rapid.IntRange(0, 5).Draw(t, "deleter") {
			case 0:
				signer = admin
			case 1:
				signer = rapid.SampledFrom(lawNodes).Draw(t, "intruder") // may-not-delete, unless it is a.Writer
			}
			e := Entry{Network: net, Namespace: name, Writer: signer.Public(), Key: a.Key, Time: minutesAgo(t, "tombstone-time", 90),
				Policy: PolicyORSet, Op: OpDelete, Target: a.Writer}
			for j, r := range adds {
				if r.Entry().Writer == a.Writer && r.Entry().Key == a.Key && (r.Entry() == a || rapid.Bool().Draw(t, fmt.Sprintf("removes%d-%d", i, j))) {
					e.Removes = append(e.Removes, r.Hash())
				}
			}
			if rapid.IntRange(0, 3).Draw(t, "unknown-add") == 0 {
				e.Removes = append(e.Removes, Hash{byte(i), 0xee})
			}
			recs = append(recs, must(SignEntry(e, signer)))
		}
	}
	forged := Entry{Network: net, Namespace: "reg", Writer: lawNodes[0].Public(), Key: "k1", Time: lawNow, Policy: PolicyLWW, Op: OpPut, Value: []byte("x")}
	recs = append(recs, must(sign(&Record{kind: KindEntry, body: &forged}, lawNodes[1])))
	undeclared := Entry{Network: net, Namespace: "nope", Writer: lawNodes[0].Public(), Key: "k1", Time: lawNow, Policy: PolicyLWW, Op: OpPut}
	recs = append(recs, must(SignEntry(undeclared, lawNodes[0])))
	return recs
}

// describeItems is what reading every namespace at lawNow gives.
func describeItems(s *State) string {
	var b strings.Builder
	for _, id := range s.Joined() {
		for _, name := range lawSpaceNames {
			v := s.Items(id, name, lawNow)
			if v == nil {
				continue
			}
			fmt.Fprintf(&b, " %s/%s until %d:", id.Short(), name, v.ValidUntil.Unix())
			for _, k := range v.Keys {
				fmt.Fprintf(&b, " [%s %s deleted=%v", k.Owner.Short(), k.Key, k.Deleted)
				for _, it := range k.Items {
					fmt.Fprintf(&b, " %s:%s:%s", it.Writer.Short(), it.Hash.Short(), it.Standing)
				}
				b.WriteString("]")
			}
		}
	}
	return b.String()
}

// checkEntryInvariants checks a state's entries against what ingestion and
// Prune promise: every entry live under the settings, filed once, within
// its writer's limit, no add held that a held tombstone removes.
func checkEntryInvariants(t *rapid.T, n *netState) {
	held := 0
	for id, sp := range n.spaces {
		decl := n.declared(id)
		if len(sp.budgets) == 0 {
			t.Fatalf("empty space %v kept", id)
		}
		for w, b := range sp.budgets {
			weight := 0
			for i, r := range b.recs {
				held++
				if i > 0 && compareEntries(b.recs[i-1], r) >= 0 {
					t.Fatalf("budget of %s not sorted", w.Short())
				}
				if r.Entry().charged() != w || spaceOf(r.Entry()) != id || n.index.get(r.hash) != r {
					t.Fatalf("%s misfiled", r)
				}
				if !n.entryLive(decl, r, lawNow) {
					t.Fatalf("state holds %s, which its namespace does not admit at this time", r)
				}
				if k, ok := slotOf(r.Entry()); ok && (len(sp.slots[k]) != 1 || sp.slots[k][0] != r) {
					t.Fatalf("%s is not its slot's only entry", r)
				}
				if r.Entry().Policy == PolicyORSet && r.Entry().Op == OpPut && sp.covered(r) {
					t.Fatalf("state holds %s, which a held tombstone removes", r)
				}
				weight += r.Entry().weight()
			}
			if weight != b.weight {
				t.Fatalf("budget weight %d, counted %d", b.weight, weight)
			}
			if decl != nil && n.keptFrom(sp, b, decl, lawNow) != 0 {
				t.Fatalf("%s holds entries beyond the limit %d in %s", w.Short(), decl.EntryLimit(), id.name)
			}
		}
	}
	indexed := 0
	for r := range n.index.all {
		if r.kind == KindEntry {
			indexed++
		}
	}
	if indexed != held {
		t.Fatalf("%d entries indexed, %d filed", indexed, held)
	}
}

// Limits commute with removals: a node that prunes early (every node does:
// ingestion applies the limit as records arrive) ends with what a node that
// prunes late ends with. An entry pushed beyond its writer's limit can never
// come back because a newer one leaves: entries leave oldest first (decay)
// or all together (a ban), a register or log entry leaves only for a newer
// one in its place, and a tombstone takes at least the places of the adds
// it removes, dated at or after them. The states here share their settings
// and hosts, so that nothing but the join and the limits tells them apart;
// each is the raw merge of two delivered states, so over the limit.
func TestLawLimitsCommuteWithRemovals(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var base, rest []*Record
		for _, r := range genWorld(t, true) {
			if r.Kind() == KindSettings || r.Kind() == KindHost {
				base = append(base, r)
			} else {
				rest = append(rest, r)
			}
		}
		part := func(label string) *State {
			s := newLawState()
			deliver(s, base)
			deliver(s, shuffled(t, label, subset(t, label+"-pick", rest)))
			return s
		}
		a, b := merged(part("x"), part("y")), merged(part("z"), part("w"))
		early, late := pruned(merged(pruned(a), pruned(b))), pruned(merged(a, b))
		if x, y := contents(early), contents(late); x != y {
			t.Fatalf("pruning early and late disagree:\n%s\n%s", x, y)
		}
		if x, y := meaning(a), meaning(pruned(a)); x != y {
			t.Fatalf("pruning an over-limit state changed what it reads:\n%s\n%s", x, y)
		}
		checkInvariants(t, late)
	})
}
