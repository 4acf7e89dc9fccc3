package crdt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// DataFormat names the version of the data.json format. A reader refuses
// any other value rather than misreading it.
const DataFormat = "data-mesher/v1"

// DataFile is a decoded data.json: records grouped by network. Decoding
// checks form and canonical encoding, not signatures (ingestion does).
type DataFile struct {
	Networks []DataNetwork
}

// DataNetwork is one network's part of a data.json.
type DataNetwork struct {
	Network PublicKey
	Records []*Record
	// Errors lists the records that could not be decoded; the others are
	// still usable, so a damaged copy yields every undamaged record.
	Errors []error
}

type dataJSON struct {
	Format   string        `json:"format"`
	Networks []networkJSON `json:"networks"`
}

type networkJSON struct {
	Network      PublicKey         `json:"network"`
	Settings     *settingsJSON     `json:"settings,omitempty"`
	Hosts        []hostJSON        `json:"hosts"`
	Claims       []claimJSON       `json:"claims"`
	Entries      []entryJSON       `json:"entries"`
	Attestations []attestationJSON `json:"attestations"`
}

type settingsJSON struct {
	Updated      time.Time       `json:"updated"`
	Domain       string          `json:"domain"`
	HostTTL      int64           `json:"host_ttl"`
	DNSTTL       int64           `json:"dns_ttl"`
	Restricted   bool            `json:"restricted,omitempty"`
	AllowedNodes []PublicKey     `json:"allowed_nodes,omitempty"`
	Banned       []PublicKey     `json:"banned,omitempty"`
	Overrides    []overrideJSON  `json:"overrides,omitempty"`
	Witnesses    []PublicKey     `json:"witnesses,omitempty"`
	TSARoots     [][]byte        `json:"tsa_roots,omitempty"`
	TSAURLs      []string        `json:"tsa_urls,omitempty"`
	Extra        []extraJSON     `json:"extra,omitempty"`
	Namespaces   []namespaceJSON `json:"namespaces,omitempty"`
	Signature    []byte          `json:"signature"`
}

type namespaceJSON struct {
	Name                string      `json:"name"`
	Writers             Writers     `json:"writers"`
	WriterKeys          []PublicKey `json:"writer_keys,omitempty"`
	Policy              Policy      `json:"policy"`
	MaxValue            int         `json:"max_value,omitempty"`
	MaxEntriesPerWriter int         `json:"max_entries_per_writer,omitempty"`
	Lifetime            int64       `json:"lifetime,omitempty"`
}

type entryJSON struct {
	Namespace string     `json:"namespace"`
	Writer    PublicKey  `json:"writer"`
	Key       string     `json:"key"`
	Time      time.Time  `json:"time"`
	Policy    Policy     `json:"policy"`
	Op        Op         `json:"op"`
	Seq       uint64     `json:"seq,omitempty"`
	Value     []byte     `json:"value,omitempty"`
	Target    *PublicKey `json:"target,omitempty"`
	Removes   []Hash     `json:"removes,omitempty"`
	Signature []byte     `json:"signature"`
}

type overrideJSON struct {
	Name string    `json:"name"`
	Node PublicKey `json:"node"`
}

type extraJSON struct {
	Name string `json:"name"`
	Type string `json:"type"`
	TTL  int64  `json:"ttl,omitempty"`
	Data string `json:"data"`
}

type hostJSON struct {
	Node       PublicKey    `json:"node"`
	Heartbeat  time.Time    `json:"heartbeat"`
	Addresses  []netip.Addr `json:"addresses"`
	GossipPort uint16       `json:"gossip_port"`
	HTTPPort   uint16       `json:"http_port"`
	DNSPort    uint16       `json:"dns_port"`
	Signature  []byte       `json:"signature"`
}

type claimJSON struct {
	Node      PublicKey `json:"node"`
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	Signature []byte    `json:"signature"`
}

type attestationJSON struct {
	Claim   Hash         `json:"claim"`
	RFC3161 []byte       `json:"rfc3161,omitempty"`
	Witness *witnessJSON `json:"witness,omitempty"`
}

type witnessJSON struct {
	Key       PublicKey `json:"key"`
	Time      time.Time `json:"time"`
	Signature []byte    `json:"signature"`
}

// EncodeDataJSON writes the given networks of s as data.json, records in a
// fixed order, so equal states give equal files. A large state is better
// written as a stream: SnapshotDataJSON, then WriteTo outside the lock.
func EncodeDataJSON(s *State, networks ...PublicKey) ([]byte, error) {
	snap, err := s.SnapshotDataJSON(networks...)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DataSnapshot is what a data.json of some networks holds, taken from a
// state at one moment: records never change once made, so it is written
// after the state's lock is given back, and the state may move on.
type DataSnapshot struct {
	nets []snapshotNetwork
}

type snapshotNetwork struct {
	id                           PublicKey
	settings                     *Record
	hosts, claims, entries, atts []*Record
}

// SnapshotDataJSON takes the records of the given networks for a
// data.json: a few pointers per record, not the file's bytes (41 MB at
// 100,000 hosts).
func (s *State) SnapshotDataJSON(networks ...PublicKey) (*DataSnapshot, error) {
	snap := &DataSnapshot{}
	for _, id := range networks {
		n := s.nets[id]
		if n == nil {
			return nil, fmt.Errorf("encoding data.json: network %s is not joined", id.Short())
		}
		snap.nets = append(snap.nets, snapshotNetwork{id: id, settings: n.settings,
			hosts: n.sortedHosts(), claims: n.sortedClaims(), entries: n.sortedEntries(), atts: n.sortedAtts()})
	}
	return snap, nil
}

// WriteTo writes the snapshot as data.json, one record at a time: the
// same bytes as encoding/json's indented encoding of the whole file
// (TestDataJSONStreamIsTheDocument), in a buffer of 64 KB.
func (d *DataSnapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	e := &jsonStream{w: bufio.NewWriterSize(cw, 64<<10)}
	e.raw("{\n  \"format\": ")
	e.value(DataFormat, "  ")
	e.raw(",\n  \"networks\": [")
	for i, n := range d.nets {
		if i > 0 {
			e.raw(",")
		}
		e.raw("\n    {\n      \"network\": ")
		e.value(n.id, "      ")
		if n.settings != nil {
			e.raw(",\n      \"settings\": ")
			e.value(settingsToJSON(n.settings), "      ")
		}
		e.array("hosts", n.hosts, func(r *Record) any { return hostToJSON(r) })
		e.array("claims", n.claims, func(r *Record) any { return claimToJSON(r) })
		e.array("entries", n.entries, func(r *Record) any { return entryToJSON(r) })
		e.array("attestations", n.atts, func(r *Record) any { return attestationToJSON(r) })
		e.raw("\n    }")
	}
	if len(d.nets) > 0 {
		e.raw("\n  ")
	}
	e.raw("]\n}\n")
	if e.err == nil {
		e.err = e.w.Flush()
	}
	if e.err != nil {
		return cw.n, fmt.Errorf("writing data.json: %w", e.err)
	}
	return cw.n, nil
}

// jsonStream writes an indented JSON document piece by piece; the first
// error stops it.
type jsonStream struct {
	w   *bufio.Writer
	err error
	// elem encodes the arrays' elements into buf: one encoder reused,
	// where json.MarshalIndent would make two new copies of each.
	elem *json.Encoder
	buf  bytes.Buffer
}

func (e *jsonStream) raw(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

// value writes v as encoding/json indents it at prefix.
func (e *jsonStream) value(v any, prefix string) {
	if e.err != nil {
		return
	}
	b, err := json.MarshalIndent(v, prefix, "  ")
	if err != nil {
		e.err = err
		return
	}
	_, e.err = e.w.Write(b)
}

// element writes v as an array's element: as value does at its depth.
func (e *jsonStream) element(v any) {
	if e.err != nil {
		return
	}
	if e.elem == nil {
		e.elem = json.NewEncoder(&e.buf)
		e.elem.SetIndent("        ", "  ")
	}
	e.buf.Reset()
	if e.err = e.elem.Encode(v); e.err == nil {
		_, e.err = e.w.Write(bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")))
	}
}

// array writes a network's field key: its records, each as conv makes it.
func (e *jsonStream) array(key string, recs []*Record, conv func(*Record) any) {
	e.raw(",\n      \"" + key + "\": [")
	for i, r := range recs {
		if i > 0 {
			e.raw(",")
		}
		e.raw("\n        ")
		e.element(conv(r))
	}
	if len(recs) > 0 {
		e.raw("\n      ")
	}
	e.raw("]")
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func settingsToJSON(r *Record) *settingsJSON {
	s := r.Settings()
	sj := &settingsJSON{
		Updated: s.Updated, Domain: s.Domain,
		HostTTL: int64(s.HostTTL / time.Second), DNSTTL: int64(s.DNSTTL / time.Second),
		Restricted: s.Restricted, AllowedNodes: s.AllowedNodes, Banned: s.Banned,
		Witnesses: s.Witnesses, TSARoots: s.TSARoots, TSAURLs: s.TSAURLs, Signature: r.sig[:],
	}
	for _, o := range s.Overrides {
		sj.Overrides = append(sj.Overrides, overrideJSON(o))
	}
	for _, x := range s.Extra {
		sj.Extra = append(sj.Extra, extraJSON{Name: x.Name, Type: x.Type.String(), TTL: int64(x.TTL / time.Second), Data: x.Data})
	}
	for _, ns := range s.Namespaces {
		sj.Namespaces = append(sj.Namespaces, namespaceJSON{Name: ns.Name, Writers: ns.Writers, WriterKeys: ns.WriterKeys,
			Policy: ns.Policy, MaxValue: ns.MaxValue, MaxEntriesPerWriter: ns.MaxEntriesPerWriter, Lifetime: int64(ns.Lifetime / time.Second)})
	}
	return sj
}

func hostToJSON(r *Record) hostJSON {
	h := r.Host()
	return hostJSON{Node: h.Node, Heartbeat: h.Heartbeat, Addresses: h.Addresses,
		GossipPort: h.GossipPort, HTTPPort: h.HTTPPort, DNSPort: h.DNSPort, Signature: r.sig[:]}
}

func claimToJSON(r *Record) claimJSON {
	c := r.Claim()
	return claimJSON{Node: c.Node, Name: c.Name, Created: c.Created, Signature: r.sig[:]}
}

func entryToJSON(r *Record) entryJSON {
	e := r.Entry()
	ej := entryJSON{Namespace: e.Namespace, Writer: e.Writer, Key: e.Key, Time: e.Time, Policy: e.Policy, Op: e.Op,
		Seq: e.Seq, Value: e.Value, Removes: e.Removes, Signature: r.sig[:]}
	if e.IsTombstone() {
		t := e.Target
		ej.Target = &t
	}
	return ej
}

func attestationToJSON(r *Record) attestationJSON {
	a := r.Attestation()
	aj := attestationJSON{Claim: a.Claim, RFC3161: a.RFC3161}
	if w := a.Witness; w != nil {
		aj.Witness = &witnessJSON{Key: w.Key, Time: w.Time, Signature: w.Signature}
	}
	return aj
}

// DecodeDataJSON reads a whole data.json held in memory (ReadDataJSON
// reads one as a stream, with the same rules). A syntax error, a value
// over the limits, a duplicate key, a bad network key or an unknown format
// version fails the whole file; a record that does not decode is reported
// in its network's Errors and skipped.
func DecodeDataJSON(b []byte) (*DataFile, error) {
	out := &DataFile{}
	err := ReadDataJSON(bytes.NewReader(b), DataLimits{MaxValue: int64(len(b)) + 1}, func(id PublicKey, r *Record, err error) error {
		if n := len(out.Networks); n == 0 || out.Networks[n-1].Network != id {
			out.Networks = append(out.Networks, DataNetwork{Network: id})
		}
		dn := &out.Networks[len(out.Networks)-1]
		if err != nil {
			dn.Errors = append(dn.Errors, err)
		} else {
			dn.Records = append(dn.Records, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func settingsFromJSON(id PublicKey, raw json.RawMessage) (*Record, error) {
	var sj settingsJSON
	if err := json.Unmarshal(raw, &sj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	s := &Settings{
		Network: id, Updated: sj.Updated, Domain: sj.Domain,
		HostTTL: seconds(sj.HostTTL), DNSTTL: seconds(sj.DNSTTL),
		Restricted: sj.Restricted, AllowedNodes: sj.AllowedNodes, Banned: sj.Banned,
		Witnesses: sj.Witnesses, TSARoots: sj.TSARoots, TSAURLs: sj.TSAURLs,
	}
	var err error
	for _, o := range sj.Overrides {
		s.Overrides = append(s.Overrides, Override(o))
	}
	for _, xj := range sj.Extra {
		t, terr := ParseRRType(xj.Type)
		err = errors.Join(err, terr)
		s.Extra = append(s.Extra, ExtraRecord{Name: xj.Name, Type: t, TTL: seconds(xj.TTL), Data: xj.Data})
	}
	for _, nsj := range sj.Namespaces {
		s.Namespaces = append(s.Namespaces, Namespace{Name: nsj.Name, Writers: nsj.Writers, WriterKeys: nsj.WriterKeys,
			Policy: nsj.Policy, MaxValue: nsj.MaxValue, MaxEntriesPerWriter: nsj.MaxEntriesPerWriter, Lifetime: seconds(nsj.Lifetime)})
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return assemble(&Record{kind: KindSettings, body: s}, sj.Signature)
}

func hostFromJSON(id PublicKey, raw json.RawMessage) (*Record, error) {
	var hj hostJSON
	if err := json.Unmarshal(raw, &hj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	h := &Host{Network: id, Node: hj.Node, Heartbeat: hj.Heartbeat, Addresses: hj.Addresses,
		GossipPort: hj.GossipPort, HTTPPort: hj.HTTPPort, DNSPort: hj.DNSPort}
	return assemble(&Record{kind: KindHost, body: h}, hj.Signature)
}

func claimFromJSON(id PublicKey, raw json.RawMessage) (*Record, error) {
	var cj claimJSON
	if err := json.Unmarshal(raw, &cj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	c := &Claim{Network: id, Node: cj.Node, Name: cj.Name, Created: cj.Created}
	return assemble(&Record{kind: KindClaim, body: c}, cj.Signature)
}

func entryFromJSON(id PublicKey, raw json.RawMessage) (*Record, error) {
	var ej entryJSON
	if err := json.Unmarshal(raw, &ej); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	e := &Entry{Network: id, Namespace: ej.Namespace, Writer: ej.Writer, Key: ej.Key, Time: ej.Time,
		Policy: ej.Policy, Op: ej.Op, Seq: ej.Seq, Value: ej.Value, Removes: ej.Removes}
	if ej.Target != nil {
		e.Target = *ej.Target
	}
	return assemble(&Record{kind: KindEntry, body: e}, ej.Signature)
}

func attestationFromJSON(id PublicKey, raw json.RawMessage) (*Record, error) {
	var aj attestationJSON
	if err := json.Unmarshal(raw, &aj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	a := &Attestation{Network: id, Claim: aj.Claim, RFC3161: aj.RFC3161}
	if w := aj.Witness; w != nil {
		a.Witness = &Witness{Key: w.Key, Time: w.Time, Signature: w.Signature}
	}
	return assemble(&Record{kind: KindAttestation, body: a}, nil)
}

// assemble encodes a body decoded from JSON with its signature, then decodes
// the bytes again: one validation path for both formats.
func assemble(r *Record, sig []byte) (*Record, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if r.kind != KindAttestation && len(sig) != signatureSize {
		return nil, fmt.Errorf("%w: signature of %d bytes", ErrMalformed, len(sig))
	}
	return DecodeRecord(append(r.encodeUnsigned(), sig...))
}
