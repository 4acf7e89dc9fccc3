package crdt

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Benchmarks for the figures the CRDT issue names. Each comparison runs in
// the same benchmark, so the ratio is measured under the same load:
//
//	go test -run XXX -bench . -benchtime 3s ./crdt

var benchNow = epoch.Add(time.Minute)

type benchWorld struct {
	admin    PrivateKey
	settings *Record
	hosts    []*Record // one per distinct node
	claims   []*Record
	atts     []*Record
}

var (
	worldOnce sync.Once
	world     *benchWorld
)

// benchWorldOf builds (once) 10,000 nodes, each with a host record, a claim
// and a witness attestation.
func benchWorldOf() *benchWorld {
	worldOnce.Do(func() {
		w := &benchWorld{admin: testKey("admin")}
		witness := testKey("w")
		w.settings = must(SignSettings(Settings{Network: w.admin.Public(), Updated: epoch, Domain: "mesh",
			HostTTL: time.Hour, DNSTTL: time.Minute, Witnesses: []PublicKey{witness.Public()}}, w.admin))
		for i := range 10000 {
			node := testKey(fmt.Sprint("node", i))
			addr := netip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)})
			w.hosts = append(w.hosts, must(SignHost(Host{Network: w.admin.Public(), Node: node.Public(), Heartbeat: epoch,
				Addresses: []netip.Addr{addr}, GossipPort: 7946, HTTPPort: 7331, DNSPort: 53}, node)))
			c := must(SignClaim(Claim{Network: w.admin.Public(), Node: node.Public(), Name: fmt.Sprint("host", i), Created: epoch}, node))
			w.claims = append(w.claims, c)
			w.atts = append(w.atts, must(WitnessClaim(w.admin.Public(), c.Hash(), epoch, witness)))
		}
		world = w
	})
	return world
}

func (w *benchWorld) fresh() *State {
	s := NewState(DefaultOptions(), w.admin.Public())
	if _, err := s.Ingest(w.settings, benchNow); err != nil {
		panic(err)
	}
	return s
}

func (w *benchWorld) full() *State {
	s := w.fresh()
	for _, list := range [][]*Record{w.hosts, w.claims, w.atts} {
		for _, r := range list {
			if _, err := s.Ingest(r, benchNow); err != nil {
				panic(err)
			}
		}
	}
	return s
}

// BenchmarkIngestVsVerify ingests new records from their wire bytes (decode,
// hash, policy, signature, insert) and, in the same run, checks the same
// records' signatures with bare ed25519.Verify. The metric
// ingest/verify-throughput is the ratio of the two rates (goal ≥ 0.8).
func BenchmarkIngestVsVerify(b *testing.B) {
	w := benchWorldOf()
	recs := w.hosts
	type signed struct{ pub, msg, sig []byte }
	raw := make([]signed, len(recs))
	for i, r := range recs {
		pub := r.Signer()
		raw[i] = signed{pub: pub[:], msg: signingMessage(r.encodeUnsigned()), sig: r.sig[:]}
	}
	var verifyNS, ingestNS time.Duration
	s := w.fresh()
	const chunk = 250
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		start := done % len(recs)
		if start+n > len(recs) {
			start = 0
		}
		if start == 0 {
			b.StopTimer()
			s = w.fresh()
			b.StartTimer()
		}
		t0 := time.Now()
		for i := start; i < start+n; i++ {
			if !ed25519.Verify(raw[i].pub, raw[i].msg, raw[i].sig) {
				b.Fatal("verify failed")
			}
		}
		t1 := time.Now()
		for i := start; i < start+n; i++ {
			if _, out, err := s.IngestBytes(recs[i].Bytes(), benchNow); err != nil || out != Added {
				b.Fatal(out, err)
			}
		}
		t2 := time.Now()
		verifyNS += t1.Sub(t0)
		ingestNS += t2.Sub(t1)
	}
	b.ReportMetric(float64(verifyNS.Nanoseconds())/float64(b.N), "verify-ns/rec")
	b.ReportMetric(float64(ingestNS.Nanoseconds())/float64(b.N), "ingest-ns/rec")
	b.ReportMetric(float64(verifyNS)/float64(ingestNS), "ingest/verify-throughput")
}

// BenchmarkReingestKnown offers records the state already holds, as wire
// bytes: a hash and a lookup each (goal ≥ 1M records/s on one core).
func BenchmarkReingestKnown(b *testing.B) {
	w := benchWorldOf()
	s := w.full()
	all := append(append(append([]*Record{}, w.hosts...), w.claims...), w.atts...)
	b.ResetTimer()
	for i := range b.N {
		if _, out, err := s.IngestBytes(all[i%len(all)].Bytes(), benchNow); err != nil || out != Known {
			b.Fatal(out, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkMergeKnown merges a state whose records are all known.
func BenchmarkMergeKnown(b *testing.B) {
	w := benchWorldOf()
	s, o := w.full(), w.full()
	per := o.Len(w.admin.Public())
	b.ResetTimer()
	for range b.N {
		if s.Merge(o) != 0 {
			b.Fatal("merge of known records added something")
		}
	}
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkView10k computes the resolved view of 10,000 hosts, each with
// one attested name.
func BenchmarkView10k(b *testing.B) {
	w := benchWorldOf()
	s := w.full()
	cfg := ViewConfig{Networks: []JoinedNetwork{{ID: w.admin.Public(), Priority: 1}}}
	if n := len(s.View(cfg, benchNow).Names); n != 10000 {
		b.Fatalf("view has %d names", n)
	}
	b.ResetTimer()
	for range b.N {
		s.View(cfg, benchNow)
	}
}

// BenchmarkAttestationVerify verifies one RFC 3161 token (ECDSA P-256 TSA
// certificate under a P-256 root) and one witness signature.
func BenchmarkAttestationVerify(b *testing.B) {
	tsa := newTestTSA(b, tsaOpts{})
	claim := Hash{1}
	token := tsa.stamp(b, claim, epoch)
	trust := tsaTrust(tsa)
	b.Run("rfc3161", func(b *testing.B) {
		for range b.N {
			if _, err := (TSAVerifier{}).VerifyToken(token, claim, trust); err != nil {
				b.Fatal(err)
			}
		}
	})
	w := testKey("w")
	att := must(WitnessClaim(testKey("admin").Public(), claim, epoch, w)).Attestation()
	wtrust := newTrust(&Settings{Witnesses: []PublicKey{w.Public()}})
	b.Run("witness", func(b *testing.B) {
		for range b.N {
			if _, err := (Verifier{}).VerifyAttestation(att, wtrust); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDataJSONStream writes data.json of 10,000 hosts (30,001
// records) as a stream: what a peer serving a bootstrap allocates.
func BenchmarkDataJSONStream(b *testing.B) {
	w := benchWorldOf()
	s := w.full()
	snap, err := s.SnapshotDataJSON(w.admin.Public())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var n int64
	for b.Loop() {
		if n, err = snap.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "bytes")
}
