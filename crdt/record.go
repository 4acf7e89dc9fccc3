package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Kind says what a record is.
type Kind uint8

// The record kinds. The numbers are part of the canonical encoding.
const (
	KindSettings    Kind = 1 // network policy, signed by the network's admin key
	KindHost        Kind = 2 // a node's addresses and heartbeat, signed by the node
	KindClaim       Kind = 3 // "this name is mine", signed by the node
	KindAttestation Kind = 4 // evidence of when a claim or entry existed; self-verifying
	KindEntry       Kind = 5 // a write to a namespace, signed by its writer
)

func (k Kind) String() string {
	switch k {
	case KindSettings:
		return "settings"
	case KindHost:
		return "host"
	case KindClaim:
		return "claim"
	case KindAttestation:
		return "attestation"
	case KindEntry:
		return "entry"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// FormatVersion is the first byte of every encoded record. A node refuses
// versions it does not know instead of guessing.
const FormatVersion = 1

// signContext separates data-mesher record signatures from any other use of
// the same key (an OpenSSH key might also sign git commits).
const signContext = "data-mesher/v1 record\x00"

// Hash is the SHA-256 of a record's canonical encoding: its identity.
type Hash [sha256.Size]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short returns the first 12 hex digits, for logs.
func (h Hash) Short() string { return hex.EncodeToString(h[:6]) }

// Compare orders hashes by their bytes.
func (h Hash) Compare(o Hash) int { return bytes.Compare(h[:], o[:]) }

// MarshalText writes lower-case hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads hex.
func (h *Hash) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(h) {
		return fmt.Errorf("%w: hash has %d hex digits, want %d", ErrMalformed, len(b), 2*len(h))
	}
	_, err := hex.Decode(h[:], b)
	if err != nil {
		return fmt.Errorf("%w: hash: %v", ErrMalformed, err)
	}
	return nil
}

// Settings is a network's policy, signed by its admin key. The settings with
// the latest Updated time win; equal times are decided by the larger record
// hash, so every node picks the same.
type Settings struct {
	Network PublicKey // the network's admin key; must be the signer
	Updated time.Time
	Domain  string // DNS domain of the network, e.g. "clan"

	// HostTTL is how long a host record lives without a new heartbeat. Past
	// it the host and its names leave the view, and the records are pruned.
	HostTTL time.Duration
	// DNSTTL is the TTL of the DNS answers built from this network.
	DNSTTL time.Duration

	// Restricted limits publishing to AllowedNodes. Off, any key may publish
	// its own host and claims (and can never touch anyone else's).
	Restricted   bool
	AllowedNodes []PublicKey
	Banned       []PublicKey // keys whose records are refused and pruned

	// Overrides assign names by decree: the override wins over any claim.
	Overrides []Override

	// Attestors: who may say when a claim was made.
	Witnesses []PublicKey // ed25519 keys of nodes in the signer role
	TSARoots  [][]byte    // DER root certificates of trusted RFC 3161 authorities
	TSAURLs   []string    // where claimants ask for tokens, in order of preference

	Extra []ExtraRecord // admin-defined DNS records

	// Namespaces are the network's database beyond DNS: parts that other
	// services write and read, each with its writers, merge policy and
	// limits (namespace.go). Sorted by name.
	Namespaces []Namespace
}

// Override assigns Name (relative to the domain) to Node.
type Override struct {
	Name string
	Node PublicKey
}

// ExtraRecord is an admin-defined DNS record. Name is relative to the domain
// ("@" for the apex). Data is the record's presentation form: an address for
// A/AAAA, a name for CNAME, "priority weight port target" for SRV, the text
// for TXT.
type ExtraRecord struct {
	Name string
	Type RRType
	TTL  time.Duration // zero: the network's DNSTTL
	Data string
}

// RRType is a DNS record type number (1 = A, 28 = AAAA, …).
type RRType uint16

// The DNS record types an admin may add.
const (
	TypeA     RRType = 1
	TypeCNAME RRType = 5
	TypeTXT   RRType = 16
	TypeAAAA  RRType = 28
	TypeSRV   RRType = 33
)

var rrTypeNames = map[RRType]string{TypeA: "A", TypeCNAME: "CNAME", TypeTXT: "TXT", TypeAAAA: "AAAA", TypeSRV: "SRV"}

func (t RRType) String() string {
	if n, ok := rrTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("TYPE%d", uint16(t))
}

// ParseRRType reads "A", "AAAA", "CNAME", "SRV" or "TXT".
func ParseRRType(s string) (RRType, error) {
	for t, n := range rrTypeNames {
		if n == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("record type %q: want one of A, AAAA, CNAME, SRV, TXT", s)
}

// Host is a node's presence in a network: where it answers, and that it is
// alive. Only the node can sign it; the newest heartbeat wins.
type Host struct {
	Network    PublicKey
	Node       PublicKey
	Heartbeat  time.Time
	Addresses  []netip.Addr // tunnel addresses, sorted, no duplicates
	GossipPort uint16
	HTTPPort   uint16 // peer HTTP endpoint: data.json and the reachability challenge
	DNSPort    uint16
}

// Claim says "Name in Network is mine". The claim's time is not its Created
// field (the claimant could write anything there) but the earliest time an
// attestor vouches for; without an attestation the claim is inactive.
type Claim struct {
	Network PublicKey
	Node    PublicKey
	Name    string // relative to the network's domain, lower case, e.g. "mors"
	Created time.Time
}

// Attestation is evidence that the record with hash Claim existed at a
// time: either an RFC 3161 token whose message imprint is that hash, or a
// witness's signature. The record (the attestation's subject) is a claim or
// an entry of a first-writer-wins namespace. It carries no envelope
// signature; the evidence verifies itself against the attestors the
// network's settings trust.
type Attestation struct {
	Network PublicKey
	Claim   Hash     // the subject: a claim's or a first-writer-wins entry's hash
	RFC3161 []byte   // DER TimeStampToken (a CMS SignedData); or
	Witness *Witness // a countersignature by a witness key
}

// Witness is a witness key's signature over (claim hash, time).
type Witness struct {
	Key       PublicKey
	Time      time.Time
	Signature []byte
}

const (
	attRFC3161 = 1
	attWitness = 2
)

// Limits on sizes, so no record can make a node allocate without bound.
const (
	MaxRecordSize      = 2 << 20 // bytes of one encoded record
	maxNameLen         = 253
	maxAddresses       = 16
	maxKeyList         = 20000
	maxOverrides       = 10000
	maxExtra           = 10000
	maxExtraData       = 2048
	maxTSARoots        = 16
	maxCertSize        = 16 << 10
	maxURLs            = 16
	maxURLLen          = 1024
	maxTokenSize       = 32 << 10
	signatureSize      = 64
	envelopeHeaderSize = 2
)

// Record is one record in its canonical form: the decoded body, its
// signature, and the hash of its encoding. A Record is immutable; the bodies its accessors
// return must not be modified. Records are made by the Sign functions, by
// NewAttestation, or by DecodeRecord; decoding does not verify signatures
// (State.Ingest does).
//
// A Record does not keep its encoding: the canonical form is a function of
// the body (DecodeRecord refuses any other), so Bytes rebuilds it. A mesh
// of 100,000 hosts holds 300,000 records, and the encoding would repeat
// every key and time the body already holds.
type Record struct {
	hash Hash
	kind Kind
	size uint32 // of the encoding
	// sig is the envelope's ed25519 signature; for a witness attestation,
	// the witness's (its Witness.Signature aliases it).
	sig [signatureSize]byte

	// body is the decoded body: *Settings, *Host, *Claim, *Attestation or
	// *Entry, as kind says (one interface, not a pointer per kind: 300,000
	// records at 100,000 hosts, 16 bytes each).
	body any
}

// Kind says which body the record holds.
func (r *Record) Kind() Kind { return r.kind }

// Hash is the SHA-256 of Bytes.
func (r *Record) Hash() Hash { return r.hash }

// Bytes is the canonical encoding, built anew on each call (the caller
// owns it).
func (r *Record) Bytes() []byte { return r.AppendBytes(make([]byte, 0, r.size)) }

// AppendBytes appends Bytes to b: a writer of many records (the state
// file: 52 MB at 100,000 hosts) reuses one buffer instead of building
// each record's bytes anew.
func (r *Record) AppendBytes(b []byte) []byte {
	b = r.appendUnsigned(b)
	if r.kind != KindAttestation {
		b = append(b, r.sig[:]...)
	}
	return b
}

// Size is the length of Bytes, without building them.
func (r *Record) Size() int { return int(r.size) }

// Settings returns the body of a settings record, or nil.
func (r *Record) Settings() *Settings { b, _ := r.body.(*Settings); return b }

// Host returns the body of a host record, or nil.
func (r *Record) Host() *Host { b, _ := r.body.(*Host); return b }

// Claim returns the body of a claim record, or nil.
func (r *Record) Claim() *Claim { b, _ := r.body.(*Claim); return b }

// Attestation returns the body of an attestation record, or nil.
func (r *Record) Attestation() *Attestation { b, _ := r.body.(*Attestation); return b }

// Entry returns the body of an entry record, or nil.
func (r *Record) Entry() *Entry { b, _ := r.body.(*Entry); return b }

// Network is the network the record belongs to.
func (r *Record) Network() PublicKey {
	switch r.kind {
	case KindSettings:
		return r.Settings().Network
	case KindHost:
		return r.Host().Network
	case KindClaim:
		return r.Claim().Network
	case KindEntry:
		return r.Entry().Network
	default:
		return r.Attestation().Network
	}
}

// Signer is the key whose signature the record carries: the admin key for
// settings, the node key for hosts and claims, the writer for entries, and
// the zero key for attestations (whose evidence is checked by the
// attestation verifiers).
func (r *Record) Signer() PublicKey {
	switch r.kind {
	case KindSettings:
		return r.Settings().Network
	case KindHost:
		return r.Host().Node
	case KindClaim:
		return r.Claim().Node
	case KindEntry:
		return r.Entry().Writer
	}
	return PublicKey{}
}

// Time is the record's own timestamp (settings: Updated, host: Heartbeat,
// claim: Created, entry: Time, witness: its time). RFC 3161 attestations
// have none outside their token and return the zero time.
func (r *Record) Time() time.Time {
	switch r.kind {
	case KindSettings:
		return r.Settings().Updated
	case KindHost:
		return r.Host().Heartbeat
	case KindClaim:
		return r.Claim().Created
	case KindEntry:
		return r.Entry().Time
	}
	if w := r.Attestation().Witness; w != nil {
		return w.Time
	}
	return time.Time{}
}

func (r *Record) String() string {
	switch r.kind {
	case KindSettings:
		return fmt.Sprintf("settings %s of %s", r.hash.Short(), r.Settings().Network.Short())
	case KindHost:
		return fmt.Sprintf("host %s of %s", r.hash.Short(), r.Host().Node.Short())
	case KindClaim:
		return fmt.Sprintf("claim %s %q of %s", r.hash.Short(), r.Claim().Name, r.Claim().Node.Short())
	case KindEntry:
		e := r.Entry()
		return fmt.Sprintf("entry %s %s %s/%q by %s", r.hash.Short(), e.Op, e.Namespace, e.Key, e.Writer.Short())
	}
	return fmt.Sprintf("attestation %s of %s", r.hash.Short(), r.Attestation().Claim.Short())
}

// ErrBadSignature is wrapped when a record's signature does not verify.
var ErrBadSignature = errors.New("bad signature")

// VerifySignature checks the envelope signature of a settings, host, claim
// or entry record. Attestations have none and always pass here; their evidence is
// checked by an AttestationVerifier.
func (r *Record) VerifySignature() error {
	if r.kind == KindAttestation {
		return nil
	}
	msg := r.appendUnsigned(append(make([]byte, 0, len(signContext)+int(r.size)), signContext...))
	if !r.Signer().Verify(msg, r.sig[:]) {
		return fmt.Errorf("%w: %s is not signed by %s", ErrBadSignature, r, r.Signer().Short())
	}
	return nil
}

func signingMessage(signed []byte) []byte {
	m := make([]byte, 0, len(signContext)+len(signed))
	return append(append(m, signContext...), signed...)
}

// SignSettings normalizes s (sorting its lists), checks it, and signs it with
// the network's admin key.
func SignSettings(s Settings, admin PrivateKey) (*Record, error) {
	s.normalize()
	if admin.Public() != s.Network {
		return nil, fmt.Errorf("signing settings: key %s is not the network's admin key %s", admin.Public().Short(), s.Network.Short())
	}
	return sign(&Record{kind: KindSettings, body: &s}, admin)
}

// SignHost normalizes h and signs it with the node's key.
func SignHost(h Host, node PrivateKey) (*Record, error) {
	h.normalize()
	if node.Public() != h.Node {
		return nil, fmt.Errorf("signing host record: key %s is not the node key %s", node.Public().Short(), h.Node.Short())
	}
	return sign(&Record{kind: KindHost, body: &h}, node)
}

// SignClaim checks c and signs it with the node's key.
func SignClaim(c Claim, node PrivateKey) (*Record, error) {
	c.Created = canonicalTime(c.Created)
	if node.Public() != c.Node {
		return nil, fmt.Errorf("signing claim: key %s is not the node key %s", node.Public().Short(), c.Node.Short())
	}
	return sign(&Record{kind: KindClaim, body: &c}, node)
}

func sign(r *Record, key PrivateKey) (*Record, error) {
	if key.IsZero() {
		return nil, fmt.Errorf("signing %s: no private key", r.kind)
	}
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("signing %s: %w", r.kind, err)
	}
	unsigned := r.encodeUnsigned()
	copy(r.sig[:], key.Sign(signingMessage(unsigned)))
	raw := append(unsigned, r.sig[:]...)
	if len(raw) > MaxRecordSize {
		return nil, fmt.Errorf("signing %s: %w: %d bytes, at most %d", r.kind, ErrMalformed, len(raw), MaxRecordSize)
	}
	r.hash, r.size = sha256.Sum256(raw), uint32(len(raw))
	return r, nil
}

// NewAttestation builds an attestation record. It checks the form only; the
// evidence is verified when a State ingests the record.
func NewAttestation(a Attestation) (*Record, error) {
	if a.Witness != nil {
		w := *a.Witness
		w.Time = canonicalTime(w.Time)
		a.Witness = &w
	}
	r := &Record{kind: KindAttestation, body: &a}
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("building attestation: %w", err)
	}
	r.ownWitnessSignature()
	raw := r.encodeUnsigned()
	r.hash, r.size = sha256.Sum256(raw), uint32(len(raw))
	return r, nil
}

// ownWitnessSignature moves a witness attestation's signature into the
// record (which has no envelope signature to keep there).
func (r *Record) ownWitnessSignature() {
	if w := r.Attestation().Witness; w != nil && len(w.Signature) == signatureSize {
		copy(r.sig[:], w.Signature)
		w.Signature = r.sig[:]
	}
}

// DecodeRecord parses one canonically encoded record. It refuses anything
// that is not byte-for-byte the canonical encoding of a well-formed record,
// so equal records always have equal hashes. It does not check signatures.
func DecodeRecord(raw []byte) (*Record, error) {
	return (&RecordDecoder{scratch: make([]byte, 0, len(raw))}).Decode(raw)
}

// A RecordDecoder is DecodeRecord for many records in turn (a state file,
// a fetched batch): it reuses the space in which it re-encodes each record
// to check that the bytes were canonical, so 300,000 records decode
// without 38 MB of garbage. Not for concurrent use; the zero value is
// ready.
type RecordDecoder struct{ scratch []byte }

// Decode is DecodeRecord.
func (dec *RecordDecoder) Decode(raw []byte) (*Record, error) {
	if len(raw) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(raw), MaxRecordSize)
	}
	if len(raw) < envelopeHeaderSize {
		return nil, fmt.Errorf("%w: %d bytes is too short for a record", ErrMalformed, len(raw))
	}
	if raw[0] != FormatVersion {
		return nil, fmt.Errorf("%w: format version %d, this node reads version %d", ErrMalformed, raw[0], FormatVersion)
	}
	// The body's byte fields (tokens, certificates, values) are copied:
	// the caller may reuse raw.
	r := &Record{kind: Kind(raw[1])}
	body := raw[envelopeHeaderSize:]
	if r.kind != KindAttestation {
		if len(body) < signatureSize {
			return nil, fmt.Errorf("%w: %s too short for its signature", ErrMalformed, r.kind)
		}
		copy(r.sig[:], body[len(body)-signatureSize:])
		body = body[:len(body)-signatureSize]
	}
	d := &decoder{b: body}
	switch r.kind {
	case KindSettings:
		r.body = decodeSettings(d)
	case KindHost:
		r.body = decodeHost(d)
	case KindClaim:
		r.body = decodeClaim(d)
	case KindAttestation:
		r.body = decodeAttestation(d)
	case KindEntry:
		r.body = decodeEntry(d)
	default:
		return nil, fmt.Errorf("%w: unknown record kind %d", ErrMalformed, raw[1])
	}
	d.end(r.kind.String())
	if d.err != nil {
		return nil, d.err
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	dec.scratch = r.appendUnsigned(dec.scratch[:0])
	if !bytes.Equal(dec.scratch, raw[:envelopeHeaderSize+len(body)]) {
		return nil, fmt.Errorf("%w: %s is not in canonical form", ErrMalformed, r.kind)
	}
	if r.kind == KindAttestation {
		r.ownWitnessSignature()
	}
	r.hash, r.size = sha256.Sum256(raw), uint32(len(raw))
	return r, nil
}

// encodeUnsigned writes the envelope header and body (everything the
// signature covers).
func (r *Record) encodeUnsigned() []byte { return r.appendUnsigned(make([]byte, 0, max(256, r.size))) }

// appendUnsigned appends the envelope header and body to b.
func (r *Record) appendUnsigned(b []byte) []byte {
	e := &encoder{b: b}
	e.u8(FormatVersion)
	e.u8(uint8(r.kind))
	switch r.kind {
	case KindSettings:
		r.Settings().encode(e)
	case KindHost:
		r.Host().encode(e)
	case KindClaim:
		r.Claim().encode(e)
	case KindAttestation:
		r.Attestation().encode(e)
	case KindEntry:
		r.Entry().encode(e)
	}
	return e.b
}

func (s *Settings) encode(e *encoder) {
	e.key(s.Network)
	e.time(s.Updated)
	e.str(s.Domain)
	e.i64(int64(s.HostTTL / time.Second))
	e.i64(int64(s.DNSTTL / time.Second))
	e.boolean(s.Restricted)
	encodeKeys(e, s.AllowedNodes)
	encodeKeys(e, s.Banned)
	e.uvarint(uint64(len(s.Overrides)))
	for _, o := range s.Overrides {
		e.str(o.Name)
		e.key(o.Node)
	}
	encodeKeys(e, s.Witnesses)
	e.uvarint(uint64(len(s.TSARoots)))
	for _, c := range s.TSARoots {
		e.bytes(c)
	}
	e.uvarint(uint64(len(s.TSAURLs)))
	for _, u := range s.TSAURLs {
		e.str(u)
	}
	e.uvarint(uint64(len(s.Extra)))
	for _, x := range s.Extra {
		e.str(x.Name)
		e.u16(uint16(x.Type))
		e.i64(int64(x.TTL / time.Second))
		e.str(x.Data)
	}
	encodeNamespaces(e, s.Namespaces)
}

func decodeSettings(d *decoder) *Settings {
	s := &Settings{}
	s.Network = d.key("network")
	s.Updated = d.time("updated")
	s.Domain = d.str(maxNameLen, "domain")
	s.HostTTL = seconds(d.i64("host TTL"))
	s.DNSTTL = seconds(d.i64("DNS TTL"))
	s.Restricted = d.boolean("restricted")
	s.AllowedNodes = decodeKeys(d, "allowed nodes")
	s.Banned = decodeKeys(d, "banned keys")
	if n := d.count(maxOverrides, "overrides"); n > 0 {
		s.Overrides = make([]Override, n)
		for i := range s.Overrides {
			s.Overrides[i] = Override{Name: d.str(maxNameLen, "override name"), Node: d.key("override node")}
		}
	}
	s.Witnesses = decodeKeys(d, "witnesses")
	if n := d.count(maxTSARoots, "TSA roots"); n > 0 {
		s.TSARoots = make([][]byte, n)
		for i := range s.TSARoots {
			s.TSARoots[i] = d.ownBytes(maxCertSize, "TSA root")
		}
	}
	if n := d.count(maxURLs, "TSA URLs"); n > 0 {
		s.TSAURLs = make([]string, n)
		for i := range s.TSAURLs {
			s.TSAURLs[i] = d.str(maxURLLen, "TSA URL")
		}
	}
	if n := d.count(maxExtra, "extra records"); n > 0 {
		s.Extra = make([]ExtraRecord, n)
		for i := range s.Extra {
			s.Extra[i] = ExtraRecord{
				Name: d.str(maxNameLen, "extra record name"),
				Type: RRType(d.u16("extra record type")),
				TTL:  seconds(d.i64("extra record TTL")),
				Data: d.str(maxExtraData, "extra record data"),
			}
		}
	}
	if d.err == nil && len(d.b) > 0 {
		s.Namespaces = decodeNamespaces(d)
	}
	return s
}

// seconds converts a wire count of seconds, saturating instead of
// overflowing on hostile values (validation then rejects them).
func seconds(n int64) time.Duration {
	const max = int64(1<<63-1) / int64(time.Second)
	if n > max || n < -max {
		return -1
	}
	return time.Duration(n) * time.Second
}

func encodeKeys(e *encoder, keys []PublicKey) {
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.key(k)
	}
}

func decodeKeys(d *decoder, what string) []PublicKey {
	n := d.count(maxKeyList, what)
	if n == 0 || n*len(PublicKey{}) > len(d.b) {
		if n > 0 {
			d.fail("%s: %d keys do not fit in %d bytes", what, n, len(d.b))
		}
		return nil
	}
	keys := make([]PublicKey, n)
	for i := range keys {
		keys[i] = d.key(what)
	}
	return keys
}

func (h *Host) encode(e *encoder) {
	e.key(h.Network)
	e.key(h.Node)
	e.time(h.Heartbeat)
	e.uvarint(uint64(len(h.Addresses)))
	for _, a := range h.Addresses {
		e.addr(a)
	}
	e.u16(h.GossipPort)
	e.u16(h.HTTPPort)
	e.u16(h.DNSPort)
}

func decodeHost(d *decoder) *Host {
	h := &Host{}
	h.Network = d.key("network")
	h.Node = d.key("node")
	h.Heartbeat = d.time("heartbeat")
	if n := d.count(maxAddresses, "addresses"); n > 0 {
		h.Addresses = make([]netip.Addr, n)
		for i := range h.Addresses {
			h.Addresses[i] = d.addr("address")
		}
	}
	h.GossipPort = d.u16("gossip port")
	h.HTTPPort = d.u16("HTTP port")
	h.DNSPort = d.u16("DNS port")
	return h
}

func (c *Claim) encode(e *encoder) {
	e.key(c.Network)
	e.key(c.Node)
	e.time(c.Created)
	e.str(c.Name)
}

func decodeClaim(d *decoder) *Claim {
	c := &Claim{}
	c.Network = d.key("network")
	c.Node = d.key("node")
	c.Created = d.time("created")
	c.Name = d.str(maxNameLen, "name")
	return c
}

func (a *Attestation) encode(e *encoder) {
	e.key(a.Network)
	e.hash(a.Claim)
	if a.Witness != nil {
		e.u8(attWitness)
		e.key(a.Witness.Key)
		e.time(a.Witness.Time)
		e.bytes(a.Witness.Signature)
		return
	}
	e.u8(attRFC3161)
	e.bytes(a.RFC3161)
}

func decodeAttestation(d *decoder) *Attestation {
	a := &Attestation{}
	a.Network = d.key("network")
	a.Claim = d.hash("claim")
	switch t := d.u8("attestation type"); {
	case d.err != nil:
	case t == attRFC3161:
		a.RFC3161 = d.ownBytes(maxTokenSize, "RFC 3161 token")
	case t == attWitness:
		a.Witness = &Witness{Key: d.key("witness key"), Time: d.time("witness time"), Signature: d.bytes(signatureSize, "witness signature")}
	default:
		d.fail("unknown attestation type %d", t)
	}
	return a
}
