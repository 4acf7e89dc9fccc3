package crdt

import (
	"crypto/sha256"
	"net/netip"
	"testing"
	"time"
)

// epoch is the time every test history starts from.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testKey derives a deterministic key from a name, so that tests and
// golden files are reproducible.
func testKey(name string) PrivateKey {
	seed := sha256.Sum256([]byte("data-mesher test key " + name))
	k, err := NewPrivateKeyFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	return k
}

func testSettings(admin PrivateKey, updated time.Time, mod func(*Settings)) Settings {
	s := Settings{
		Network: admin.Public(), Updated: updated, Domain: "nether",
		HostTTL: time.Hour, DNSTTL: time.Minute,
	}
	if mod != nil {
		mod(&s)
	}
	return s
}

// must unwraps a constructor's result in tests; an error is a bug in the
// test itself, so it panics (which fails the test with a stack).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func hostRec(network PublicKey, node PrivateKey, at time.Time, addrs ...string) *Record {
	h := Host{Network: network, Node: node.Public(), Heartbeat: at, GossipPort: 7946, HTTPPort: 7331, DNSPort: 53}
	for _, a := range addrs {
		h.Addresses = append(h.Addresses, netip.MustParseAddr(a))
	}
	return must(SignHost(h, node))
}

func claimRec(network PublicKey, node PrivateKey, name string, at time.Time) *Record {
	return must(SignClaim(Claim{Network: network, Node: node.Public(), Name: name, Created: at}, node))
}

func witnessRec(claim *Record, witness PrivateKey, at time.Time) *Record {
	return must(WitnessClaim(claim.Network(), claim.Hash(), at, witness))
}

func mustIngest(t testing.TB, s *State, now time.Time, recs ...*Record) {
	t.Helper()
	for _, r := range recs {
		if _, err := s.Ingest(r, now); err != nil {
			t.Fatalf("ingesting %s: %v", r, err)
		}
	}
}
