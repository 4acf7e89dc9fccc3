package crdt

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Protocol constants. They decide what a state contains, so every node must
// use the same values: they are not options.
//
// The retention orders are chosen so that limits and removals commute (which
// the semilattice laws need): a record that leaves the state never frees a
// place that a record dropped earlier for the limit could have taken.
const (
	// MaxClaimsPerNode bounds the claims one node may hold in one network.
	// Beyond it the node's oldest (Created, hash) claims are dropped: claims
	// die oldest first (host TTL) or all together (ban), never making room
	// for a dropped one.
	MaxClaimsPerNode = 32
)

// Attestations are kept one per (claim, attestor): the earliest by (time,
// hash). Later ones can never displace the evidence that decides a conflict,
// and an attestor's attestations leave together when the settings stop
// trusting it.

// DefaultMaxSkew is how far in the future a record's time may lie before it
// is refused.
const DefaultMaxSkew = 5 * time.Minute

// Options tune a State's ingestion. They only change when a record is
// accepted, never what a state containing it means.
type Options struct {
	// MaxSkew: records dated further than this after now are refused.
	MaxSkew time.Duration
	// Verifier checks attestations (default: witness signatures and RFC 3161
	// tokens, Verifier{RFC3161: TSAVerifier{}}).
	Verifier AttestationVerifier
}

// DefaultOptions returns the options nodes run with.
func DefaultOptions() Options {
	return Options{MaxSkew: DefaultMaxSkew, Verifier: Verifier{RFC3161: TSAVerifier{}}}
}

// Reason classifies why a record was refused, for logs, metrics and doctor.
type Reason string

// The reasons a record is refused.
const (
	ReasonMalformed         Reason = "malformed"
	ReasonNotJoined         Reason = "network-not-joined"
	ReasonBadSignature      Reason = "bad-signature"
	ReasonBanned            Reason = "banned"
	ReasonNotAllowed        Reason = "not-allowed"
	ReasonFuture            Reason = "from-future"
	ReasonExpired           Reason = "expired"
	ReasonOverLimit         Reason = "over-limit"
	ReasonUnknownSubject    Reason = "unknown-subject" // an attestation of a claim or entry not held
	ReasonBadAttestation    Reason = "bad-attestation"
	ReasonUntrustedAttestor Reason = "untrusted-attestor"

	// Entries (see FORMAT.md).
	ReasonNamespaceNotDeclared Reason = "namespace-not-declared"
	ReasonWrongPolicy          Reason = "wrong-policy"
	ReasonNotWriter            Reason = "not-writer"
	ReasonDeleteNotAllowed     Reason = "delete-not-allowed"
	ReasonMayNotDelete         Reason = "may-not-delete"
)

// Rejection is the error Ingest returns for a refused record.
type Rejection struct {
	Reason Reason
	Record string // a short description of the record, or "" if undecodable
	Err    error
}

func (r *Rejection) Error() string {
	if r.Record == "" {
		return fmt.Sprintf("record refused (%s): %v", r.Reason, r.Err)
	}
	return fmt.Sprintf("%s refused (%s): %v", r.Record, r.Reason, r.Err)
}

func (r *Rejection) Unwrap() error { return r.Err }

func reject(rec *Record, reason Reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Record: rec.String(), Err: fmt.Errorf(format, args...)}
}

// ReasonOf returns the reason of a Rejection anywhere in err's chain, or "".
func ReasonOf(err error) Reason {
	var r *Rejection
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// Outcome says what an accepted record did to the state.
type Outcome int

// The outcomes of ingesting a record that was not refused.
const (
	Added      Outcome = iota // new: the state changed, the record should be spread
	Known                     // already held: nothing changed
	Superseded                // valid but older than what the state holds (a host, settings, an entry's slot) or removed by it (a covered add)
)

func (o Outcome) String() string {
	return [...]string{"added", "known", "superseded"}[o]
}

// State is a node's replicated database: for each joined network its
// settings, hosts, claims, namespace entries and attestations. Every record in a State has been
// verified, so states merge without checking signatures again. A State is
// not safe for concurrent use; the agent serializes access.
type State struct {
	opts    Options
	nets    map[PublicKey]*netState
	version uint64
	stats   Stats
}

// Stats counts the expensive work ingestion did. A record the state already
// holds costs neither, so each distinct record is verified at most once.
type Stats struct {
	SignaturesChecked    uint64
	AttestationsVerified uint64
}

// Stats returns the counters since the state was made.
func (s *State) Stats() Stats { return s.stats }

type netState struct {
	id       PublicKey
	settings *Record
	trust    *Trust

	// nodes holds each node's host record and claims (one map for both:
	// at 100,000 hosts, one slot per node instead of two).
	nodes map[PublicKey]*nodeRecs
	// hostFP summarizes the host records (for NamespaceVersion).
	hostFP Fingerprint
	// byClaim lists the attestations of each subject (a claim or a
	// first-writer-wins entry) sorted by (time, hash).
	byClaim map[Hash][]*attEntry
	// spaces holds the namespace entries (space.go).
	spaces map[spaceID]*space
	// A claim, entry or attestation by hash is found through index.get.

	index digestIndex
}

// nodeRecs is what a node holds in a network: its host record (or nil) and
// its claims sorted by (Created, hash). A node with neither has no entry.
type nodeRecs struct {
	host   *Record
	claims []*Record
}

// host is node's host record, or nil.
func (n *netState) host(node PublicKey) *Record {
	if r := n.nodes[node]; r != nil {
		return r.host
	}
	return nil
}

// claims are node's claims, sorted (not to be modified).
func (n *netState) claims(node PublicKey) []*Record {
	if r := n.nodes[node]; r != nil {
		return r.claims
	}
	return nil
}

// setNode sets node's host record and claims, dropping its entry when it
// holds neither.
func (n *netState) setNode(node PublicKey, host *Record, claims []*Record) {
	if host == nil && len(claims) == 0 {
		delete(n.nodes, node)
		return
	}
	r := n.nodes[node]
	if r == nil {
		r = &nodeRecs{}
		n.nodes[node] = r
	}
	r.host, r.claims = host, claims
}

type attEntry struct {
	rec *Record
	at  Attested
	sp  *space // the space of the attested entry; nil for a claim's
}

// NewState makes an empty state that accepts the joined networks' records.
func NewState(opts Options, joined ...PublicKey) *State {
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = DefaultMaxSkew
	}
	if opts.Verifier == nil {
		opts.Verifier = DefaultOptions().Verifier
	}
	s := &State{opts: opts, nets: map[PublicKey]*netState{}}
	for _, n := range joined {
		s.Join(n)
	}
	return s
}

// Join makes the state accept records of network n.
func (s *State) Join(n PublicKey) {
	if _, ok := s.nets[n]; ok {
		return
	}
	s.nets[n] = &netState{
		id:      n,
		trust:   newTrust(nil),
		nodes:   map[PublicKey]*nodeRecs{},
		byClaim: map[Hash][]*attEntry{},
		spaces:  map[spaceID]*space{},
	}
	s.version++
}

// Leave drops network n and all its records.
func (s *State) Leave(n PublicKey) {
	if _, ok := s.nets[n]; ok {
		delete(s.nets, n)
		s.version++
	}
}

// Joined lists the joined networks in key order.
func (s *State) Joined() []PublicKey {
	ids := make([]PublicKey, 0, len(s.nets))
	for id := range s.nets {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, PublicKey.Compare)
	return ids
}

// Version increases whenever the state changes; callers compare versions to
// know when to recompute the view or persist.
func (s *State) Version() uint64 { return s.version }

// Holds reports whether the state holds the record encoded in raw: a hash
// and a lookup, no decoding.
func (s *State) Holds(raw []byte) bool {
	if len(raw) < envelopeHeaderSize+len(PublicKey{}) || len(raw) > MaxRecordSize {
		return false
	}
	// Every kind's body starts with its network key.
	n := s.nets[PublicKey(raw[envelopeHeaderSize:envelopeHeaderSize+len(PublicKey{})])]
	return n != nil && n.index.has(sha256.Sum256(raw))
}

// IngestBytes decodes and ingests one encoded record. A record the state
// already holds costs a hash and a map lookup: no decoding, no signature
// check. The returned record is nil when the bytes were known or refused.
func (s *State) IngestBytes(raw []byte, now time.Time) (*Record, Outcome, error) {
	if s.Holds(raw) {
		return nil, Known, nil
	}
	rec, err := DecodeRecord(raw)
	if err != nil {
		return nil, 0, &Rejection{Reason: ReasonMalformed, Err: err}
	}
	o, err := s.Ingest(rec, now)
	if err != nil || o != Added {
		return nil, o, err
	}
	return rec, o, nil
}

// Ingest verifies rec and adds it to the state if it is new and admissible:
// its network is joined, its signature verifies, its signer is allowed, it
// is not from the future beyond MaxSkew, not expired, and its attestation
// (if it is one) verifies against a trusted attestor. Cheap checks run
// first, so a known or superseded record costs no signature check.
// Refusals are *Rejection errors.
func (s *State) Ingest(rec *Record, now time.Time) (Outcome, error) {
	return s.insert(rec, now)
}

// IngestAll ingests a batch in dependency order (settings, hosts, claims,
// entries, attestations), so the result does not depend on the order of
// recs.
func (s *State) IngestAll(recs []*Record, now time.Time) BatchResult {
	var res BatchResult
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b *Record) int { return dependencyRank(a.kind) - dependencyRank(b.kind) })
	for _, r := range sorted {
		o, err := s.Ingest(r, now)
		res.count(r, o, err)
	}
	return res
}

// BatchResult counts what a batch did.
type BatchResult struct {
	Added, Known, Superseded int
	AddedRecords             []*Record
	Rejected                 []*Rejection
}

// dependencyRank orders the kinds so that every record comes after those it
// depends on: settings, hosts, claims, entries, attestations.
func dependencyRank(k Kind) int {
	switch k {
	case KindSettings:
		return 0
	case KindHost:
		return 1
	case KindClaim:
		return 2
	case KindEntry:
		return 3
	case KindAttestation:
		return 4
	}
	return 5
}

func (b *BatchResult) count(r *Record, o Outcome, err error) {
	if b.tally(r, o, err) {
		b.AddedRecords = append(b.AddedRecords, r)
	}
}

// tally is count without keeping the added records, and reports whether r
// was added.
func (b *BatchResult) tally(r *Record, o Outcome, err error) (added bool) {
	var rej *Rejection
	switch {
	case errors.As(err, &rej):
		b.Rejected = append(b.Rejected, rej)
	case err != nil:
		b.Rejected = append(b.Rejected, &Rejection{Reason: ReasonMalformed, Record: r.String(), Err: err})
	case o == Added:
		b.Added++
		return true
	case o == Known:
		b.Known++
	case o == Superseded:
		b.Superseded++
	}
	return false
}

// Merge makes s the join s ⊔ o, the least upper bound of the two states, and
// returns how many records it added. It applies only the rules intrinsic to
// the records (newest settings and host records win, each node keeps its
// newest MaxClaimsPerNode claims, each claim or entry keeps its earliest
// attestation per attestor, and entries merge by the rules their policy
// byte names: space.go), never policy or time, so it is commutative, associative and
// idempotent on any states (laws_test.go). o's records were verified when they entered o
// and are not verified again.
//
// Policy and time are applied by ingestion (refusal), by the view (filter)
// and by Prune (collection). They can drop records that a third state would
// make relevant again (a claim whose host arrives later, a key that newer
// settings unban), which is why they are not part of the join; so are
// the namespaces' limits, which the settings set. After a
// Merge, call Prune before serving the state: the view is the same either
// way, but only Prune drops what the settings no longer admit.
func (s *State) Merge(o *State) int {
	added := 0
	for _, id := range o.Joined() {
		on, n := o.nets[id], s.nets[id]
		if n == nil {
			continue
		}
		var recs []*Record
		if on.settings != nil {
			recs = append(recs, on.settings)
		}
		recs = append(append(recs, on.sortedHosts()...), on.sortedClaims()...)
		recs = append(recs, on.sortedEntries()...)
		for _, r := range append(recs, on.sortedAtts()...) {
			var at Attested
			if r.kind == KindAttestation {
				at = on.attEntry(r).at
			}
			if n.put(r, at) == Added {
				added++
			}
		}
	}
	if added > 0 {
		s.version++
	}
	return added
}

// insert is ingestion proper: the checks that need the clock, the policy
// and signatures, cheapest first, then the join rules of put.
func (s *State) insert(rec *Record, now time.Time) (Outcome, error) {
	n := s.nets[rec.Network()]
	if n == nil {
		return 0, reject(rec, ReasonNotJoined, "network %s is not joined", rec.Network().Short())
	}
	if n.index.has(rec.hash) {
		return Known, nil
	}
	if t := rec.Time(); t.After(now.Add(s.opts.MaxSkew)) {
		return 0, reject(rec, ReasonFuture, "dated %s, %s after this node's clock (skew allowed: %s)",
			t.Format(time.RFC3339), t.Sub(now).Round(time.Second), s.opts.MaxSkew)
	}
	var at Attested
	switch rec.kind {
	case KindSettings:
		if n.settings != nil && !newerSettings(rec, n.settings) {
			return Superseded, nil
		}
	case KindHost:
		if err := n.admit(rec); err != nil {
			return 0, err
		}
		if n.expired(rec.Host(), now) {
			return 0, reject(rec, ReasonExpired, "heartbeat %s is older than the host TTL %s", rec.Host().Heartbeat.Format(time.RFC3339), n.hostTTL())
		}
		if old := n.host(rec.Host().Node); old != nil && !newerHost(rec, old) {
			return Superseded, nil
		}
	case KindClaim:
		if err := n.admit(rec); err != nil {
			return 0, err
		}
		if n.claimDead(rec.Claim(), now) {
			return 0, reject(rec, ReasonExpired, "made %s and its host has no live record", rec.Claim().Created.Format(time.RFC3339))
		}
		if list := n.claims(rec.Claim().Node); len(list) >= MaxClaimsPerNode && compareClaims(rec, list[0]) < 0 {
			return 0, reject(rec, ReasonOverLimit, "node already holds %d newer claims", MaxClaimsPerNode)
		}
	case KindEntry:
		if superseded, err := n.checkEntry(rec, now); err != nil {
			return 0, err
		} else if superseded {
			return Superseded, nil
		}
	case KindAttestation:
		a := rec.Attestation()
		if n.subject(a.Claim) == nil {
			return 0, reject(rec, ReasonUnknownSubject, "no claim or first-writer-wins entry %s is held", a.Claim.Short())
		}
		if w := a.Witness; w != nil {
			if old := n.attestationBy(a.Claim, Attestor{Kind: AttestorWitness, ID: w.Key}); old != nil && old.at.Time.Before(w.Time) {
				return Superseded, nil
			}
		}
		var err error
		s.stats.AttestationsVerified++
		at, err = s.opts.Verifier.VerifyAttestation(a, n.trust)
		if err != nil {
			reason := ReasonBadAttestation
			if errors.Is(err, ErrUntrustedAttestor) {
				reason = ReasonUntrustedAttestor
			}
			return 0, &Rejection{Reason: reason, Record: rec.String(), Err: err}
		}
		at.Time = canonicalTime(at.Time)
		if at.Time.After(now.Add(s.opts.MaxSkew)) {
			return 0, reject(rec, ReasonFuture, "attested at %s, after this node's clock", at.Time.Format(time.RFC3339))
		}
	default:
		return 0, reject(rec, ReasonMalformed, "unknown kind")
	}
	if rec.kind != KindAttestation {
		s.stats.SignaturesChecked++
		if err := rec.VerifySignature(); err != nil {
			return 0, &Rejection{Reason: ReasonBadSignature, Record: rec.String(), Err: err}
		}
	}
	out := n.put(rec, at)
	if out == Added {
		s.version++
		switch rec.kind {
		case KindSettings:
			// New settings take effect at once: what they no longer admit goes.
			n.prune(now, nil)
		case KindEntry:
			// The new entry shadows the older ones of its slot, and may push
			// its writer's oldest beyond the limit.
			id := spaceOf(rec.Entry())
			n.settle(n.spaces[id], n.declared(id), rec, now)
		}
	}
	return out, nil
}

// put adds a verified record by the join rules alone. at is the verified
// attestation of an attestation record.
func (n *netState) put(rec *Record, at Attested) Outcome {
	if n.index.has(rec.hash) {
		return Known
	}
	switch rec.kind {
	case KindSettings:
		if n.settings != nil && !newerSettings(rec, n.settings) {
			return Superseded
		}
		n.setSettings(rec)
	case KindHost:
		node := rec.Host().Node
		old := n.host(node)
		if old != nil && !newerHost(rec, old) {
			return Superseded
		}
		if old != nil {
			n.index.remove(old.hash)
			n.hostFP.add(old.hash, -1)
		}
		n.setNode(node, rec, n.claims(node))
		n.index.add(rec)
		n.hostFP.add(rec.hash, 1)
	case KindClaim:
		if list := n.claims(rec.Claim().Node); len(list) >= MaxClaimsPerNode && compareClaims(rec, list[0]) < 0 {
			return Superseded
		}
		n.addClaim(rec)
	case KindEntry:
		return n.putEntry(rec)
	case KindAttestation:
		claim := rec.Attestation().Claim
		subject := n.subject(claim)
		if subject == nil {
			// Its claim was dropped for the per-node limit, or its entry
			// replaced by a newer one.
			return Superseded
		}
		e := &attEntry{rec: rec, at: at}
		if subject.kind == KindEntry {
			e.sp = n.spaces[spaceOf(subject.Entry())]
		}
		old := n.attestationBy(claim, at.By)
		if old != nil && compareAtts(e, old) > 0 {
			return Superseded
		}
		if old != nil {
			n.removeAtt(old)
		}
		n.addAtt(e)
	}
	return Added
}

// newerSettings reports whether a wins over b: later Updated, then larger hash.
func newerSettings(a, b *Record) bool {
	if c := a.Settings().Updated.Compare(b.Settings().Updated); c != 0 {
		return c > 0
	}
	return a.hash.Compare(b.hash) > 0
}

// newerHost reports whether a wins over b: later heartbeat, then larger hash.
func newerHost(a, b *Record) bool {
	if c := a.Host().Heartbeat.Compare(b.Host().Heartbeat); c != 0 {
		return c > 0
	}
	return a.hash.Compare(b.hash) > 0
}

// compareClaims orders a node's claims for the per-node limit.
func compareClaims(a, b *Record) int {
	if c := a.Claim().Created.Compare(b.Claim().Created); c != 0 {
		return c
	}
	return a.hash.Compare(b.hash)
}

// compareAtts orders a claim's attestations: earliest first.
func compareAtts(a, b *attEntry) int {
	if c := a.at.Time.Compare(b.at.Time); c != 0 {
		return c
	}
	return a.rec.hash.Compare(b.rec.hash)
}

func (n *netState) setSettings(rec *Record) {
	if n.settings != nil {
		n.index.remove(n.settings.hash)
	}
	n.settings = rec
	n.index.add(rec)
	n.trust = newTrust(rec.Settings())
	for _, b := range rec.Settings().Banned {
		delete(n.trust.witnesses, b)
	}
}

func (n *netState) hostTTL() time.Duration {
	if n.settings == nil {
		return DefaultHostTTL
	}
	return n.settings.Settings().HostTTL
}

func (n *netState) expired(h *Host, now time.Time) bool {
	return h.Heartbeat.Add(n.hostTTL()).Before(now)
}

// claimDead: a claim lives while its node's host record lives, and for one
// host TTL after it was made (its host record may still be on its way).
func (n *netState) claimDead(c *Claim, now time.Time) bool {
	if h := n.host(c.Node); h != nil && !n.expired(h.Host(), now) {
		return false
	}
	return c.Created.Add(n.hostTTL()).Before(now)
}

// admit applies the settings' policy to a host or claim signer.
func (n *netState) admit(rec *Record) error {
	if r := n.policy(rec.Signer()); r != "" {
		return reject(rec, r, "the network's settings do not let %s publish", rec.Signer().Short())
	}
	return nil
}

func (n *netState) policy(k PublicKey) Reason {
	if n.settings == nil {
		return ""
	}
	s := n.settings.Settings()
	if _, banned := slices.BinarySearchFunc(s.Banned, k, PublicKey.Compare); banned {
		return ReasonBanned
	}
	if s.Restricted {
		if _, ok := slices.BinarySearchFunc(s.AllowedNodes, k, PublicKey.Compare); !ok {
			return ReasonNotAllowed
		}
	}
	return ""
}

// subject returns the held record with hash h that attestations may name:
// a claim, or a put in a first-writer-wins namespace. Nil otherwise.
func (n *netState) subject(h Hash) *Record {
	r := n.index.get(h)
	if r == nil {
		return nil
	}
	if r.kind == KindClaim || (r.kind == KindEntry && r.Entry().Policy == PolicyFWW && r.Entry().Op == OpPut) {
		return r
	}
	return nil
}

// attEntry returns the entry of a held attestation record.
func (n *netState) attEntry(r *Record) *attEntry {
	for _, e := range n.byClaim[r.Attestation().Claim] {
		if e.rec == r || e.rec.hash == r.hash {
			return e
		}
	}
	return &attEntry{rec: r}
}

func (n *netState) addClaim(rec *Record) {
	node := rec.Claim().Node
	list := n.claims(node)
	i, _ := slices.BinarySearchFunc(list, rec, compareClaims)
	list = slices.Insert(list, i, rec)
	n.index.add(rec)
	if len(list) > MaxClaimsPerNode {
		n.dropClaimOnly(list[0])
		list = slices.Delete(list, 0, 1)
	}
	n.setNode(node, n.host(node), list)
}

// dropClaimOnly removes a claim and its attestations, but not its entry in
// byNode (the caller maintains that list).
func (n *netState) dropClaimOnly(rec *Record) {
	n.index.remove(rec.hash)
	n.dropAtts(rec.hash, nil)
}

// dropAtts removes every attestation of subject, appending them to dropped.
func (n *netState) dropAtts(subject Hash, dropped []*Record) []*Record {
	for _, e := range n.byClaim[subject] {
		n.unindexAtt(e)
		dropped = append(dropped, e.rec)
	}
	delete(n.byClaim, subject)
	return dropped
}

func (n *netState) addAtt(e *attEntry) {
	c := e.rec.Attestation().Claim
	list := n.byClaim[c]
	i, _ := slices.BinarySearchFunc(list, e, compareAtts)
	n.byClaim[c] = slices.Insert(list, i, e)
	n.index.add(e.rec)
	if e.sp != nil {
		e.sp.fp.add(e.rec.hash, 1)
	}
}

func (n *netState) removeAtt(e *attEntry) {
	c := e.rec.Attestation().Claim
	n.byClaim[c] = slices.DeleteFunc(n.byClaim[c], func(x *attEntry) bool { return x == e })
	n.unindexAtt(e)
}

func (n *netState) unindexAtt(e *attEntry) {
	n.index.remove(e.rec.hash)
	if e.sp != nil {
		e.sp.fp.add(e.rec.hash, -1)
	}
}

// attestationBy returns the attestation of claim by attestor, if held.
func (n *netState) attestationBy(claim Hash, by Attestor) *attEntry {
	for _, e := range n.byClaim[claim] {
		if e.at.By == by {
			return e
		}
	}
	return nil
}

// Prune drops what the state must no longer hold at now: hosts past the
// host TTL, claims whose host is gone, records of banned or no longer
// allowed keys, entries their namespace no longer admits (undeclared, of
// another policy, by a writer it does not admit, expired, of a writer whose
// host is gone, beyond the writer's limit), attestations of dropped claims
// and entries or by attestors the settings no longer trust. It returns the
// dropped records.
func (s *State) Prune(now time.Time) []*Record {
	var dropped []*Record
	for _, id := range s.Joined() {
		dropped = s.nets[id].prune(now, dropped)
	}
	if len(dropped) > 0 {
		s.version++
	}
	return dropped
}

func (n *netState) prune(now time.Time, dropped []*Record) []*Record {
	// Most prunes drop nothing: only what goes is sorted (for a
	// deterministic order) and only changed lists are written back.
	var gone []*Record
	for _, r := range n.nodes {
		if h := r.host; h != nil && (n.policy(h.Host().Node) != "" || n.expired(h.Host(), now)) {
			gone = append(gone, h)
		}
	}
	slices.SortFunc(gone, func(a, b *Record) int { return a.Host().Node.Compare(b.Host().Node) })
	for _, h := range gone {
		node := h.Host().Node
		n.setNode(node, nil, n.claims(node))
		n.index.remove(h.hash)
		n.hostFP.add(h.hash, -1)
		dropped = append(dropped, h)
	}
	for node, r := range n.nodes {
		list := r.claims
		if !slices.ContainsFunc(list, func(c *Record) bool { return n.policy(node) != "" || n.claimDead(c.Claim(), now) }) {
			continue
		}
		kept := list[:0]
		for _, c := range list {
			if n.policy(node) != "" || n.claimDead(c.Claim(), now) {
				dropped = append(dropped, c)
				for _, e := range n.byClaim[c.hash] {
					dropped = append(dropped, e.rec)
				}
				n.dropClaimOnly(c)
				continue
			}
			kept = append(kept, c)
		}
		n.setNode(node, r.host, kept)
	}
	dropped = n.pruneEntries(now, dropped)
	for c, list := range n.byClaim {
		if !slices.ContainsFunc(list, func(e *attEntry) bool { return !n.trust.Trusts(e.at.By) }) {
			continue
		}
		kept := list[:0]
		for _, e := range list {
			if !n.trust.Trusts(e.at.By) {
				n.unindexAtt(e)
				dropped = append(dropped, e.rec)
				continue
			}
			kept = append(kept, e)
		}
		if len(kept) == 0 {
			delete(n.byClaim, c)
		} else {
			n.byClaim[c] = kept
		}
	}
	return dropped
}

// reserve sizes the maps of networks that hold nothing yet for the records
// about to be restored, so a large state file does not grow them step by
// step.
func (s *State) reserve(recs []Verified) {
	type counts struct{ hosts, claims, atts int }
	per := map[PublicKey]*counts{}
	for _, e := range recs {
		id := e.Record.Network()
		c := per[id]
		if c == nil {
			c = &counts{}
			per[id] = c
		}
		switch e.Record.kind {
		case KindHost:
			c.hosts++
		case KindClaim:
			c.claims++
		case KindAttestation:
			c.atts++
		}
	}
	for id, c := range per {
		n := s.nets[id]
		if n == nil || n.index.count > 0 {
			continue
		}
		n.nodes = make(map[PublicKey]*nodeRecs, c.hosts)
		n.byClaim = make(map[Hash][]*attEntry, c.claims)
		n.index.reserve(c.hosts + c.claims + c.atts)
	}
}

func (n *netState) sortedHosts() []*Record {
	out := make([]*Record, 0, len(n.nodes))
	for _, r := range n.nodes {
		if r.host != nil {
			out = append(out, r.host)
		}
	}
	slices.SortFunc(out, func(a, b *Record) int { return a.Host().Node.Compare(b.Host().Node) })
	return out
}

func (n *netState) sortedClaims() []*Record {
	var out []*Record
	for _, r := range n.nodes {
		out = append(out, r.claims...)
	}
	slices.SortFunc(out, func(a, b *Record) int { return a.hash.Compare(b.hash) })
	return out
}

func (n *netState) sortedAtts() []*Record {
	var out []*Record
	for _, list := range n.byClaim {
		for _, e := range list {
			out = append(out, e.rec)
		}
	}
	slices.SortFunc(out, func(a, b *Record) int { return a.hash.Compare(b.hash) })
	return out
}

// Records returns every record of network id in dependency order (settings,
// hosts, claims, entries, attestations), ready to encode or send. Nil if
// not joined.
func (s *State) Records(id PublicKey) []*Record {
	n := s.nets[id]
	if n == nil {
		return nil
	}
	var out []*Record
	if n.settings != nil {
		out = append(out, n.settings)
	}
	out = append(out, n.sortedHosts()...)
	out = append(out, n.sortedClaims()...)
	out = append(out, n.sortedEntries()...)
	return append(out, n.sortedAtts()...)
}

// Lookup returns the record with hash h in network id, or nil.
func (s *State) Lookup(id PublicKey, h Hash) *Record {
	if n := s.nets[id]; n != nil {
		return n.index.get(h)
	}
	return nil
}

// Settings returns the winning settings record of network id, or nil.
func (s *State) Settings(id PublicKey) *Record {
	if n := s.nets[id]; n != nil {
		return n.settings
	}
	return nil
}

// Trust returns the attestor trust of network id's current settings.
func (s *State) Trust(id PublicKey) *Trust {
	if n := s.nets[id]; n != nil {
		return n.trust
	}
	return nil
}

// Host returns node's host record in network id, or nil.
func (s *State) Host(id, node PublicKey) *Record {
	if n := s.nets[id]; n != nil {
		return n.host(node)
	}
	return nil
}

// Len counts the records of network id.
func (s *State) Len(id PublicKey) int {
	if n := s.nets[id]; n != nil {
		return n.index.count
	}
	return 0
}

// Verified is a record with what verifying it established: the attested
// time and attestor of an attestation (zero for other kinds). A node
// persists its state as a list of them.
type Verified struct {
	Record   *Record
	Attested Attested
}

// Verified lists the records of network id in dependency order, with their
// verification results.
func (s *State) Verified(id PublicKey) []Verified {
	n := s.nets[id]
	if n == nil {
		return nil
	}
	recs := s.Records(id)
	out := make([]Verified, len(recs))
	for i, r := range recs {
		out[i].Record = r
		if r.kind == KindAttestation {
			out[i].Attested = n.attEntry(r).at
		}
	}
	return out
}

// Snapshot is what a state file of network id holds, in a third of the
// memory of Verified: the records in dependency order (settings, hosts,
// claims, entries, attestations; unsorted within each kind), and the
// verification results of the attestations, the last len(atts) records. At
// 100,000 hosts, 9 MB against 24, on every write of the state.
func (s *State) Snapshot(id PublicKey) (recs []*Record, atts []Attested) {
	n := s.nets[id]
	if n == nil {
		return nil, nil
	}
	size, natts := 1+len(n.nodes), 0
	for _, r := range n.nodes {
		size += len(r.claims)
	}
	for _, sp := range n.spaces {
		for _, b := range sp.budgets {
			size += len(b.recs)
		}
	}
	for _, list := range n.byClaim {
		natts += len(list)
	}
	recs, atts = make([]*Record, 0, size+natts), make([]Attested, 0, natts)
	if n.settings != nil {
		recs = append(recs, n.settings)
	}
	for _, r := range n.nodes {
		if r.host != nil {
			recs = append(recs, r.host)
		}
	}
	for _, r := range n.nodes {
		recs = append(recs, r.claims...)
	}
	for _, sp := range n.spaces {
		for _, b := range sp.budgets {
			recs = append(recs, b.recs...)
		}
	}
	for _, list := range n.byClaim {
		for _, e := range list {
			recs, atts = append(recs, e.rec), append(atts, e.at)
		}
	}
	return recs, atts
}

// Restore adds records that this node verified itself and has
// authenticated since (the agent's state file carries a MAC keyed by the
// node's own key), without checking signatures or attestations again: a
// node of 10,000 hosts starts in milliseconds instead of seconds. Policy
// and time still apply (Restore is a Merge followed by Prune). Never call it
// with bytes that came from anywhere else: use Ingest. The result counts
// the records but does not list them (AddedRecords is nil): restoring is
// not news to gossip, and the list would be 2.4 MB at 100,000 hosts.
func (s *State) Restore(verified []Verified, now time.Time) BatchResult {
	byRank := func(a, b Verified) int { return dependencyRank(a.Record.kind) - dependencyRank(b.Record.kind) }
	sorted := verified
	if !slices.IsSortedFunc(sorted, byRank) {
		// A state file of one network is in this order already (Records);
		// copying 300,000 entries to sort them was a tenth of Restore.
		sorted = slices.Clone(verified)
		slices.SortStableFunc(sorted, byRank)
	}
	s.reserve(sorted)
	r := s.NewRestorer(now)
	r.Add(sorted) // in order: every entry is taken
	return r.Done()
}

// A Restorer is Restore fed in parts, as a state file is read: the agent
// restores what it has decoded while it decodes the rest. The parts must
// come in the order State.Verified gives, each network's records in
// dependency order (settings, hosts, claims, entries, attestations);
// Done prunes once at the end. The same rules as Restore hold: only for
// records this node verified itself.
type Restorer struct {
	s     *State
	now   time.Time
	rank  map[PublicKey]int // each network's rank so far
	res   BatchResult
	order bool
}

// NewRestorer starts restoring into s at now.
func (s *State) NewRestorer(now time.Time) *Restorer {
	return &Restorer{s: s, now: now, rank: map[PublicKey]int{}, order: true}
}

// Add restores entries. At the first one out of dependency order within
// its network it stops and returns false, and takes nothing more: the
// caller restores everything into a new state with Restore, which sorts.
func (r *Restorer) Add(entries []Verified) bool {
	if !r.order {
		return false
	}
	for _, e := range entries {
		id, rank := e.Record.Network(), dependencyRank(e.Record.kind)
		if rank < r.rank[id] {
			r.order = false
			return false
		}
		r.rank[id] = rank
		n := r.s.nets[id]
		if n == nil {
			r.res.tally(e.Record, 0, reject(e.Record, ReasonNotJoined, "network %s is not joined", id.Short()))
			continue
		}
		at := e.Attested
		at.Time = canonicalTime(at.Time)
		// What a prune would drop at once is not put at all (hosts and
		// claims come after the settings that judge them, attestations
		// after their subjects): one pass over the state file, not two.
		if n.decayed(e.Record, at, r.now) {
			r.res.tally(e.Record, Superseded, nil)
			continue
		}
		r.res.tally(e.Record, n.put(e.Record, at), nil)
	}
	return true
}

// Done ends the restore: what has decayed by now is pruned, and the result
// counts what the state holds of what was added.
func (r *Restorer) Done() BatchResult {
	res := r.res
	if res.Added > 0 {
		r.s.version++
	}
	var dropped []*Record
	for _, id := range r.s.Joined() {
		dropped = r.s.nets[id].pruneEntries(r.now, dropped)
	}
	res.Added -= len(dropped)
	return res
}

// decayed reports whether prune would drop rec as soon as it is held: a
// host expired or shut out by the settings, a claim that is dead, an
// attestation by an attestor the settings do not trust.
func (n *netState) decayed(rec *Record, at Attested, now time.Time) bool {
	switch rec.kind {
	case KindHost:
		return n.policy(rec.Host().Node) != "" || n.expired(rec.Host(), now)
	case KindClaim:
		return n.policy(rec.Claim().Node) != "" || n.claimDead(rec.Claim(), now)
	case KindAttestation:
		return !n.trust.Trusts(at.By)
	}
	return false
}
