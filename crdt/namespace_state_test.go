package crdt

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// nsFixture is a network with one namespace of each kind that matters:
//
//	aliases  keys alice   lww
//	conf     admin        lww
//	names    members      fww
//	tags     members      gset   at most 3 entries per writer, values of 8 bytes
//	svc      owner        orset  lifetime 1h
//	events   owner        log
//	ssh      owner        lww
type nsFixture struct {
	*fixture
	carol PrivateKey
}

func nsDecls(f *fixture) []Namespace {
	return []Namespace{
		{Name: "aliases", Writers: WritersKeys, WriterKeys: []PublicKey{f.alice.Public()}, Policy: PolicyLWW},
		{Name: "conf", Writers: WritersAdmin, Policy: PolicyLWW},
		{Name: "names", Writers: WritersMembers, Policy: PolicyFWW},
		{Name: "tags", Writers: WritersMembers, Policy: PolicyGSet, MaxEntriesPerWriter: 3, MaxValue: 8},
		{Name: "svc", Writers: WritersOwner, Policy: PolicyORSet, Lifetime: time.Hour},
		{Name: "events", Writers: WritersOwner, Policy: PolicyLog},
		{Name: "ssh", Writers: WritersOwner, Policy: PolicyLWW},
	}
}

func newNSFixture(t *testing.T) *nsFixture {
	f := &nsFixture{fixture: newFixture(t), carol: testKey("carol")}
	f.resettle(t, epoch.Add(time.Second), nil)
	mustIngest(t, f.s, epoch, hostRec(f.net, f.alice, epoch, "fd00::1"), hostRec(f.net, f.bob, epoch, "fd00::2"))
	return f
}

// resettle signs new settings with the fixture's namespaces, changed by mod.
func (f *nsFixture) resettle(t *testing.T, at time.Time, mod func(*Settings)) *Record {
	t.Helper()
	s := must(SignSettings(testSettings(f.admin, at, func(s *Settings) {
		s.Witnesses = []PublicKey{f.w.Public()}
		s.Namespaces = nsDecls(f.fixture)
		if mod != nil {
			mod(s)
		}
	}), f.admin))
	mustIngest(t, f.s, at, s)
	return s
}

func (f *nsFixture) policy(ns string) Policy {
	if d := f.s.Namespace(f.net, ns); d != nil {
		return d.Policy
	}
	return PolicyLWW
}

func (f *nsFixture) put(k PrivateKey, ns, key, value string, at time.Time) *Record {
	return must(SignEntry(Entry{Network: f.net, Namespace: ns, Writer: k.Public(), Key: key, Time: at, Policy: f.policy(ns), Op: OpPut, Value: []byte(value)}, k))
}

func (f *nsFixture) del(k PrivateKey, ns, key string, at time.Time) *Record {
	return must(SignEntry(Entry{Network: f.net, Namespace: ns, Writer: k.Public(), Key: key, Time: at, Policy: f.policy(ns), Op: OpDelete}, k))
}

func (f *nsFixture) tomb(k PrivateKey, target PublicKey, key string, at time.Time, adds ...*Record) *Record {
	e := Entry{Network: f.net, Namespace: "svc", Writer: k.Public(), Key: key, Time: at, Policy: PolicyORSet, Op: OpDelete, Target: target}
	for _, a := range adds {
		e.Removes = append(e.Removes, a.Hash())
	}
	return must(SignEntry(e, k))
}

func (f *nsFixture) logEntry(k PrivateKey, seq uint64, value string, at time.Time) *Record {
	return must(SignEntry(Entry{Network: f.net, Namespace: "events", Writer: k.Public(), Key: "log", Time: at, Policy: PolicyLog, Op: OpPut, Seq: seq, Value: []byte(value)}, k))
}

func (f *nsFixture) items(t *testing.T, ns string, now time.Time) *NamespaceItems {
	t.Helper()
	v := f.s.Items(f.net, ns, now)
	if v == nil {
		t.Fatalf("namespace %s is not declared", ns)
	}
	return v
}

func ingestOutcome(t *testing.T, s *State, r *Record, now time.Time, want Outcome) {
	t.Helper()
	if o, err := s.Ingest(r, now); err != nil || o != want {
		t.Fatalf("%s: %v %v, want %s", r, o, err, want)
	}
}

// Every refusal of an entry has its reason, and a refused entry leaves no
// trace.
func TestEntryRefusals(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	forged := f.put(f.alice, "aliases", "www", "mors", now)
	raw := bytes.Clone(forged.Bytes())
	raw[len(raw)-signatureSize-1] ^= 1 // the last byte of the value
	forged = must(DecodeRecord(raw))
	wrongPolicy := must(SignEntry(Entry{Network: f.net, Namespace: "tags", Writer: f.bob.Public(), Key: "k", Time: now, Policy: PolicyORSet, Op: OpPut}, f.bob))
	old := epoch.Add(-3 * time.Hour)
	banned := must(SignSettings(testSettings(f.admin, epoch.Add(2*time.Second), func(s *Settings) {
		s.Witnesses, s.Namespaces, s.Banned = []PublicKey{f.w.Public()}, nsDecls(f.fixture), []PublicKey{f.carol.Public()}
	}), f.admin))
	mustIngest(t, f.s, now, banned)
	before := f.s.Fingerprint(f.net)
	for _, tc := range []struct {
		name string
		rec  *Record
		want Reason
	}{
		{"undeclared namespace", f.put(f.alice, "nope", "k", "v", now), ReasonNamespaceNotDeclared},
		{"written under another policy", wrongPolicy, ReasonWrongPolicy},
		{"not a listed key", f.put(f.bob, "aliases", "www", "styx", now), ReasonNotWriter},
		{"not the admin", f.put(f.alice, "conf", "k", "v", now), ReasonNotWriter},
		{"banned writer", f.put(f.carol, "tags", "k", "v", now), ReasonBanned},
		{"value too large", f.put(f.bob, "tags", "k", "123456789", now), ReasonOverLimit},
		{"past the lifetime", f.put(f.alice, "svc", "k", "v", epoch.Add(-2*time.Hour)), ReasonExpired},
		{"writer without host, older than a host TTL", f.put(f.w, "names", "k", "v", old), ReasonExpired},
		{"delete in a grow-only set", f.del(f.bob, "tags", "k", now), ReasonDeleteNotAllowed},
		{"delete in a log", f.del(f.bob, "events", "k", now), ReasonDeleteNotAllowed},
		{"deleting another's adds", f.tomb(f.bob, f.alice.Public(), "k", now, f.put(f.alice, "svc", "k", "v", now)), ReasonMayNotDelete},
		{"forged", forged, ReasonBadSignature},
		{"from the future", f.put(f.alice, "aliases", "www", "mors", now.Add(time.Hour)), ReasonFuture},
		{"attestation of a set's entry", witnessRec(f.put(f.bob, "tags", "k", "v", now), f.w, now), ReasonUnknownSubject},
		{"attestation of an fww entry not held", witnessRec(f.put(f.bob, "names", "k", "v", now), f.w, now), ReasonUnknownSubject},
	} {
		_, err := f.s.Ingest(tc.rec, now)
		if got := ReasonOf(err); got != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
	if f.s.Fingerprint(f.net) != before {
		t.Fatal("a refused entry changed the state")
	}
	// The admin may delete anybody's adds; a writer without a host may
	// write while its entries are young (its host record may be on its way).
	add := f.put(f.alice, "svc", "k", "v", now)
	mustIngest(t, f.s, now, add, f.tomb(f.admin, f.alice.Public(), "k", now, add), f.put(f.w, "names", "k", "v", now))
}

// A namespace the settings do not declare is refused as an unjoined
// network is: nothing is remembered, and the same entry is accepted once
// settings declaring it arrive.
func TestEntryAcceptedOnceDeclared(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	e := f.put(f.bob, "later", "k", "v", now)
	if _, err := f.s.Ingest(e, now); ReasonOf(err) != ReasonNamespaceNotDeclared {
		t.Fatalf("undeclared: %v", err)
	}
	f.resettle(t, now, func(s *Settings) {
		s.Namespaces = append(s.Namespaces, Namespace{Name: "later", Writers: WritersOwner, Policy: PolicyLWW})
	})
	ingestOutcome(t, f.s, e, now, Added)
}

// Each distinct entry is verified once; older writes of a register cost no
// signature check.
func TestEntryVerifiedOnce(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	newer, older := f.put(f.alice, "aliases", "www", "b", now), f.put(f.alice, "aliases", "www", "a", now.Add(-time.Second))
	mustIngest(t, f.s, now, newer)
	before := f.s.Stats()
	ingestOutcome(t, f.s, newer, now, Known)
	if _, o, err := f.s.IngestBytes(newer.Bytes(), now); err != nil || o != Known {
		t.Fatalf("bytes again: %v %v", o, err)
	}
	ingestOutcome(t, f.s, older, now, Superseded)
	if f.s.Stats() != before {
		t.Fatalf("known or superseded entries were verified: %+v -> %+v", before, f.s.Stats())
	}
}

func TestItemsLastWriterWins(t *testing.T) {
	f := newNSFixture(t)
	f.resettle(t, epoch.Add(2*time.Second), func(s *Settings) {
		s.Namespaces[0].WriterKeys = sortKeys([]PublicKey{f.alice.Public(), f.bob.Public()})
	})
	t1, t2, t3 := epoch.Add(time.Minute), epoch.Add(2*time.Minute), epoch.Add(3*time.Minute)
	a, b := f.put(f.alice, "aliases", "www", "mors", t1), f.put(f.bob, "aliases", "www", "styx", t2)
	mustIngest(t, f.s, t3, b, a)
	v := f.items(t, "aliases", t3)
	if it, ok := v.Current(PublicKey{}, "www"); !ok || string(it.Value) != "styx" || it.Writer != f.bob.Public() {
		t.Fatalf("latest write does not win: %+v", v.Keys)
	}
	// A later delete by alice wins over bob's write.
	mustIngest(t, f.s, t3, f.del(f.alice, "aliases", "www", t3))
	v = f.items(t, "aliases", t3)
	if k := v.Get(PublicKey{}, "www"); k == nil || !k.Deleted || k.Items[0].Writer != f.alice.Public() || k.Items[0].Op != OpDelete {
		t.Fatalf("delete does not win: %+v", v.Keys)
	}
	if _, ok := v.Current(PublicKey{}, "www"); ok {
		t.Fatal("a deleted key has a current value")
	}
	// Taking alice off the list drops her writes: bob's is the latest again.
	f.resettle(t, epoch.Add(4*time.Minute), func(s *Settings) { s.Namespaces[0].WriterKeys = []PublicKey{f.bob.Public()} })
	if it, ok := f.items(t, "aliases", t3).Current(PublicKey{}, "www"); !ok || string(it.Value) != "styx" {
		t.Fatalf("after alice lost the right to write: %+v", it)
	}
}

// In an owner namespace every writer has its own key-space: nobody can
// overwrite anybody else's key.
func TestItemsOwnerKeySpaces(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	mustIngest(t, f.s, now, f.put(f.alice, "ssh", "host", "A", now), f.put(f.bob, "ssh", "host", "B", now.Add(time.Second)))
	v := f.items(t, "ssh", now)
	if len(v.Keys) != 2 {
		t.Fatalf("keys: %+v", v.Keys)
	}
	for k, want := range map[PublicKey]string{f.alice.Public(): "A", f.bob.Public(): "B"} {
		if it, ok := v.Current(k, "host"); !ok || string(it.Value) != want {
			t.Errorf("%s's host: %+v", k.Short(), it)
		}
	}
}

// First writer wins by attested time: a rival write is stored but loses,
// whatever time its writer put in it; an unattested write is inactive;
// withdrawing (deleting) gives the key to the next.
func TestItemsFirstWriterWins(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(10 * time.Minute)
	mustIngest(t, f.s, now, hostRec(f.net, f.carol, now, "fd00::3"))
	a := f.put(f.alice, "names", "git", "fd00::1", epoch.Add(5*time.Minute))
	b := f.put(f.bob, "names", "git", "fd00::2", epoch.Add(time.Minute)) // claims to be earlier
	c := f.put(f.carol, "names", "git", "fd00::3", now)
	mustIngest(t, f.s, now, a, b, c, witnessRec(a, f.w, epoch.Add(6*time.Minute)), witnessRec(b, f.w, epoch.Add(7*time.Minute)))
	v := f.items(t, "names", now)
	k := v.Get(PublicKey{}, "git")
	if k == nil || len(k.Items) != 3 {
		t.Fatalf("contenders: %+v", v.Keys)
	}
	want := []struct {
		w PrivateKey
		s Standing
	}{{f.alice, StandingHolds}, {f.bob, StandingLater}, {f.carol, StandingUnattested}}
	for i, w := range want {
		if it := k.Items[i]; it.Writer != w.w.Public() || it.Standing != w.s {
			t.Errorf("contender %d: %s %s, want %s %s", i, it.Writer.Short(), it.Standing, w.w.Public().Short(), w.s)
		}
	}
	if it := k.Items[0]; !it.Attested || !it.AttestedAt.Equal(epoch.Add(6*time.Minute)) || it.By.Kind != AttestorWitness {
		t.Errorf("holder's attestation: %+v", it)
	}
	// alice withdraws: bob holds the key.
	mustIngest(t, f.s, now, f.del(f.alice, "names", "git", now))
	if it, ok := f.items(t, "names", now).Current(PublicKey{}, "git"); !ok || it.Writer != f.bob.Public() {
		t.Fatalf("after alice withdrew: %+v", it)
	}
	// Once bob's host is no longer live, his entry is inactive.
	later := epoch.Add(61 * time.Minute)
	k = f.items(t, "names", later).Get(PublicKey{}, "git")
	if k == nil || k.Items[0].Writer != f.bob.Public() || k.Items[0].Standing != StandingHostNotLive {
		t.Fatalf("with bob's host gone: %+v", k)
	}
}

func TestItemsSets(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	mustIngest(t, f.s, now, f.put(f.alice, "tags", "k", "x", now), f.put(f.bob, "tags", "k", "x", now), f.put(f.bob, "tags", "k", "y", now))
	k := f.items(t, "tags", now).Get(PublicKey{}, "k")
	if k == nil || len(k.Items) != 3 || string(k.Items[0].Value) != "x" || string(k.Items[2].Value) != "y" {
		t.Fatalf("grow-only set: %+v", k)
	}

	// Add/remove set: a delete removes the adds it saw, not a later one.
	a1 := f.put(f.alice, "svc", "_ssh._tcp", "0 0 22 mors", now)
	t1 := f.tomb(f.alice, f.alice.Public(), "_ssh._tcp", now.Add(time.Second), a1)
	a2 := f.put(f.alice, "svc", "_ssh._tcp", "0 0 2222 mors", now.Add(2*time.Second))
	mustIngest(t, f.s, now, a1, t1, a2)
	ingestOutcome(t, f.s, a1, now, Superseded)
	ingestOutcome(t, f.s, t1, now, Known)
	k = f.items(t, "svc", now).Get(f.alice.Public(), "_ssh._tcp")
	if k == nil || len(k.Items) != 1 || k.Items[0].Hash != a2.Hash() {
		t.Fatalf("add/remove set: %+v", k)
	}
	// A tombstone dated before an add it names does not remove it.
	a3 := f.put(f.alice, "svc", "x", "v", now.Add(3*time.Second))
	mustIngest(t, f.s, now, a3, f.tomb(f.alice, f.alice.Public(), "x", now, a3))
	if k := f.items(t, "svc", now).Get(f.alice.Public(), "x"); k == nil || len(k.Items) != 1 {
		t.Fatalf("a tombstone removed an add dated after it: %+v", k)
	}
}

func TestItemsLog(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	entries := []*Record{
		f.logEntry(f.bob, 0, "b0", now), f.logEntry(f.alice, 0, "a0", now),
		f.logEntry(f.alice, 1, "a1", now.Add(time.Second)), f.logEntry(f.bob, 1, "b1", now.Add(2*time.Second)),
	}
	mustIngest(t, f.s, now.Add(2*time.Second), entries...)
	k := f.items(t, "events", now).Get(f.alice.Public(), "log")
	if k == nil || len(k.Items) != 2 || string(k.Items[0].Value) != "a0" {
		t.Fatalf("alice's log: %+v", k)
	}
	if got := f.s.NextSeq(f.net, "events", f.alice.Public()); got != 2 {
		t.Fatalf("next seq %d, want 2", got)
	}
	// Equivocation (two entries with the same seq): the later stays.
	twin := f.logEntry(f.alice, 1, "a1'", now.Add(3*time.Second))
	mustIngest(t, f.s, now.Add(3*time.Second), twin)
	k = f.items(t, "events", now.Add(3*time.Second)).Get(f.alice.Public(), "log")
	if len(k.Items) != 2 || k.Items[1].Hash != twin.Hash() {
		t.Fatalf("after equivocation: %+v", k)
	}
	ingestOutcome(t, f.s, entries[2], now.Add(3*time.Second), Superseded)
}

// The global order of a log namespace with writers not in owner mode.
func TestItemsLogOrder(t *testing.T) {
	f := newNSFixture(t)
	f.resettle(t, epoch.Add(2*time.Second), func(s *Settings) { s.Namespaces[5].Writers = WritersMembers })
	now := epoch.Add(time.Minute)
	mustIngest(t, f.s, now,
		f.logEntry(f.bob, 0, "b0", now), f.logEntry(f.alice, 5, "a5", now),
		f.logEntry(f.alice, 0, "a0", now.Add(-time.Second)), f.logEntry(f.bob, 1, "b1", now))
	k := f.items(t, "events", now).Get(PublicKey{}, "log")
	var got []string
	for _, it := range k.Items {
		got = append(got, string(it.Value))
	}
	// time first, then writer key, then seq.
	want := "a0 a5 b0 b1"
	if f.bob.Public().Compare(f.alice.Public()) < 0 {
		want = "a0 b0 b1 a5"
	}
	if strings.Join(got, " ") != want {
		t.Fatalf("log order %v, want %v", got, want)
	}
}

// A writer keeps its newest entries up to the limit: a new one pushes the
// oldest out, an older one is refused.
func TestEntryLimitPerWriter(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	var recs []*Record
	for i := range 4 {
		recs = append(recs, f.put(f.bob, "tags", "k", string(rune('a'+i)), now.Add(time.Duration(i)*time.Second)))
	}
	mustIngest(t, f.s, now, recs[1], recs[2], recs[3])
	if _, err := f.s.Ingest(recs[0], now); ReasonOf(err) != ReasonOverLimit {
		t.Fatalf("an older entry over the limit: %v", err)
	}
	newest := f.put(f.bob, "tags", "k", "e", now.Add(time.Minute))
	mustIngest(t, f.s, now, newest)
	if f.s.Lookup(f.net, recs[1].Hash()) != nil || len(f.items(t, "tags", now).Get(PublicKey{}, "k").Items) != 3 {
		t.Fatal("the oldest entry was not pushed out")
	}
	// Others are not affected by bob's limit.
	mustIngest(t, f.s, now, f.put(f.alice, "tags", "k", "z", now))
}

// Decay: entries of members and owner namespaces live while their writer's
// host does (and one host TTL after their time); the admin's entries and
// those of admin and keys namespaces live by their lifetime only. A writer
// that is banned loses its entries at once.
func TestEntryDecay(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	recs := map[string]*Record{
		"alice names": f.put(f.alice, "names", "n", "v", now),
		"alice ssh":   f.put(f.alice, "ssh", "host", "A", now),
		"alice alias": f.put(f.alice, "aliases", "www", "mors", now),
		"admin conf":  f.put(f.admin, "conf", "k", "v", now),
		"admin ssh":   f.put(f.admin, "ssh", "host", "X", now),
		"bob tags":    f.put(f.bob, "tags", "k", "v", now),
		"alice svc":   f.put(f.alice, "svc", "s", "v", now),
	}
	for _, r := range recs {
		mustIngest(t, f.s, now, r)
	}
	// alice keeps her host alive; bob's decays after an hour.
	mustIngest(t, f.s, epoch.Add(50*time.Minute), hostRec(f.net, f.alice, epoch.Add(50*time.Minute), "fd00::1"))
	later := epoch.Add(62 * time.Minute)
	dropped := f.s.Prune(later)
	gone := map[string]bool{"bob tags": true, "alice svc": true} // bob's host decayed; svc's lifetime is 1h
	for name, r := range recs {
		if held := f.s.Lookup(f.net, r.Hash()) != nil; held == gone[name] {
			t.Errorf("%s: held %v after decay, want %v (dropped %v)", name, held, !gone[name], dropped)
		}
		if gone[name] {
			if _, err := f.s.Ingest(r, later); ReasonOf(err) != ReasonExpired {
				t.Errorf("%s offered again: %v, want %s", name, err, ReasonExpired)
			}
		}
	}
	// Banning alice drops her entries at once, the admin's stay.
	f.resettle(t, epoch.Add(63*time.Minute), func(s *Settings) { s.Banned = []PublicKey{f.alice.Public()} })
	for _, name := range []string{"alice names", "alice ssh", "alice alias"} {
		if f.s.Lookup(f.net, recs[name].Hash()) != nil {
			t.Errorf("%s survived the ban", name)
		}
		if _, err := f.s.Ingest(recs[name], later); ReasonOf(err) != ReasonBanned {
			t.Errorf("%s offered again: %v", name, err)
		}
	}
	if f.s.Lookup(f.net, recs["admin conf"].Hash()) == nil || f.s.Lookup(f.net, recs["admin ssh"].Hash()) == nil {
		t.Error("the admin's entries did not survive")
	}
}

// A namespace whose policy changes, or which the settings stop declaring,
// drops its entries; they are refused if offered again.
func TestNamespaceChangeDropsEntries(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	a, c := f.put(f.alice, "ssh", "host", "A", now), f.put(f.admin, "conf", "k", "v", now)
	mustIngest(t, f.s, now, a, c)
	f.resettle(t, now, func(s *Settings) {
		s.Namespaces[6].Policy = PolicyGSet                          // ssh
		s.Namespaces = append(s.Namespaces[:1], s.Namespaces[2:]...) // conf
	})
	if f.s.Lookup(f.net, a.Hash()) != nil || f.s.Lookup(f.net, c.Hash()) != nil {
		t.Fatal("entries of a changed or removed namespace survived")
	}
	if _, err := f.s.Ingest(a, now); ReasonOf(err) != ReasonWrongPolicy {
		t.Fatalf("entry of the old policy: %v", err)
	}
	if _, err := f.s.Ingest(c, now); ReasonOf(err) != ReasonNamespaceNotDeclared {
		t.Fatalf("entry of a removed namespace: %v", err)
	}
}

func TestUnwitnessedAndUnstampedEntries(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	fww, other := f.put(f.alice, "names", "git", "x", now), f.put(f.alice, "ssh", "host", "A", now)
	claim := claimRec(f.net, f.alice, "mors", now)
	mustIngest(t, f.s, now, fww, other, claim)
	got := f.s.Unwitnessed(f.net, f.w.Public())
	if len(got) != 2 || got[0].Hash() != claim.Hash() || got[1].Hash() != fww.Hash() {
		t.Fatalf("witness work: %v", got)
	}
	if got := f.s.Unstamped(f.net, f.alice.Public()); len(got) != 2 {
		t.Fatalf("alice's records to stamp: %v", got)
	}
	if got := f.s.Unstamped(f.net, f.bob.Public()); len(got) != 0 {
		t.Fatalf("bob's records to stamp: %v", got)
	}
	mustIngest(t, f.s, now, witnessRec(fww, f.w, now))
	if got := f.s.Unwitnessed(f.net, f.w.Public()); len(got) != 1 || got[0].Hash() != claim.Hash() {
		t.Fatalf("after witnessing the entry: %v", got)
	}
}

// The change signal moves with the namespace's entries and attestations
// and with the settings, not with other namespaces.
func TestNamespaceVersion(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	names, conf := f.s.NamespaceVersion(f.net, "names"), f.s.NamespaceVersion(f.net, "conf")
	e := f.put(f.alice, "names", "git", "x", now)
	mustIngest(t, f.s, now, e)
	if f.s.NamespaceVersion(f.net, "names") == names || f.s.NamespaceVersion(f.net, "conf") != conf {
		t.Fatal("an entry moved the wrong signal")
	}
	names = f.s.NamespaceVersion(f.net, "names")
	mustIngest(t, f.s, now, witnessRec(e, f.w, now))
	if f.s.NamespaceVersion(f.net, "names") == names {
		t.Fatal("an attestation did not move the signal")
	}
	names = f.s.NamespaceVersion(f.net, "names")
	mustIngest(t, f.s, now, hostRec(f.net, f.alice, now, "fd00::1"))
	if f.s.NamespaceVersion(f.net, "names") == names || f.s.NamespaceVersion(f.net, "conf") != conf {
		t.Fatal("a host record moved the wrong signal")
	}
	if (f.s.NamespaceVersion(f.net, "nope") != NamespaceVersion{}) {
		t.Fatal("an undeclared namespace has a version")
	}
	if v := f.items(t, "names", now); !v.ValidUntil.Equal(now.Add(time.Hour)) {
		t.Fatalf("valid until %v, want alice's host's end", v.ValidUntil)
	}
}

func TestDataJSONCarriesEntries(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	fww, add := f.put(f.alice, "names", "git", "x", now), f.put(f.alice, "svc", "s", "v", now)
	mustIngest(t, f.s, now, fww, witnessRec(fww, f.w, now), add, f.tomb(f.admin, f.alice.Public(), "s", now, add),
		f.logEntry(f.bob, 7, "\x00\xff", now), f.del(f.alice, "ssh", "host", now))
	b := must(EncodeDataJSON(f.s, f.net))
	for _, want := range []string{`"entries"`, `"namespaces"`, `"policy": "orset"`, `"op": "delete"`, `"writers": "owner"`, `"removes"`, `"seq": 7`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("data.json has no %s", want)
		}
	}
	df := must(DecodeDataJSON(b))
	if len(df.Networks[0].Errors) > 0 {
		t.Fatal(df.Networks[0].Errors)
	}
	s := NewState(DefaultOptions(), f.net)
	if res := s.IngestAll(df.Networks[0].Records, now); len(res.Rejected) > 0 {
		t.Fatalf("rejected: %v", res.Rejected)
	}
	if s.Fingerprint(f.net) != f.s.Fingerprint(f.net) {
		t.Fatal("state read back from data.json differs")
	}
	if again := must(EncodeDataJSON(s, f.net)); !bytes.Equal(again, b) {
		t.Fatal("equal states give different data.json files")
	}
	// A tampered value is refused by its signature, alone.
	tampered := strings.Replace(string(b), `"value": "AP8="`, `"value": "AP4="`, 1)
	if tampered == string(b) {
		t.Fatal("data.json has no such value")
	}
	df = must(DecodeDataJSON([]byte(tampered)))
	s = NewState(DefaultOptions(), f.net)
	res := s.IngestAll(df.Networks[0].Records, now)
	if len(res.Rejected) != 1 || res.Rejected[0].Reason != ReasonBadSignature {
		t.Fatalf("tampered entry: %v", res.Rejected)
	}
}

// Restore brings entries and their attestations back without verifying.
func TestRestoreEntries(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	fww := f.put(f.alice, "names", "git", "x", now)
	mustIngest(t, f.s, now, fww, witnessRec(fww, f.w, now), f.put(f.bob, "tags", "k", "v", now))
	s := NewState(DefaultOptions(), f.net)
	s.Restore(f.s.Verified(f.net), now)
	if s.Fingerprint(f.net) != f.s.Fingerprint(f.net) || s.Stats() != (Stats{}) {
		t.Fatalf("restore: fingerprints equal %v, stats %+v", s.Fingerprint(f.net) == f.s.Fingerprint(f.net), s.Stats())
	}
	if it, ok := s.Items(f.net, "names", now).Current(PublicKey{}, "git"); !ok || it.Writer != f.alice.Public() {
		t.Fatalf("restored fww entry: %+v", it)
	}
}

// On a restricted network only allowed keys write, whatever the namespace
// says: a namespace narrows who writes, never widens it.
func TestEntryWritersNeedTheAllowList(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	bobs := f.put(f.bob, "tags", "k", "v", now)
	mustIngest(t, f.s, now, bobs)
	f.resettle(t, now, func(s *Settings) {
		s.Restricted, s.AllowedNodes = true, []PublicKey{f.alice.Public()}
		s.Namespaces[0].WriterKeys = sortKeys([]PublicKey{f.alice.Public(), f.bob.Public()})
	})
	if f.s.Lookup(f.net, bobs.Hash()) != nil {
		t.Fatal("a key taken off the allow-list kept its entries")
	}
	for _, r := range []*Record{bobs, f.put(f.bob, "aliases", "www", "styx", now)} {
		if _, err := f.s.Ingest(r, now); ReasonOf(err) != ReasonNotAllowed {
			t.Errorf("%s: %v, want %s", r, err, ReasonNotAllowed)
		}
	}
	mustIngest(t, f.s, now, f.put(f.alice, "tags", "k", "v", now), f.put(f.admin, "conf", "k", "v", now))
}

func TestNamespacesAndEntriesOf(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	if got := f.s.Namespaces(f.net); len(got) != len(nsDecls(f.fixture)) || got[0].Name != "aliases" {
		t.Fatalf("namespaces: %+v", got)
	}
	if f.s.Namespace(f.net, "nope") != nil || f.s.Items(f.net, "nope", now) != nil {
		t.Fatal("an undeclared namespace is readable")
	}
	a, b := f.put(f.alice, "ssh", "host", "A", now), f.put(f.bob, "ssh", "host", "B", now)
	mustIngest(t, f.s, now, a, b, f.put(f.bob, "tags", "k", "v", now))
	got := f.s.EntriesOf(f.net, "ssh")
	if len(got) != 2 || got[0].Hash().Compare(got[1].Hash()) >= 0 {
		t.Fatalf("entries of ssh: %v", got)
	}
	if v := f.items(t, "ssh", now); v.Get(f.alice.Public(), "host") == nil || v.Get(f.carol.Public(), "host") != nil {
		t.Fatalf("items of ssh: %+v", v.Keys)
	}
}
