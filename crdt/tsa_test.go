package crdt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"
)

// testTSA is an in-process RFC 3161 authority built on the timestamp
// library's response creation: a root CA and a time-stamping certificate.
type testTSA struct {
	root    *x509.Certificate
	rootDER []byte
	cert    *x509.Certificate
	key     crypto.Signer
}

type tsaOpts struct {
	noEKU       bool      // leave out the time-stamping usage
	nonCritical bool      // time-stamping usage, but not critical
	notBefore   time.Time // TSA certificate validity
	notAfter    time.Time
}

func newTestTSA(t testing.TB, o tsaOpts) *testTSA {
	t.Helper()
	caKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test TSA root"},
		NotBefore: epoch.AddDate(-1, 0, 0), NotAfter: epoch.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER := must(x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey))
	root := must(x509.ParseCertificate(rootDER))
	if o.notBefore.IsZero() {
		o.notBefore, o.notAfter = epoch.AddDate(-1, 0, 0), epoch.AddDate(5, 0, 0)
	}
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test TSA"},
		NotBefore: o.notBefore, NotAfter: o.notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if !o.noEKU {
		// x509 marks the EKU extension non-critical; RFC 3161 wants it
		// critical, so write the extension by hand.
		val := must(asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}}))
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidExtKeyUsage, Critical: !o.nonCritical, Value: val}}
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), caKey))
	return &testTSA{root: root, rootDER: rootDER, cert: must(x509.ParseCertificate(der)), key: key}
}

// stamp issues a token for imprint at time at.
func (a *testTSA) stamp(t testing.TB, imprint Hash, at time.Time) []byte {
	t.Helper()
	ts := timestamp.Timestamp{
		HashAlgorithm: crypto.SHA256, HashedMessage: imprint[:], Time: at,
		Policy: asn1.ObjectIdentifier{1, 2, 3, 4}, AddTSACertificate: true, Nonce: big.NewInt(42),
	}
	resp := must(ts.CreateResponseWithOpts(a.cert, a.key, crypto.SHA256))
	// Take the token out without the library's checks: refusing bad
	// tokens is the job of the verifier under test.
	var r struct {
		Status asn1.RawValue
		Token  asn1.RawValue
	}
	if _, err := asn1.Unmarshal(resp, &r); err != nil {
		t.Fatal(err)
	}
	return r.Token.FullBytes
}

func tsaTrust(roots ...*testTSA) *Trust {
	s := &Settings{}
	for _, r := range roots {
		s.TSARoots = append(s.TSARoots, r.rootDER)
	}
	return newTrust(s)
}

func TestRFC3161Verification(t *testing.T) {
	tsa := newTestTSA(t, tsaOpts{})
	other := newTestTSA(t, tsaOpts{})
	claim := Hash{1, 2, 3}
	at := epoch.Add(90 * time.Minute)
	good := tsa.stamp(t, claim, at)

	got, err := TSAVerifier{}.VerifyToken(good, claim, tsaTrust(tsa))
	if err != nil {
		t.Fatalf("valid token: %v", err)
	}
	if !got.Time.Equal(at) || got.By.Kind != AttestorTSA || !tsaTrust(tsa).Trusts(got.By) || tsaTrust(other).Trusts(got.By) {
		t.Fatalf("valid token gave %+v", got)
	}
	// Pinning both roots still names the same attestor.
	if both, err := (TSAVerifier{}).VerifyToken(good, claim, tsaTrust(other, tsa)); err != nil || both.By != got.By {
		t.Fatalf("with two roots pinned: %+v %v", both, err)
	}

	// Certificates valid around the real clock, so that the CMS layer's own
	// signing-time check passes and the verifier's checks are what refuse.
	now := time.Now().UTC()
	current := tsaOpts{notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour)}
	noEKU, nonCrit := current, current
	noEKU.noEKU, nonCrit.nonCritical = true, true
	for _, tc := range []struct {
		name   string
		issuer *testTSA // nil: tsa
		at     time.Time
		claim  Hash
		pin    []*testTSA // nil: the issuer
		want   error
		says   string
	}{
		{name: "unpinned TSA", pin: []*testTSA{other}, want: ErrUntrustedAttestor, says: "no pinned"},
		{name: "no roots pinned", pin: []*testTSA{}, want: ErrUntrustedAttestor, says: "pin no"},
		{name: "imprint of another claim", claim: Hash{9}, want: ErrBadAttestation, says: "imprint"},
		{name: "no time-stamping usage", issuer: newTestTSA(t, noEKU), at: now, want: ErrBadAttestation, says: "time-stamping"},
		{name: "non-critical time-stamping usage", issuer: newTestTSA(t, nonCrit), at: now, want: ErrBadAttestation, says: "time-stamping"},
		{name: "expired at the token's time", issuer: newTestTSA(t, current), at: now.Add(2 * time.Hour), want: ErrBadAttestation, says: "token's time"},
		{name: "not yet valid at the token's time (backdated)", issuer: newTestTSA(t, current), at: now.Add(-2 * time.Hour), want: ErrBadAttestation, says: "token's time"},
	} {
		issuer := tc.issuer
		if issuer == nil {
			issuer = tsa
		}
		pin := tc.pin
		if pin == nil {
			pin = []*testTSA{issuer}
		}
		stampAt := tc.at
		if stampAt.IsZero() {
			stampAt = at
		}
		stamped := claim
		if tc.claim != (Hash{}) {
			stamped = tc.claim
		}
		_, err := TSAVerifier{}.VerifyToken(issuer.stamp(t, stamped, stampAt), claim, tsaTrust(pin...))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.want, tc.says)
		}
	}
	if _, err := (TSAVerifier{}).VerifyToken([]byte{0x30, 0x03, 0x02, 0x01, 0x01}, claim, tsaTrust(tsa)); !errors.Is(err, ErrBadAttestation) {
		t.Errorf("garbage token: %v", err)
	}
}

// A token stays good after its TSA certificate expires: validity is judged
// at the token's own time, and the verifier has no clock. (The token must
// be made while the certificate is valid: the CMS layer stamps the real
// signing time.)
func TestRFC3161TokenOutlivesCertificate(t *testing.T) {
	made := time.Now().UTC().Truncate(time.Second)
	tsa := newTestTSA(t, tsaOpts{notBefore: made.Add(-time.Hour), notAfter: made.Add(time.Hour)})
	admin, alice := testKey("admin"), testKey("alice")
	set := must(SignSettings(testSettings(admin, made, func(s *Settings) {
		s.TSARoots = [][]byte{tsa.rootDER}
		s.HostTTL = MaxHostTTL
	}), admin))
	c := claimRec(admin.Public(), alice, "mors", made)
	tok := must(NewAttestation(Attestation{Network: admin.Public(), Claim: c.Hash(), RFC3161: tsa.stamp(t, c.Hash(), made)}))
	// Ingested long after the certificate expired.
	later := made.Add(300 * 24 * time.Hour)
	s := NewState(DefaultOptions(), admin.Public())
	mustIngest(t, s, later, set, hostRec(admin.Public(), alice, later, "fd00::1"), c, tok)
	st := s.NameStatus(admin.Public(), "mors", later)
	if !st.Claims[0].Attested || !st.Claims[0].Time.Equal(made) {
		t.Fatalf("token after its certificate expired: %+v", st.Claims[0])
	}
}

// Through the state: an RFC 3161 attestation activates a claim; the earliest
// attestation decides a conflict between claims attested by different
// attestors (a TSA and a witness).
func TestRFC3161InState(t *testing.T) {
	admin, alice, bob, w := testKey("admin"), testKey("alice"), testKey("bob"), testKey("w")
	tsa := newTestTSA(t, tsaOpts{})
	s := NewState(DefaultOptions(), admin.Public())
	set := must(SignSettings(testSettings(admin, epoch, func(s *Settings) {
		s.Witnesses = []PublicKey{w.Public()}
		s.TSARoots = [][]byte{tsa.rootDER}
	}), admin))
	ca, cb := claimRec(admin.Public(), alice, "mors", epoch), claimRec(admin.Public(), bob, "mors", epoch)
	mustIngest(t, s, epoch.Add(time.Hour), set, hostRec(admin.Public(), alice, epoch, "fd00::1"), hostRec(admin.Public(), bob, epoch, "fd00::2"), ca, cb)
	now := epoch.Add(time.Hour)
	holder := func() string {
		e := s.View(ViewConfig{Networks: []JoinedNetwork{{ID: admin.Public()}}}, now).Names["mors.nether"]
		switch {
		case e == nil:
			return "-"
		case e.Node == alice.Public():
			return "alice"
		default:
			return "bob"
		}
	}
	if h := holder(); h != "-" {
		t.Fatalf("unattested claims resolve to %s", h)
	}
	// bob: a witness at minute 20. alice: a TSA token at minute 10.
	mustIngest(t, s, now, witnessRec(cb, w, epoch.Add(20*time.Minute)))
	if h := holder(); h != "bob" {
		t.Fatalf("after bob's witness: %s", h)
	}
	tok := must(NewAttestation(Attestation{Network: admin.Public(), Claim: ca.Hash(), RFC3161: tsa.stamp(t, ca.Hash(), epoch.Add(10*time.Minute))}))
	mustIngest(t, s, now, tok)
	if h := holder(); h != "alice" {
		t.Fatalf("after alice's earlier TSA token: %s", h)
	}
	// The same token against a claim it was not made for is refused.
	wrong := must(NewAttestation(Attestation{Network: admin.Public(), Claim: cb.Hash(), RFC3161: tok.Attestation().RFC3161}))
	if _, err := s.Ingest(wrong, now); ReasonOf(err) != ReasonBadAttestation {
		t.Fatalf("token for another claim: %v", err)
	}
	// Unpinning the TSA root drops its attestations: bob wins again.
	set2 := must(SignSettings(testSettings(admin, epoch.Add(time.Minute), func(s *Settings) { s.Witnesses = []PublicKey{w.Public()} }), admin))
	mustIngest(t, s, now, set2)
	if h := holder(); h != "bob" {
		t.Fatalf("after unpinning the TSA: %s", h)
	}
	if st := s.Stats(); st.AttestationsVerified != 3 {
		t.Fatalf("attestations verified %d times, want 3 (each distinct record once)", st.AttestationsVerified)
	}
}

// resign signs a real token's TSTInfo again, as a CMS signature by the
// same certificate, with the signed attributes extra gives (none: the
// ones every CMS signature has, and no ESS signing certificate).
func (a *testTSA) resign(t testing.TB, token []byte, extra ...pkcs7.Attribute) []byte {
	t.Helper()
	p7 := must(pkcs7.Parse(token))
	sd := must(pkcs7.NewSignedData(p7.Content))
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	sd.SetContentType(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4}) // id-ct-TSTInfo
	if err := sd.AddSigner(a.cert, a.key, pkcs7.SignerInfoConfig{ExtraSignedAttributes: extra}); err != nil {
		t.Fatal(err)
	}
	return must(sd.Finish())
}

// A token must name the certificate that signed it in the ESS signing
// certificate attribute (RFC 3161 §2.4.1, RFC 5816), as openssl ts -verify
// demands: a bare CMS signature over a TSTInfo is refused, and so is an
// attribute that names another certificate.
func TestRFC3161NeedsTheSigningCertificateAttribute(t *testing.T) {
	now := time.Now().UTC()
	tsa := newTestTSA(t, tsaOpts{notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour)})
	other := newTestTSA(t, tsaOpts{notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour)})
	claim := Hash{7}
	good := tsa.stamp(t, claim, now)
	if _, err := (TSAVerifier{}).VerifyToken(good, claim, tsaTrust(tsa)); err != nil {
		t.Fatalf("the authority's own token: %v", err)
	}
	bare := tsa.resign(t, good)
	if _, err := (TSAVerifier{}).VerifyToken(bare, claim, tsaTrust(tsa)); !errors.Is(err, ErrBadAttestation) || !strings.Contains(err.Error(), "signing certificate attribute") {
		t.Fatalf("a token without the attribute: %v", err)
	}
	// An attribute that names the other authority's certificate.
	h := sha256.Sum256(other.cert.Raw)
	wrong := must(asn1.Marshal(essSigningCertificateV2{Certs: []essCertIDv2{{CertHash: h[:]}}}))
	named := tsa.resign(t, good, pkcs7.Attribute{Type: oidSigningCertificateV2, Value: asn1.RawValue{FullBytes: wrong}})
	if _, err := (TSAVerifier{}).VerifyToken(named, claim, tsaTrust(tsa)); !errors.Is(err, ErrBadAttestation) || !strings.Contains(err.Error(), "names another certificate") {
		t.Fatalf("a token naming another certificate: %v", err)
	}
	// And one that names the right one is taken (the check is the
	// attribute's, not the library's making).
	right := sha256.Sum256(tsa.cert.Raw)
	ok := must(asn1.Marshal(essSigningCertificateV2{Certs: []essCertIDv2{{CertHash: right[:]}}}))
	if _, err := (TSAVerifier{}).VerifyToken(tsa.resign(t, good, pkcs7.Attribute{Type: oidSigningCertificateV2, Value: asn1.RawValue{FullBytes: ok}}), claim, tsaTrust(tsa)); err != nil {
		t.Fatalf("a re-signed token with the right attribute: %v", err)
	}
}
