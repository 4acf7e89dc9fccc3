package crdt

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// This file is the attestation seam: how the time of a claim, or of an
// entry in a first-writer-wins namespace, is established. An
// AttestationVerifier turns an attestation record plus the network's Trust
// into an Attested (a time and who vouched for it), or an error. The state
// calls it once per distinct attestation record and remembers the result.

// ErrUntrustedAttestor is wrapped when an attestation is well-formed but its
// attestor is not one the network's settings trust.
var ErrUntrustedAttestor = errors.New("attestor not trusted by the network's settings")

// ErrBadAttestation is wrapped when an attestation's evidence does not verify.
var ErrBadAttestation = errors.New("attestation does not verify")

// AttestorKind says what kind of attestor vouched for a claim.
type AttestorKind uint8

// The attestor kinds.
const (
	AttestorWitness AttestorKind = 1 // a witness node's ed25519 key
	AttestorTSA     AttestorKind = 2 // an RFC 3161 authority, by its pinned root
)

// Attestor identifies who vouched: a witness key, or the SHA-256 of the DER of
// the pinned root a TSA token chained to.
type Attestor struct {
	Kind AttestorKind
	ID   [32]byte
}

func (a Attestor) String() string {
	if a.Kind == AttestorWitness {
		return "witness " + PublicKey(a.ID).Short()
	}
	return fmt.Sprintf("TSA root %x", a.ID[:6])
}

// Attested is the result of verifying an attestation.
type Attested struct {
	Time time.Time
	By   Attestor
}

// Trust is what a network's settings say about attestors, prepared once per
// settings record for fast checks.
type Trust struct {
	witnesses map[PublicKey]bool
	roots     *x509.CertPool
	rootIDs   map[[32]byte]bool
	rootCerts []*x509.Certificate
	// BadRoots lists roots in the settings that could not be parsed; they
	// are ignored, and doctor reports them.
	BadRoots []error
}

func newTrust(s *Settings) *Trust {
	t := &Trust{witnesses: map[PublicKey]bool{}, roots: x509.NewCertPool(), rootIDs: map[[32]byte]bool{}}
	if s == nil {
		return t
	}
	for _, w := range s.Witnesses {
		t.witnesses[w] = true
	}
	for _, der := range s.TSARoots {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.BadRoots = append(t.BadRoots, fmt.Errorf("TSA root %x: %w", sha256.Sum256(der), err))
			continue
		}
		t.roots.AddCert(c)
		t.rootCerts = append(t.rootCerts, c)
		t.rootIDs[sha256.Sum256(der)] = true
	}
	return t
}

// IsWitness reports whether k may countersign claims.
func (t *Trust) IsWitness(k PublicKey) bool { return t.witnesses[k] }

// Roots is the pool of pinned TSA roots.
func (t *Trust) Roots() *x509.CertPool { return t.roots }

// RootCertificates lists the parsed pinned TSA roots.
func (t *Trust) RootCertificates() []*x509.Certificate { return t.rootCerts }

// Trusts reports whether a still vouches under these settings.
func (t *Trust) Trusts(a Attestor) bool {
	switch a.Kind {
	case AttestorWitness:
		return t.witnesses[PublicKey(a.ID)]
	case AttestorTSA:
		return t.rootIDs[a.ID]
	}
	return false
}

// HasAttestors reports whether the settings name any attestor at all; a
// network without one can never activate a claim (doctor says so).
func (t *Trust) HasAttestors() bool { return len(t.witnesses) > 0 || len(t.rootIDs) > 0 }

// AttestationVerifier verifies the evidence of one attestation against a
// network's trust. Implementations must be pure and deterministic.
type AttestationVerifier interface {
	VerifyAttestation(a *Attestation, t *Trust) (Attested, error)
}

// RFC3161Verifier verifies RFC 3161 tokens; see NewVerifier.
type RFC3161Verifier interface {
	VerifyToken(token []byte, imprint Hash, t *Trust) (Attested, error)
}

// Verifier is the standard AttestationVerifier: witness signatures are
// checked here, RFC 3161 tokens by the RFC3161 verifier (nil: tokens are
// refused).
type Verifier struct {
	RFC3161 RFC3161Verifier
}

// VerifyAttestation implements AttestationVerifier.
func (v Verifier) VerifyAttestation(a *Attestation, t *Trust) (Attested, error) {
	if w := a.Witness; w != nil {
		if !t.IsWitness(w.Key) {
			return Attested{}, fmt.Errorf("%w: %s is not a witness", ErrUntrustedAttestor, w.Key.Short())
		}
		if !w.Key.Verify(witnessMessage(a.Claim, w.Time), w.Signature) {
			return Attested{}, fmt.Errorf("%w: witness signature by %s", ErrBadAttestation, w.Key.Short())
		}
		return Attested{Time: w.Time, By: Attestor{Kind: AttestorWitness, ID: w.Key}}, nil
	}
	if v.RFC3161 == nil {
		return Attested{}, fmt.Errorf("%w: this node does not verify RFC 3161 tokens", ErrBadAttestation)
	}
	return v.RFC3161.VerifyToken(a.RFC3161, a.Claim, t)
}

const witnessContext = "data-mesher/v1 witness\x00"

func witnessMessage(claim Hash, t time.Time) []byte {
	m := make([]byte, 0, len(witnessContext)+len(claim)+8)
	m = append(m, witnessContext...)
	m = append(m, claim[:]...)
	return binary.BigEndian.AppendUint64(m, uint64(t.UnixNano()))
}

// WitnessClaim countersigns the record with hash claim (a claim, or a put in
// a first-writer-wins namespace) at time t, with a witness's key. The
// result is an attestation record ready to ingest and spread.
func WitnessClaim(network PublicKey, claim Hash, t time.Time, witness PrivateKey) (*Record, error) {
	t = canonicalTime(t)
	return NewAttestation(Attestation{
		Network: network,
		Claim:   claim,
		Witness: &Witness{Key: witness.Public(), Time: t, Signature: witness.Sign(witnessMessage(claim, t))},
	})
}

// attestable lists the records of network id that attestations decide
// (claims, and puts in first-writer-wins namespaces), by hash, keeping
// those for which keep says yes.
func (s *State) attestable(id PublicKey, keep func(*Record) bool) []*Record {
	n := s.nets[id]
	if n == nil {
		return nil
	}
	var out []*Record
	for _, c := range n.sortedClaims() {
		if keep(c) {
			out = append(out, c)
		}
	}
	for _, r := range n.sortedEntries() {
		if n.subject(r.hash) != nil && keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// Unwitnessed lists the records of network id that witness has not yet
// countersigned, if witness is a witness of the network: the work of a node
// in the signer role. They are claims and puts in first-writer-wins
// namespaces (claims first, each by hash); every one has been verified.
// WitnessClaim countersigns either kind.
func (s *State) Unwitnessed(id, witness PublicKey) []*Record {
	n := s.nets[id]
	if n == nil || !n.trust.IsWitness(witness) {
		return nil
	}
	by := Attestor{Kind: AttestorWitness, ID: witness}
	return s.attestable(id, func(r *Record) bool { return n.attestationBy(r.hash, by) == nil })
}

// Unstamped lists writer's claims and first-writer-wins puts in network id
// that hold no RFC 3161 attestation yet: what the writer's node asks a
// timestamp authority to stamp (the token's imprint is the record's hash).
func (s *State) Unstamped(id, writer PublicKey) []*Record {
	n := s.nets[id]
	if n == nil {
		return nil
	}
	return s.attestable(id, func(r *Record) bool {
		if r.Signer() != writer {
			return false
		}
		for _, e := range n.byClaim[r.hash] {
			if e.at.By.Kind == AttestorTSA {
				return false
			}
		}
		return true
	})
}
