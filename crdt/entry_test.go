package crdt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// goldenNamespaceRecords builds settings declaring a namespace of every
// writers mode and policy, and an entry of every shape: the bytes of
// testdata/golden/namespaces.txt. (records.txt pins the four older kinds;
// it did not change when namespaces came.)
func goldenNamespaceRecords(t testing.TB) []*Record {
	admin, alice, bob, w := testKey("admin"), testKey("alice"), testKey("bob"), testKey("w")
	net := admin.Public()
	s := must(SignSettings(Settings{
		Network: net, Updated: epoch, Domain: "nether",
		HostTTL: 24 * time.Hour, DNSTTL: time.Minute,
		Witnesses: []PublicKey{w.Public()},
		Namespaces: []Namespace{
			{Name: "aliases", Writers: WritersKeys, WriterKeys: []PublicKey{alice.Public(), bob.Public()}, Policy: PolicyLWW},
			{Name: "config", Writers: WritersAdmin, Policy: PolicyLWW, MaxValue: 4096},
			{Name: "events", Writers: WritersOwner, Policy: PolicyLog, MaxEntriesPerWriter: 1000, Lifetime: 7 * 24 * time.Hour},
			{Name: "names", Writers: WritersMembers, Policy: PolicyFWW},
			{Name: "services", Writers: WritersOwner, Policy: PolicyORSet, Lifetime: 24 * time.Hour},
			{Name: "ssh.host-keys", Writers: WritersMembers, Policy: PolicyGSet, MaxValue: 512, MaxEntriesPerWriter: 8},
		},
	}, admin))
	put := func(k PrivateKey, ns string, p Policy, key, value string, at time.Duration) *Record {
		return must(SignEntry(Entry{Network: net, Namespace: ns, Writer: k.Public(), Key: key, Time: epoch.Add(at), Policy: p, Op: OpPut, Value: []byte(value)}, k))
	}
	lww := put(alice, "aliases", PolicyLWW, "www", "mors", time.Second)
	del := must(SignEntry(Entry{Network: net, Namespace: "aliases", Writer: bob.Public(), Key: "www", Time: epoch.Add(2 * time.Second), Policy: PolicyLWW, Op: OpDelete}, bob))
	fww := put(alice, "names", PolicyFWW, "git", "fd00::1", 3*time.Second)
	gset := put(bob, "ssh.host-keys", PolicyGSet, "bob", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", 4*time.Second)
	add := put(alice, "services", PolicyORSet, "_ssh._tcp", "0 0 22 mors", 5*time.Second)
	tomb := must(SignEntry(Entry{Network: net, Namespace: "services", Writer: alice.Public(), Key: "_ssh._tcp", Time: epoch.Add(6 * time.Second),
		Policy: PolicyORSet, Op: OpDelete, Target: alice.Public(), Removes: []Hash{add.Hash()}}, alice))
	log := must(SignEntry(Entry{Network: net, Namespace: "events", Writer: bob.Public(), Key: "boot", Time: epoch.Add(7 * time.Second),
		Policy: PolicyLog, Op: OpPut, Seq: 42, Value: []byte{0, 1, 2, 0xff}}, bob))
	att := witnessRec(fww, w, epoch.Add(8*time.Second))
	return []*Record{s, lww, del, fww, gset, add, tomb, log, att}
}

func TestGoldenNamespaces(t *testing.T) {
	var buf bytes.Buffer
	for _, r := range goldenNamespaceRecords(t) {
		fmt.Fprintf(&buf, "%s %s\n%s\n", r.Kind(), r.Hash(), hex.EncodeToString(r.Bytes()))
	}
	const file = "testdata/golden/namespaces.txt"
	if *update {
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update once to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("the canonical encoding of namespaces or entries changed.\ngot:\n%s\nwant:\n%s", buf.Bytes(), want)
	}
}

func TestNamespaceRecordsRoundTrip(t *testing.T) {
	for _, r := range goldenNamespaceRecords(t) {
		d, err := DecodeRecord(r.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if d.Hash() != r.Hash() || d.String() != r.String() || d.Signer() != r.Signer() || !d.Time().Equal(r.Time()) || d.Network() != r.Network() {
			t.Errorf("%s: decoding changed the record", r)
		}
		if err := d.VerifySignature(); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
	s := goldenNamespaceRecords(t)[0].Settings()
	if ns := s.Namespace("services"); ns == nil || ns.Policy != PolicyORSet || s.Namespace("nope") != nil {
		t.Fatalf("Settings.Namespace: %+v", ns)
	}
}

// Settings without namespaces keep their encoding: the namespaces are a
// trailing field, absent when empty. An explicit empty list would give the
// same settings a second encoding, so it is refused.
func TestSettingsNamespacesTrailingField(t *testing.T) {
	admin := testKey("admin")
	plain := must(SignSettings(testSettings(admin, epoch, nil), admin))
	with := must(SignSettings(testSettings(admin, epoch, func(s *Settings) {
		s.Namespaces = []Namespace{{Name: "x", Writers: WritersAdmin, Policy: PolicyLWW}}
	}), admin))
	unsigned := plain.Bytes()[:len(plain.Bytes())-signatureSize]
	if !bytes.HasPrefix(with.Bytes(), unsigned) {
		t.Fatal("namespaces are not a trailing field of the settings body")
	}
	empty := append(bytes.Clone(unsigned), 0)
	empty = append(empty, admin.Sign(signingMessage(empty))...)
	if _, err := DecodeRecord(empty); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "canonical") {
		t.Fatalf("settings with an explicit empty namespace list: %v", err)
	}
	if d := must(DecodeRecord(plain.Bytes())); d.Settings().Namespaces != nil {
		t.Fatal("settings without namespaces decode with some")
	}
}

func TestSignSettingsRefusesBadNamespaces(t *testing.T) {
	admin, alice := testKey("admin"), testKey("alice")
	for _, tc := range []struct {
		name string
		ns   []Namespace
		says string
	}{
		{"members lww", []Namespace{{Name: "a", Writers: WritersMembers, Policy: PolicyLWW}}, "use writers owner"},
		{"orset without lifetime", []Namespace{{Name: "a", Writers: WritersOwner, Policy: PolicyORSet}}, "needs a lifetime"},
		{"keys without keys", []Namespace{{Name: "a", Writers: WritersKeys, Policy: PolicyLWW}}, "without any key"},
		{"keys outside keys mode", []Namespace{{Name: "a", Writers: WritersOwner, WriterKeys: []PublicKey{alice.Public()}, Policy: PolicyLWW}}, "only for writers keys"},
		{"duplicate", []Namespace{{Name: "a", Writers: WritersAdmin, Policy: PolicyLWW}, {Name: "a", Writers: WritersAdmin, Policy: PolicyGSet}}, "twice"},
		{"upper-case name is lowered, bad characters are not", []Namespace{{Name: "a_b", Writers: WritersAdmin, Policy: PolicyLWW}}, "character"},
		{"leading dot", []Namespace{{Name: ".a", Writers: WritersAdmin, Policy: PolicyLWW}}, "not first"},
		{"long name", []Namespace{{Name: strings.Repeat("a", 65), Writers: WritersAdmin, Policy: PolicyLWW}}, "length"},
		{"unknown policy", []Namespace{{Name: "a", Writers: WritersAdmin, Policy: 9}}, "policy"},
		{"unknown writers", []Namespace{{Name: "a", Writers: 0, Policy: PolicyLWW}}, "writers"},
		{"huge values", []Namespace{{Name: "a", Writers: WritersAdmin, Policy: PolicyLWW, MaxValue: MaxValueLimit + 1}}, "max value"},
		{"many entries", []Namespace{{Name: "a", Writers: WritersAdmin, Policy: PolicyLWW, MaxEntriesPerWriter: MaxEntriesPerWriterLimit + 1}}, "max entries"},
		{"short lifetime", []Namespace{{Name: "a", Writers: WritersAdmin, Policy: PolicyLWW, Lifetime: time.Second}}, "lifetime"},
		{"fractional lifetime", []Namespace{{Name: "a", Writers: WritersAdmin, Policy: PolicyLWW, Lifetime: time.Hour + time.Millisecond}}, "lifetime"},
	} {
		_, err := SignSettings(testSettings(admin, epoch, func(s *Settings) { s.Namespaces = tc.ns }), admin)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v, want ErrMalformed saying %q", tc.name, err, tc.says)
		}
	}
	s := must(SignSettings(testSettings(admin, epoch, func(s *Settings) {
		s.Namespaces = []Namespace{{Name: "B", Writers: WritersAdmin, Policy: PolicyLWW}, {Name: "a", Writers: WritersAdmin, Policy: PolicyGSet}}
	}), admin))
	if got := s.Settings().Namespaces; got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("namespaces not normalized: %+v", got)
	}
}

func TestEntryForm(t *testing.T) {
	admin, alice := testKey("admin"), testKey("alice")
	base := func() Entry {
		return Entry{Network: admin.Public(), Namespace: "a", Writer: alice.Public(), Key: "k", Time: epoch, Policy: PolicyLWW, Op: OpPut, Value: []byte("v")}
	}
	for _, tc := range []struct {
		name string
		mod  func(*Entry)
		says string
	}{
		{"empty key", func(e *Entry) { e.Key = "" }, "key"},
		{"long key", func(e *Entry) { e.Key = strings.Repeat("k", MaxEntryKey+1) }, "key"},
		{"control character", func(e *Entry) { e.Key = "a\nb" }, "control"},
		{"not UTF-8", func(e *Entry) { e.Key = "a\xffb" }, "UTF-8"},
		{"bad namespace", func(e *Entry) { e.Namespace = "A B" }, "namespace"},
		{"no time", func(e *Entry) { e.Time = time.Time{} }, "1970"},
		{"unknown policy", func(e *Entry) { e.Policy = 0 }, "policy"},
		{"unknown op", func(e *Entry) { e.Op = 3 }, "op"},
		{"delete with value", func(e *Entry) { e.Op = OpDelete }, "value"},
		{"seq outside a log", func(e *Entry) { e.Seq = 1 }, "sequence"},
		{"target outside orset", func(e *Entry) { e.Op, e.Value, e.Target = OpDelete, nil, alice.Public() }, "target"},
		{"tombstone without target", func(e *Entry) {
			e.Policy, e.Op, e.Value, e.Removes = PolicyORSet, OpDelete, nil, []Hash{{1}}
		}, "target"},
		{"tombstone removing nothing", func(e *Entry) { e.Policy, e.Op, e.Value, e.Target = PolicyORSet, OpDelete, nil, alice.Public() }, "removes 0"},
		{"huge value", func(e *Entry) { e.Value = make([]byte, MaxValueLimit+1) }, "value"},
	} {
		e := base()
		tc.mod(&e)
		_, err := SignEntry(e, alice)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v, want ErrMalformed saying %q", tc.name, err, tc.says)
		}
	}
	if _, err := SignEntry(base(), admin); err == nil || !strings.Contains(err.Error(), "writer key") {
		t.Errorf("entry signed by another key: %v", err)
	}
	// Signing sorts a tombstone's removed adds and drops duplicates.
	e := base()
	e.Policy, e.Op, e.Value, e.Target, e.Removes = PolicyORSet, OpDelete, nil, alice.Public(), []Hash{{3}, {1}, {3}}
	r := must(SignEntry(e, alice))
	if got := r.Entry().Removes; len(got) != 2 || got[0] != (Hash{1}) {
		t.Fatalf("removes not normalized: %v", got)
	}
}

// A decoder refuses every encoding of an entry but the canonical one.
func TestDecodeRefusesNonCanonicalEntries(t *testing.T) {
	admin, alice := testKey("admin"), testKey("alice")
	signed := func(e *Entry) []byte {
		u := (&Record{kind: KindEntry, body: e}).encodeUnsigned()
		return append(u, alice.Sign(signingMessage(u))...)
	}
	tomb := func(removes ...Hash) *Entry {
		return &Entry{Network: admin.Public(), Namespace: "s", Writer: alice.Public(), Key: "k", Time: epoch,
			Policy: PolicyORSet, Op: OpDelete, Target: alice.Public(), Removes: removes}
	}
	for _, tc := range []struct {
		name string
		raw  []byte
		says string
	}{
		{"unsorted removes", signed(tomb(Hash{2}, Hash{1})), "sorted"},
		{"duplicate removes", signed(tomb(Hash{1}, Hash{1})), "sorted"},
		{"truncated", signed(tomb(Hash{1}))[:90], ""},
		{"delete with value", signed(&Entry{Network: admin.Public(), Namespace: "s", Writer: alice.Public(), Key: "k", Time: epoch,
			Policy: PolicyLWW, Op: OpDelete, Value: []byte("x")}), "value"},
	} {
		_, err := DecodeRecord(tc.raw)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v, want ErrMalformed saying %q", tc.name, err, tc.says)
		}
	}
}
