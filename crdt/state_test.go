package crdt

import (
	"errors"
	"slices"
	"testing"
	"time"
)

type fixture struct {
	admin, alice, bob, w PrivateKey
	net                  PublicKey
	s                    *State
	settings             *Record
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{admin: testKey("admin"), alice: testKey("alice"), bob: testKey("bob"), w: testKey("w")}
	f.net = f.admin.Public()
	f.s = NewState(DefaultOptions(), f.net)
	f.settings = must(SignSettings(testSettings(f.admin, epoch, func(s *Settings) { s.Witnesses = []PublicKey{f.w.Public()} }), f.admin))
	mustIngest(t, f.s, epoch, f.settings)
	return f
}

func TestFutureRecordsWaitForTheClock(t *testing.T) {
	f := newFixture(t)
	later := epoch.Add(DefaultMaxSkew + time.Minute)
	h := hostRec(f.net, f.alice, later, "fd00::1")
	_, err := f.s.Ingest(h, epoch)
	if ReasonOf(err) != ReasonFuture {
		t.Fatalf("record from the future: %v, want %s", err, ReasonFuture)
	}
	// Within the skew it is fine, and once the clock catches up the same
	// record is accepted: refusal is not remembered.
	if o, err := f.s.Ingest(h, later.Add(-DefaultMaxSkew)); err != nil || o != Added {
		t.Fatalf("at the edge of the skew: %v %v", o, err)
	}
}

func TestNotJoinedNetworkRefused(t *testing.T) {
	f := newFixture(t)
	other := testKey("other-admin")
	_, err := f.s.Ingest(hostRec(other.Public(), f.alice, epoch, "fd00::1"), epoch)
	if ReasonOf(err) != ReasonNotJoined {
		t.Fatalf("got %v, want %s", err, ReasonNotJoined)
	}
	f.s.Join(other.Public())
	mustIngest(t, f.s, epoch, hostRec(other.Public(), f.alice, epoch, "fd00::1"))
	f.s.Leave(other.Public())
	if got := f.s.Len(other.Public()); got != 0 {
		t.Fatalf("left network still has %d records", got)
	}
}

// Each distinct record is verified once: offering it again, as bytes or as a
// record, costs a lookup; an older host record costs nothing either.
func TestVerifiedOncePerDistinctRecord(t *testing.T) {
	f := newFixture(t)
	h := hostRec(f.net, f.alice, epoch.Add(time.Minute), "fd00::1")
	c := claimRec(f.net, f.alice, "mors", epoch)
	a := witnessRec(c, f.w, epoch)
	mustIngest(t, f.s, epoch, h, c, a)
	before := f.s.Stats()
	for range 5 {
		for _, r := range []*Record{h, c, a, f.settings} {
			if o, err := f.s.Ingest(r, epoch); err != nil || o != Known {
				t.Fatalf("re-ingest %s: %v %v", r, o, err)
			}
			if rec, o, err := f.s.IngestBytes(r.Bytes(), epoch); err != nil || o != Known || rec != nil {
				t.Fatalf("re-ingest bytes of %s: %v %v", r, o, err)
			}
		}
	}
	old := hostRec(f.net, f.alice, epoch, "fd00::1")
	if o, err := f.s.Ingest(old, epoch); err != nil || o != Superseded {
		t.Fatalf("older host: %v %v", o, err)
	}
	if after := f.s.Stats(); after != before {
		t.Fatalf("known or superseded records were verified again: %+v -> %+v", before, after)
	}
}

func TestIngestBytesRefusesGarbageWithReason(t *testing.T) {
	f := newFixture(t)
	_, _, err := f.s.IngestBytes([]byte{1, 2, 3}, epoch)
	var rej *Rejection
	if !errors.As(err, &rej) || rej.Reason != ReasonMalformed || !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestIngestAllIsOrderFree(t *testing.T) {
	f := newFixture(t)
	c := claimRec(f.net, f.bob, "mors", epoch)
	batch := []*Record{witnessRec(c, f.w, epoch), c, hostRec(f.net, f.bob, epoch, "fd00::2")}
	s := NewState(DefaultOptions(), f.net)
	res := s.IngestAll(append(batch, f.settings), epoch)
	if res.Added != 4 || len(res.Rejected) != 0 || len(res.AddedRecords) != 4 {
		t.Fatalf("batch in reverse dependency order: %+v", res)
	}
	v := s.View(ViewConfig{Networks: []JoinedNetwork{{ID: f.net}}}, epoch)
	if e := v.Names["mors.nether"]; e == nil || e.Node != f.bob.Public() {
		t.Fatalf("view after batch: %v", describe(v, nil))
	}
}

// A claim stays inactive while no attestor has vouched for it, and
// activates when an attestation arrives: no restart, no re-claim.
func TestClaimActivatesWhenAttested(t *testing.T) {
	f := newFixture(t)
	c := claimRec(f.net, f.alice, "mors", epoch)
	mustIngest(t, f.s, epoch, hostRec(f.net, f.alice, epoch, "fd00::1"), c)
	cfg := ViewConfig{Networks: []JoinedNetwork{{ID: f.net}}}
	if e := f.s.View(cfg, epoch).Names["mors.nether"]; e != nil {
		t.Fatal("unattested claim is in the view")
	}
	st := f.s.NameStatus(f.net, "mors", epoch)
	if len(st.Claims) != 1 || st.Claims[0].Attested || st.Claims[0].Active || !st.Holder.IsZero() {
		t.Fatalf("status of unattested claim: %+v", st)
	}
	mustIngest(t, f.s, epoch, witnessRec(c, f.w, epoch.Add(time.Second)))
	if e := f.s.View(cfg, epoch).Names["mors.nether"]; e == nil || e.Node != f.alice.Public() {
		t.Fatal("attested claim is not in the view")
	}
	st = f.s.NameStatus(f.net, "mors", epoch)
	if st.Holder != f.alice.Public() || !st.Claims[0].Active || st.Claims[0].By.Kind != AttestorWitness {
		t.Fatalf("status of attested claim: %+v", st)
	}
}

func TestExtraRecordsInView(t *testing.T) {
	f := newFixture(t)
	s := must(SignSettings(testSettings(f.admin, epoch.Add(time.Second), func(s *Settings) {
		s.Witnesses = []PublicKey{f.w.Public()}
		s.Extra = []ExtraRecord{
			{Name: "_ssh._tcp.mors", Type: TypeSRV, Data: "0 5 22 mors"},
			{Name: "www", Type: TypeCNAME, Data: "mors"},
			{Name: "mors", Type: TypeTXT, TTL: time.Hour, Data: "hello"},
			{Name: "ext", Type: TypeCNAME, Data: "example.org."},
			{Name: "printer", Type: TypeAAAA, Data: "fd00::99"},
		}
	}), f.admin))
	c := claimRec(f.net, f.alice, "mors", epoch)
	mustIngest(t, f.s, epoch, s, hostRec(f.net, f.alice, epoch, "fd00::1"), c, witnessRec(c, f.w, epoch))
	v := f.s.View(ViewConfig{Networks: []JoinedNetwork{{ID: f.net}}}, epoch)
	for name, want := range map[string]string{
		"_ssh._tcp.mors.nether": "0 5 22 mors.nether.",
		"www.nether":            "mors.nether.",
		"ext.nether":            "example.org.",
		"printer.nether":        "fd00::99",
		"mors.nether":           "hello",
	} {
		e := v.Names[name]
		if e == nil || len(e.Extra) != 1 || e.Extra[0].Data != want {
			t.Errorf("%s: %+v, want one record %q", name, e, want)
		}
	}
	if e := v.Names["mors.nether"]; len(e.Addrs) != 1 || e.Extra[0].TTL != time.Hour {
		t.Errorf("mors.nether keeps its address and the TXT's own TTL: %+v", e)
	}
	if e := v.Names["www.nether"]; e.Extra[0].TTL != time.Minute {
		t.Errorf("extra record without TTL takes the network's: %v", e.Extra[0].TTL)
	}
	if z := v.Zones; len(z) != 1 || z[0].Domain != "nether" || z[0].TTL != time.Minute {
		t.Errorf("zones: %+v", z)
	}
	if got := v.Reverse[hostRec(f.net, f.alice, epoch, "fd00::1").Host().Addresses[0]]; len(got) != 1 || got[0] != "mors.nether" {
		t.Errorf("reverse: %v", got)
	}
}

// Restore brings back exactly what Entries listed, without verifying
// again, and still applies time: an expired host does not come back.
func TestEntriesRestore(t *testing.T) {
	f, _ := populated(t)
	var entries []Verified
	entries = append(entries, f.s.Verified(f.net)...)
	s := NewState(DefaultOptions(), f.net)
	res := s.Restore(entries, epoch)
	if s.Fingerprint(f.net) != f.s.Fingerprint(f.net) || res.Added != len(entries) {
		t.Fatalf("restored %d of %d entries, fingerprint equal: %v", res.Added, len(entries), s.Fingerprint(f.net) == f.s.Fingerprint(f.net))
	}
	if st := s.Stats(); st.SignaturesChecked != 0 || st.AttestationsVerified != 0 {
		t.Fatalf("restore verified again: %+v", st)
	}
	v1 := f.s.View(ViewConfig{Networks: []JoinedNetwork{{ID: f.net}}}, epoch)
	v2 := s.View(ViewConfig{Networks: []JoinedNetwork{{ID: f.net}}}, epoch)
	if !sameNames(v1, v2) {
		t.Fatal("restored state resolves differently")
	}
	later := NewState(DefaultOptions(), f.net)
	later.Restore(entries, epoch.Add(2*time.Hour))
	if later.Host(f.net, f.alice.Public()) != nil {
		t.Fatal("an expired host came back from the state file")
	}
}

// Restoring at a later time holds exactly what restoring then pruning at
// that time holds: Restore leaves out what a prune would drop instead of
// running one.
func TestRestoreLaterEqualsRestoreThenPrune(t *testing.T) {
	f, _ := populated(t)
	// bob renews his host record later than alice, so some moments see
	// one host live and not the other.
	mustIngest(t, f.s, epoch.Add(50*time.Minute), hostRec(f.net, f.bob, epoch.Add(50*time.Minute), "fd00::2"))
	entries := f.s.Verified(f.net)
	seen := map[int]bool{}
	for _, d := range []time.Duration{0, 30 * time.Minute, 70 * time.Minute, 2 * time.Hour, 25 * time.Hour, 30 * 24 * time.Hour} {
		later := epoch.Add(50*time.Minute + d)
		a := NewState(DefaultOptions(), f.net)
		resA := a.Restore(entries, later)
		b := NewState(DefaultOptions(), f.net)
		b.Restore(entries, epoch.Add(50*time.Minute))
		b.Prune(later)
		if a.Fingerprint(f.net) != b.Fingerprint(f.net) || len(a.Hosts(f.net)) != len(b.Hosts(f.net)) {
			t.Errorf("+%v: restored %d records (%d hosts), restore-then-prune holds %d hosts; fingerprints equal: %v",
				d, resA.Added, len(a.Hosts(f.net)), len(b.Hosts(f.net)), a.Fingerprint(f.net) == b.Fingerprint(f.net))
		}
		seen[len(a.Hosts(f.net))] = true
	}
	if !seen[0] || !seen[1] || !seen[2] {
		t.Fatalf("the moments did not see 2, 1 and 0 live hosts: %v", seen)
	}
}

// A Restorer fed in parts ends where Restore does; fed a part out of
// dependency order it refuses it, and everything after.
func TestRestorerInParts(t *testing.T) {
	f, _ := populated(t)
	entries := f.s.Verified(f.net)
	want := NewState(DefaultOptions(), f.net)
	wantRes := want.Restore(entries, epoch)
	for size := 1; size <= len(entries); size++ {
		st := NewState(DefaultOptions(), f.net)
		r := st.NewRestorer(epoch)
		for part := range slices.Chunk(entries, size) {
			if !r.Add(part) {
				t.Fatalf("parts of %d: refused in order", size)
			}
		}
		if res := r.Done(); res.Added != wantRes.Added || st.Fingerprint(f.net) != want.Fingerprint(f.net) {
			t.Fatalf("parts of %d: added %d, fingerprint equal %v; Restore added %d",
				size, res.Added, st.Fingerprint(f.net) == want.Fingerprint(f.net), wantRes.Added)
		}
	}
	st := NewState(DefaultOptions(), f.net)
	r := st.NewRestorer(epoch)
	// The settings record (first) after the rest, attestations last: out
	// of order.
	if !r.Add(entries[1:]) || r.Add(entries[:1]) || r.Add(entries[:1]) {
		t.Fatal("a settings record after an attestation was taken")
	}
	without := NewState(DefaultOptions(), f.net)
	withoutRes := without.Restore(entries[1:], epoch)
	if res := r.Done(); res.Added != withoutRes.Added || st.Fingerprint(f.net) != without.Fingerprint(f.net) {
		t.Fatalf("the refused part was taken: %d added, want %d", res.Added, withoutRes.Added)
	}
}
