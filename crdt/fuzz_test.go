package crdt

import (
	"bytes"
	"testing"
	"time"
)

// Fuzz targets for every decoder and for ingestion: hostile input must get
// an error, never a panic, and never a record that is not canonical.

// fuzzSeeds adds every golden record as a seed: each kind, namespaces of
// every policy and writers mode, entries of every shape.
func fuzzSeeds(f *testing.F) []*Record {
	recs := append(goldenRecords(f), goldenNamespaceRecords(f)...)
	for _, r := range recs {
		f.Add(r.Bytes())
	}
	return recs
}

// fuzzState is a state holding the golden records that its settings (those
// declaring the golden namespaces) admit.
func fuzzState(recs []*Record, now time.Time) *State {
	s := NewState(DefaultOptions(), testKey("admin").Public())
	var admitted []*Record
	for _, r := range recs {
		if r.Kind() != KindSettings || r.Settings().Namespaces != nil {
			admitted = append(admitted, r)
		}
	}
	s.IngestAll(admitted, now)
	return s
}

func FuzzDecodeRecord(f *testing.F) {
	seeds := fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := DecodeRecord(raw)
		// A RecordDecoder that decoded other records first (its scratch
		// holds their encodings) decides the same.
		var dec RecordDecoder
		for _, s := range seeds {
			_ = must(dec.Decode(s.Bytes()))
		}
		if r2, err2 := dec.Decode(raw); (err == nil) != (err2 == nil) || err == nil && r2.Hash() != r.Hash() {
			t.Fatalf("a reused decoder differs: %v against %v", err2, err)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(r.Bytes(), raw) || r.Size() != len(raw) {
			t.Fatal("decoded record does not rebuild its bytes")
		}
		// The record keeps nothing of the caller's buffer.
		scribbled := bytes.Clone(raw)
		r2, _ := DecodeRecord(scribbled)
		for i := range scribbled {
			scribbled[i] ^= 0xff
		}
		if !bytes.Equal(r2.Bytes(), raw) {
			t.Fatal("a decoded record changes with the buffer it was decoded from")
		}
		again, err := DecodeRecord(r.Bytes())
		if err != nil || again.Hash() != r.Hash() {
			t.Fatalf("a decoded record does not decode again: %v", err)
		}
		if err := again.validate(); err != nil {
			t.Fatalf("decoded record is not valid: %v", err)
		}
		_ = r.String()
		_ = r.VerifySignature()
	})
}

func FuzzDecodeDataJSON(f *testing.F) {
	admin := testKey("admin")
	s := fuzzState(append(goldenRecords(f), goldenNamespaceRecords(f)...), epoch.Add(time.Minute))
	f.Add(must(EncodeDataJSON(s, admin.Public())))
	f.Add([]byte(`{"format":"data-mesher/v1","networks":[{"network":"AAAA","hosts":[{}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		df, err := DecodeDataJSON(b)
		if err != nil {
			return
		}
		for _, n := range df.Networks {
			for _, r := range n.Records {
				if r.Network() != n.Network {
					t.Fatalf("%s filed under network %s", r, n.Network.Short())
				}
				if _, err := DecodeRecord(r.Bytes()); err != nil {
					t.Fatalf("record from data.json is not canonical: %v", err)
				}
			}
		}
	})
}

// FuzzIngest feeds arbitrary bytes to a populated state. Whatever happens,
// the state must still hold only records that verify.
func FuzzIngest(f *testing.F) {
	recs := fuzzSeeds(f)
	admin := testKey("admin")
	now := epoch.Add(time.Minute)
	if s := fuzzState(recs, now); len(s.EntriesOf(admin.Public(), "services")) == 0 || s.Settings(admin.Public()).Settings().Namespaces == nil {
		f.Fatal("the fuzzed state holds no entries")
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := fuzzState(recs, now)
		before := s.Len(admin.Public())
		rec, out, err := s.IngestBytes(raw, now)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			if s.Len(admin.Public()) != before {
				t.Fatal("a refused record changed the state")
			}
			return
		}
		if out == Added {
			if rec == nil || s.Lookup(admin.Public(), rec.Hash()) == nil {
				t.Fatalf("added record %v is not held", rec)
			}
			if err := rec.VerifySignature(); err != nil {
				t.Fatalf("state took %s: %v", rec, err)
			}
		}
		_ = s.View(ViewConfig{Networks: []JoinedNetwork{{ID: admin.Public()}}}, now)
		for _, ns := range s.Namespaces(admin.Public()) {
			_ = s.Items(admin.Public(), ns.Name, now)
		}
	})
}

// FuzzVerifyToken feeds arbitrary tokens through the RFC 3161 verification
// path (CMS and ASN.1 parsing of hostile DER). Nothing may panic, and
// nothing but a token for the claim from the pinned TSA may verify.
func FuzzVerifyToken(f *testing.F) {
	tsa := newTestTSA(f, tsaOpts{})
	claim := Hash{1}
	f.Add(tsa.stamp(f, claim, epoch))
	f.Add(tsa.stamp(f, Hash{2}, epoch))
	f.Add([]byte{0x30, 0x80, 0x06, 0x09})
	trust := tsaTrust(tsa)
	f.Fuzz(func(t *testing.T, token []byte) {
		at, err := TSAVerifier{}.VerifyToken(token, claim, trust)
		if err == nil && !trust.Trusts(at.By) {
			t.Fatalf("verified a token from an attestor the trust does not name: %+v", at)
		}
	})
}
