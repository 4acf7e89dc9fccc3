package crdt

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"
)

// TSAVerifier verifies RFC 3161 time-stamp tokens. The timestamp library
// parses a token and checks the CMS signature against the certificate the
// token carries, and nothing else; this verifier adds what makes a token
// mean something:
//
//   - the token must carry its certificates, and the signer's certificate
//     must chain to a root pinned in the network's settings, every
//     certificate valid at the token's own time (not now: a token stays
//     good after its TSA certificate expires), with the time-stamping
//     extended key usage (critical on the signer, as RFC 3161 §2.3 asks);
//   - the message imprint must be SHA-256 and equal the claim's hash.
//
// The nonce is checked by the client that asked for the token (only it
// knows the nonce); other nodes cannot and need not check it.
type TSAVerifier struct{}

var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}

// VerifyToken implements RFC3161Verifier.
func (TSAVerifier) VerifyToken(token []byte, imprint Hash, t *Trust) (at Attested, err error) {
	// The parsers below read hostile DER; a panic in them must not take
	// the node down with it.
	defer func() {
		if r := recover(); r != nil {
			at, err = Attested{}, fmt.Errorf("%w: token parser failed: %v", ErrBadAttestation, r)
		}
	}()
	if len(t.rootCerts) == 0 {
		return Attested{}, fmt.Errorf("%w: the settings pin no TSA root", ErrUntrustedAttestor)
	}
	p7, err := pkcs7.Parse(token)
	if err != nil {
		return Attested{}, fmt.Errorf("%w: token is not CMS signed data: %v", ErrBadAttestation, err)
	}
	signer := p7.GetOnlySigner()
	if signer == nil || len(p7.Certificates) == 0 {
		return Attested{}, fmt.Errorf("%w: token carries no signer certificate (request it with certReq)", ErrBadAttestation)
	}
	// Parse checks the signature over the TSTInfo with that certificate.
	ts, err := timestamp.Parse(token)
	if err != nil {
		return Attested{}, fmt.Errorf("%w: %v", ErrBadAttestation, err)
	}
	if ts.HashAlgorithm != crypto.SHA256 || !bytes.Equal(ts.HashedMessage, imprint[:]) {
		return Attested{}, fmt.Errorf("%w: token's message imprint is not this claim's hash", ErrBadAttestation)
	}
	if !criticalTimeStampingOnly(signer) {
		return Attested{}, fmt.Errorf("%w: signer certificate %q lacks the critical time-stamping extended key usage", ErrBadAttestation, signer.Subject)
	}
	inter := x509.NewCertPool()
	for _, c := range p7.Certificates {
		if c != signer {
			inter.AddCert(c)
		}
	}
	chains, err := signer.Verify(x509.VerifyOptions{
		Roots:         t.roots,
		Intermediates: inter,
		CurrentTime:   ts.Time,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
	})
	if err != nil {
		var unknown x509.UnknownAuthorityError
		if errors.As(err, &unknown) {
			return Attested{}, fmt.Errorf("%w: token signed by %q, which chains to no pinned TSA root", ErrUntrustedAttestor, signer.Subject)
		}
		return Attested{}, fmt.Errorf("%w: signer certificate %q at the token's time %s: %v", ErrBadAttestation, signer.Subject, ts.Time.UTC().Format("2006-01-02T15:04:05Z"), err)
	}
	// Several chains can end at several pinned roots; take the smallest
	// root ID so that every node names the same attestor.
	var by Attestor
	for i, chain := range chains {
		id := sha256.Sum256(chain[len(chain)-1].Raw)
		if i == 0 || bytes.Compare(id[:], by.ID[:]) < 0 {
			by = Attestor{Kind: AttestorTSA, ID: id}
		}
	}
	return Attested{Time: canonicalTime(ts.Time), By: by}, nil
}

// criticalTimeStampingOnly: RFC 3161 §2.3 requires the TSA's certificate to
// have exactly one extended key usage, time stamping, marked critical.
func criticalTimeStampingOnly(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping || len(c.UnknownExtKeyUsage) != 0 {
		return false
	}
	for _, e := range c.Extensions {
		if e.Id.Equal(oidExtKeyUsage) {
			return e.Critical
		}
	}
	return false
}
