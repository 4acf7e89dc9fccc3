package crdt

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"testing"
	"time"
)

func TestFreeTSARoot(t *testing.T) {
	der := FreeTSARoot()
	if got := sha256.Sum256(der); hex.EncodeToString(got[:]) != FreeTSARootFingerprint {
		t.Fatalf("embedded FreeTSA root has fingerprint %x, want %s", got, FreeTSARootFingerprint)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSignatureFrom(c); err != nil || !c.IsCA {
		t.Fatalf("FreeTSA root is not a self-signed CA: %v", err)
	}
	if c.NotAfter.Before(time.Date(2041, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("FreeTSA root expires %v", c.NotAfter)
	}
	tr := newTrust(&Settings{TSARoots: [][]byte{der}})
	if len(tr.BadRoots) != 0 || len(tr.RootCertificates()) != 1 {
		t.Fatalf("FreeTSA root does not load as a trusted root: %v", tr.BadRoots)
	}
}

func TestUnwitnessed(t *testing.T) {
	f := newFixture(t)
	c1 := claimRec(f.net, f.alice, "mors", epoch)
	c2 := claimRec(f.net, f.bob, "styx", epoch)
	mustIngest(t, f.s, epoch, hostRec(f.net, f.alice, epoch, "fd00::1"), hostRec(f.net, f.bob, epoch, "fd00::2"), c1, c2)
	if got := f.s.Unwitnessed(f.net, f.alice.Public()); got != nil {
		t.Fatalf("a non-witness has work: %v", got)
	}
	if got := f.s.Unwitnessed(f.net, f.w.Public()); len(got) != 2 {
		t.Fatalf("witness sees %d claims to sign, want 2", len(got))
	}
	mustIngest(t, f.s, epoch, witnessRec(c1, f.w, epoch))
	if got := f.s.Unwitnessed(f.net, f.w.Public()); len(got) != 1 || got[0].Hash() != c2.Hash() {
		t.Fatalf("after signing one: %v", got)
	}
}
