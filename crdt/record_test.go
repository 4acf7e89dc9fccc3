package crdt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenRecords builds one record of every kind with every field set, from
// fixed keys and times: the same input must give the same bytes forever.
func goldenRecords(t testing.TB) []*Record {
	admin, alice, w := testKey("admin"), testKey("alice"), testKey("w")
	s := must(SignSettings(Settings{
		Network: admin.Public(), Updated: epoch, Domain: "nether",
		HostTTL: 24 * time.Hour, DNSTTL: time.Minute,
		Restricted: true, AllowedNodes: []PublicKey{alice.Public(), w.Public()},
		Banned:    []PublicKey{testKey("mallory").Public()},
		Overrides: []Override{{Name: "gate", Node: alice.Public()}},
		Witnesses: []PublicKey{w.Public()},
		TSARoots:  [][]byte{[]byte("not parsed here: any DER bytes")},
		TSAURLs:   []string{"https://freetsa.org/tsr"},
		Extra: []ExtraRecord{
			{Name: "_ssh._tcp.mors", Type: TypeSRV, Data: "0 0 22 mors"},
			{Name: "printer", Type: TypeAAAA, TTL: time.Hour, Data: "fd00::99"},
			{Name: "www", Type: TypeCNAME, Data: "mors"},
			{Name: "@", Type: TypeTXT, Data: "v=spf1 -all"},
		},
	}, admin))
	h := hostRec(admin.Public(), alice, epoch.Add(time.Second), "fd00::1", "10.0.0.1")
	c := claimRec(admin.Public(), alice, "mors", epoch.Add(2*time.Second))
	a := witnessRec(c, w, epoch.Add(3*time.Second))
	tok := must(NewAttestation(Attestation{Network: admin.Public(), Claim: c.Hash(), RFC3161: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}))
	return []*Record{s, h, c, a, tok}
}

func TestGoldenEncoding(t *testing.T) {
	var buf bytes.Buffer
	for _, r := range goldenRecords(t) {
		fmt.Fprintf(&buf, "%s %s\n%s\n", r.Kind(), r.Hash(), hex.EncodeToString(r.Bytes()))
	}
	const file = "testdata/golden/records.txt"
	if *update {
		if err := os.MkdirAll("testdata/golden", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update once to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("the canonical encoding changed; records signed by older versions would no longer verify.\ngot:\n%s\nwant:\n%s", buf.Bytes(), want)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	for _, r := range goldenRecords(t) {
		d, err := DecodeRecord(r.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if d.Hash() != r.Hash() || !bytes.Equal(d.Bytes(), r.Bytes()) {
			t.Errorf("%s: decoding changed the record", r)
		}
		if err := d.VerifySignature(); err != nil {
			t.Errorf("%s: %v", r, err)
		}
		if d.String() != r.String() || d.Network() != r.Network() || d.Signer() != r.Signer() || !d.Time().Equal(r.Time()) {
			t.Errorf("%s: decoded accessors differ", r)
		}
	}
}

// The decoded record must not alias the caller's buffer.
func TestDecodeCopiesInput(t *testing.T) {
	recs := goldenRecords(t)
	tok := recs[len(recs)-1]
	buf := bytes.Clone(tok.Bytes())
	d := must(DecodeRecord(buf))
	for i := range buf {
		buf[i] = 0xff
	}
	if !bytes.Equal(d.Attestation().RFC3161, tok.Attestation().RFC3161) || !bytes.Equal(d.Bytes(), tok.Bytes()) {
		t.Fatal("decoded record changed when the input buffer was reused")
	}
}

func TestSignNormalizes(t *testing.T) {
	admin, alice := testKey("admin"), testKey("alice")
	h := must(SignHost(Host{Network: admin.Public(), Node: alice.Public(), Heartbeat: epoch,
		Addresses: []netip.Addr{netip.MustParseAddr("fd00::2"), netip.MustParseAddr("::ffff:10.0.0.1"), netip.MustParseAddr("fd00::2")}}, alice))
	want := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::2")}
	if got := h.Host().Addresses; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("addresses %v, want %v", got, want)
	}
	s := must(SignSettings(Settings{Network: admin.Public(), Updated: epoch.Local(), Domain: "Nether.", HostTTL: time.Hour,
		Banned: []PublicKey{alice.Public(), testKey("b").Public(), alice.Public()}}, admin))
	if s.Settings().Domain != "nether" || len(s.Settings().Banned) != 2 {
		t.Fatalf("settings not normalized: %q %d", s.Settings().Domain, len(s.Settings().Banned))
	}
	if s2 := must(DecodeRecord(s.Bytes())); s2.Hash() != s.Hash() {
		t.Fatal("normalized settings do not round-trip")
	}
}

// Every way of writing a record other than the canonical one is refused, so
// that a record has exactly one hash.
func TestDecodeRefusesNonCanonical(t *testing.T) {
	admin, alice := testKey("admin"), testKey("alice")
	host := func(addrs ...string) *Host {
		h := &Host{Network: admin.Public(), Node: alice.Public(), Heartbeat: epoch}
		for _, a := range addrs {
			h.Addresses = append(h.Addresses, netip.MustParseAddr(a))
		}
		return h
	}
	signedRaw := func(r *Record) []byte {
		u := r.encodeUnsigned()
		return append(u, alice.Sign(signingMessage(u))...)
	}
	claim := claimRec(admin.Public(), alice, "mors", epoch)
	raw := claim.Bytes()
	nameLenAt := len(raw) - signatureSize - len("mors") - 1
	nonMinimal := append(append(bytes.Clone(raw[:nameLenAt]), 0x84, 0x00), raw[nameLenAt+1:]...)

	for _, tc := range []struct {
		name string
		raw  []byte
		says string
	}{
		{"unsorted addresses", signedRaw(&Record{kind: KindHost, body: host("fd00::2", "fd00::1")}), "sorted"},
		{"duplicate addresses", signedRaw(&Record{kind: KindHost, body: host("fd00::1", "fd00::1")}), "sorted"},
		{"upper-case name", signedRaw(&Record{kind: KindClaim, body: &Claim{Network: admin.Public(), Node: alice.Public(), Name: "Mors", Created: epoch}}), "character"},
		{"non-minimal length", nonMinimal, "canonical"},
		{"trailing bytes", append(append(bytes.Clone(raw[:len(raw)-signatureSize]), 0), raw[len(raw)-signatureSize:]...), "trailing"},
		{"unknown version", append([]byte{2}, raw[1:]...), "version"},
		{"unknown kind", append([]byte{1, 9}, raw[2:]...), "kind"},
		{"truncated", raw[:40], ""},
		{"empty", nil, "short"},
		{"oversized", make([]byte, MaxRecordSize+1), "at most"},
	} {
		_, err := DecodeRecord(tc.raw)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v, want ErrMalformed saying %q", tc.name, err, tc.says)
		}
	}
}

func TestSignRefusesBadInput(t *testing.T) {
	admin, alice := testKey("admin"), testKey("alice")
	base := func() Settings { return testSettings(admin, epoch, nil) }
	for _, tc := range []struct {
		name string
		mod  func(*Settings)
		says string
	}{
		{"empty domain", func(s *Settings) { s.Domain = "" }, "domain"},
		{"bad domain", func(s *Settings) { s.Domain = "a..b" }, "empty label"},
		{"short TTL", func(s *Settings) { s.HostTTL = time.Second }, "host TTL"},
		{"fractional TTL", func(s *Settings) { s.HostTTL = time.Hour + time.Millisecond }, "whole seconds"},
		{"bad override", func(s *Settings) { s.Overrides = []Override{{Name: "-x", Node: alice.Public()}} }, "hyphen"},
		{"bad URL", func(s *Settings) { s.TSAURLs = []string{"ftp://x"} }, "http"},
		{"bad SRV", func(s *Settings) { s.Extra = []ExtraRecord{{Name: "_s._tcp", Type: TypeSRV, Data: "1 2 x"}} }, "SRV"},
		{"A with v6", func(s *Settings) { s.Extra = []ExtraRecord{{Name: "p", Type: TypeA, Data: "fd00::1"}} }, "address"},
		{"MX", func(s *Settings) { s.Extra = []ExtraRecord{{Name: "p", Type: 15, Data: "x"}} }, "may add"},
		{"no time", func(s *Settings) { s.Updated = time.Time{} }, "1970"},
	} {
		s := base()
		tc.mod(&s)
		_, err := SignSettings(s, admin)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v, want ErrMalformed saying %q", tc.name, err, tc.says)
		}
	}
	if _, err := SignSettings(base(), alice); err == nil || !strings.Contains(err.Error(), "admin key") {
		t.Errorf("settings signed by a node key: err = %v", err)
	}
	if _, err := SignClaim(Claim{Network: admin.Public(), Node: alice.Public(), Name: "mors", Created: epoch}, admin); err == nil {
		t.Error("claim signed by another key was built")
	}
}
