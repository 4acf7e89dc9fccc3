package crdt

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // the ESS signingCertificate attribute hashes with SHA-1
	"crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

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
//   - the message imprint must be SHA-256 and equal the claim's hash;
//   - the SignerInfo must carry the ESS signingCertificate or
//     signingCertificateV2 attribute (RFC 3161 §2.4.1, RFC 5816), and its
//     first certificate ID must name the certificate that signed (as
//     `openssl ts -verify` requires: a token without it is a CMS signature
//     over a TSTInfo, which anyone holding a time-stamping key could make
//     look like another certificate's).
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
	if err := essNamesSigner(p7, signer); err != nil {
		return Attested{}, fmt.Errorf("%w: %v", ErrBadAttestation, err)
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

var (
	oidSigningCertificate   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 12}
	oidSigningCertificateV2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}
)

// The ESS attributes (RFC 2634 §5.4, RFC 5035 §3).
type essIssuerSerial struct {
	Issuer asn1.RawValue // GeneralNames
	Serial *big.Int
}

type essCertID struct {
	CertHash     []byte
	IssuerSerial essIssuerSerial `asn1:"optional"`
}

type essSigningCertificate struct {
	Certs    []essCertID
	Policies asn1.RawValue `asn1:"optional"`
}

type essCertIDv2 struct {
	HashAlgorithm pkix.AlgorithmIdentifier `asn1:"optional"` // default SHA-256
	CertHash      []byte
	IssuerSerial  essIssuerSerial `asn1:"optional"`
}

type essSigningCertificateV2 struct {
	Certs    []essCertIDv2
	Policies asn1.RawValue `asn1:"optional"`
}

var essHashes = map[string]crypto.Hash{
	"2.16.840.1.101.3.4.2.1": crypto.SHA256,
	"2.16.840.1.101.3.4.2.2": crypto.SHA384,
	"2.16.840.1.101.3.4.2.3": crypto.SHA512,
}

// essNamesSigner checks that the token's signed attributes name signer as
// the certificate that signed: the first ESSCertID of
// signingCertificateV2 (or of signingCertificate, SHA-1) hashes to it, and
// its issuer and serial, if given, are signer's.
func essNamesSigner(p7 *pkcs7.PKCS7, signer *x509.Certificate) error {
	var hash []byte
	var h crypto.Hash
	var serial *big.Int
	var v2 essSigningCertificateV2
	var v1 essSigningCertificate
	switch {
	case p7.UnmarshalSignedAttribute(oidSigningCertificateV2, &v2) == nil:
		if len(v2.Certs) == 0 {
			return errors.New("its signingCertificateV2 attribute names no certificate")
		}
		h = crypto.SHA256
		if alg := v2.Certs[0].HashAlgorithm.Algorithm; len(alg) > 0 {
			var ok bool
			if h, ok = essHashes[alg.String()]; !ok {
				return fmt.Errorf("its signingCertificateV2 attribute hashes with %v, which this node does not take", alg)
			}
		}
		hash, serial = v2.Certs[0].CertHash, v2.Certs[0].IssuerSerial.Serial
	case p7.UnmarshalSignedAttribute(oidSigningCertificate, &v1) == nil:
		if len(v1.Certs) == 0 {
			return errors.New("its signingCertificate attribute names no certificate")
		}
		h = crypto.SHA1
		hash, serial = v1.Certs[0].CertHash, v1.Certs[0].IssuerSerial.Serial
	default:
		return errors.New("token lacks the signing certificate attribute (ESS signingCertificate or signingCertificateV2; RFC 3161 §2.4.1, RFC 5816)")
	}
	d := h.New()
	d.Write(signer.Raw)
	if !bytes.Equal(d.Sum(nil), hash) {
		return fmt.Errorf("its signing certificate attribute names another certificate than %q, which signed", signer.Subject)
	}
	if serial != nil && serial.Cmp(signer.SerialNumber) != 0 {
		return fmt.Errorf("its signing certificate attribute gives serial %v, the signer's is %v", serial, signer.SerialNumber)
	}
	return nil
}
