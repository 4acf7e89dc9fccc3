package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func populated(t *testing.T) (*fixture, []*Record) {
	f := newFixture(t)
	c1 := claimRec(f.net, f.alice, "mors", epoch)
	c2 := claimRec(f.net, f.bob, "styx", epoch)
	recs := []*Record{hostRec(f.net, f.alice, epoch, "fd00::1"), hostRec(f.net, f.bob, epoch, "fd00::2"),
		c1, c2, witnessRec(c1, f.w, epoch), witnessRec(c2, f.w, epoch)}
	mustIngest(t, f.s, epoch, recs...)
	return f, append(recs, f.settings)
}

func TestDataJSONRoundTrip(t *testing.T) {
	f, _ := populated(t)
	b := must(EncodeDataJSON(f.s, f.net))
	df := must(DecodeDataJSON(b))
	if len(df.Networks) != 1 || len(df.Networks[0].Errors) != 0 || df.Networks[0].Network != f.net {
		t.Fatalf("decoded: %+v", df)
	}
	s := NewState(DefaultOptions(), f.net)
	if res := s.IngestAll(df.Networks[0].Records, epoch); len(res.Rejected) > 0 {
		t.Fatalf("rejected: %v", res.Rejected)
	}
	if s.Fingerprint(f.net) != f.s.Fingerprint(f.net) {
		t.Fatal("state read back from data.json differs")
	}
	if again := must(EncodeDataJSON(s, f.net)); !bytes.Equal(again, b) {
		t.Fatal("equal states give different data.json files")
	}
}

// A copy with a tampered field yields only the untampered records; a field
// that does not even parse costs only its record.
func TestDataJSONTamperedCopy(t *testing.T) {
	f, _ := populated(t)
	b := string(must(EncodeDataJSON(f.s, f.net)))
	for _, tc := range []struct {
		name, from, to string
		decodeErrs     int
		rejected       Reason
	}{
		{"changed address", `"fd00::2"`, `"fd00::66"`, 0, ReasonBadSignature},
		{"changed name", `"name": "styx"`, `"name": "mors"`, 0, ReasonBadSignature},
		{"unparsable address", `"fd00::2"`, `"not-an-address"`, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(b, tc.from) {
				t.Fatalf("data.json has no %s", tc.from)
			}
			df, err := DecodeDataJSON([]byte(strings.Replace(b, tc.from, tc.to, 1)))
			if err != nil {
				t.Fatal(err)
			}
			n := df.Networks[0]
			if len(n.Errors) != tc.decodeErrs {
				t.Fatalf("decode errors %v, want %d", n.Errors, tc.decodeErrs)
			}
			s := NewState(DefaultOptions(), f.net)
			res := s.IngestAll(n.Records, epoch)
			switch {
			case tc.rejected == "" && len(res.Rejected) != 0:
				t.Fatalf("rejected %v", res.Rejected)
			case tc.rejected != "":
				// The tampered record is refused; an attestation of a
				// tampered claim then has no claim to attach to.
				if len(res.Rejected) == 0 || res.Rejected[0].Reason != tc.rejected {
					t.Fatalf("rejected %v, want %s first", res.Rejected, tc.rejected)
				}
				for _, r := range res.Rejected[1:] {
					if r.Reason != ReasonUnknownSubject {
						t.Fatalf("also rejected %v", r)
					}
				}
			}
			// Everything except bob's host (and what hangs on it) survives.
			v := s.View(ViewConfig{Networks: []JoinedNetwork{{ID: f.net}}}, epoch)
			if e := v.Names["mors.nether"]; e == nil || e.Node != f.alice.Public() {
				t.Fatalf("untampered records lost: %s", describe(v, nil))
			}
			if s.Len(f.net) < f.s.Len(f.net)-2 {
				t.Fatalf("kept %d of %d records", s.Len(f.net), f.s.Len(f.net))
			}
		})
	}
}

func TestDataJSONRefusesWholeFile(t *testing.T) {
	for name, in := range map[string]string{
		"not json":       "{",
		"other format":   `{"format": "data-mesher/v9", "networks": []}`,
		"no format":      `{"networks": []}`,
		"bad network id": `{"format": "data-mesher/v1", "networks": [{"network": "xyz"}]}`,
	} {
		if _, err := DecodeDataJSON([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestEncodeDataJSONUnknownNetwork(t *testing.T) {
	f := newFixture(t)
	if _, err := EncodeDataJSON(f.s, testKey("x").Public()); err == nil {
		t.Fatal("encoded a network that is not joined")
	}
	_ = time.Second
}

// The streamed data.json is byte for byte the document encoding/json
// writes for the whole file at once, indented: for a network with every
// kind of record, an empty joined network beside it, and no network.
func TestDataJSONStreamIsTheDocument(t *testing.T) {
	f := newNSFixture(t)
	now := epoch.Add(time.Minute)
	fww, add := f.put(f.alice, "names", "git", "x", now), f.put(f.alice, "svc", "s", "v<&>", now)
	c := claimRec(f.net, f.alice, "mors", epoch)
	mustIngest(t, f.s, now, c, witnessRec(c, f.w, epoch), fww, witnessRec(fww, f.w, now), add,
		f.tomb(f.admin, f.alice.Public(), "s", now, add), f.logEntry(f.bob, 7, "\x00\xff", now), f.del(f.alice, "ssh", "host", now))
	empty := testKey("empty").Public()
	f.s.Join(empty)
	for _, nets := range [][]PublicKey{{f.net}, {f.net, empty}, {empty}, {}} {
		doc := dataJSON{Format: DataFormat, Networks: []networkJSON{}}
		for _, id := range nets {
			n := networkJSON{Network: id, Hosts: []hostJSON{}, Claims: []claimJSON{}, Entries: []entryJSON{}, Attestations: []attestationJSON{}}
			for _, r := range f.s.Records(id) {
				switch r.Kind() {
				case KindSettings:
					n.Settings = settingsToJSON(r)
				case KindHost:
					n.Hosts = append(n.Hosts, hostToJSON(r))
				case KindClaim:
					n.Claims = append(n.Claims, claimToJSON(r))
				case KindEntry:
					n.Entries = append(n.Entries, entryToJSON(r))
				case KindAttestation:
					n.Attestations = append(n.Attestations, attestationToJSON(r))
				}
			}
			doc.Networks = append(doc.Networks, n)
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			t.Fatal(err)
		}
		got := must(EncodeDataJSON(f.s, nets...))
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%d networks: the stream differs from the document:\n%s\nwant:\n%s", len(nets), got, want.Bytes())
		}
		snap := must(f.s.SnapshotDataJSON(nets...))
		var sb bytes.Buffer
		if n, err := snap.WriteTo(&sb); err != nil || n != int64(want.Len()) {
			t.Fatalf("WriteTo: %d bytes, %v; want %d", n, err, want.Len())
		}
	}
	if len(must(DecodeDataJSON(must(EncodeDataJSON(f.s, f.net)))).Networks[0].Records) != len(f.s.Records(f.net)) {
		t.Fatal("the stream does not read back whole")
	}
}

// A writer that fails stops the stream with its error.
func TestDataJSONStreamStopsAtAWriteError(t *testing.T) {
	f, _ := populated(t)
	snap := must(f.s.SnapshotDataJSON(f.net))
	boom := errors.New("disk full")
	if _, err := snap.WriteTo(failingWriter{boom}); !errors.Is(err, boom) {
		t.Fatalf("WriteTo: %v, want %v", err, boom)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }
