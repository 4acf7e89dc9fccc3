package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
// fixed order, so equal states give equal files.
func EncodeDataJSON(s *State, networks ...PublicKey) ([]byte, error) {
	f := dataJSON{Format: DataFormat, Networks: []networkJSON{}}
	for _, id := range networks {
		if s.nets[id] == nil {
			return nil, fmt.Errorf("encoding data.json: network %s is not joined", id.Short())
		}
		f.Networks = append(f.Networks, networkToJSON(id, s.Records(id)))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("encoding data.json: %w", err)
	}
	return buf.Bytes(), nil
}

func networkToJSON(id PublicKey, recs []*Record) networkJSON {
	n := networkJSON{Network: id, Hosts: []hostJSON{}, Claims: []claimJSON{}, Entries: []entryJSON{}, Attestations: []attestationJSON{}}
	for _, r := range recs {
		sig := func() []byte { return r.sig[:] }
		switch r.kind {
		case KindSettings:
			s := r.Settings()
			sj := &settingsJSON{
				Updated: s.Updated, Domain: s.Domain,
				HostTTL: int64(s.HostTTL / time.Second), DNSTTL: int64(s.DNSTTL / time.Second),
				Restricted: s.Restricted, AllowedNodes: s.AllowedNodes, Banned: s.Banned,
				Witnesses: s.Witnesses, TSARoots: s.TSARoots, TSAURLs: s.TSAURLs, Signature: sig(),
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
			n.Settings = sj
		case KindHost:
			h := r.Host()
			n.Hosts = append(n.Hosts, hostJSON{Node: h.Node, Heartbeat: h.Heartbeat, Addresses: h.Addresses,
				GossipPort: h.GossipPort, HTTPPort: h.HTTPPort, DNSPort: h.DNSPort, Signature: sig()})
		case KindClaim:
			c := r.Claim()
			n.Claims = append(n.Claims, claimJSON{Node: c.Node, Name: c.Name, Created: c.Created, Signature: sig()})
		case KindEntry:
			e := r.Entry()
			ej := entryJSON{Namespace: e.Namespace, Writer: e.Writer, Key: e.Key, Time: e.Time, Policy: e.Policy, Op: e.Op,
				Seq: e.Seq, Value: e.Value, Removes: e.Removes, Signature: sig()}
			if e.IsTombstone() {
				t := e.Target
				ej.Target = &t
			}
			n.Entries = append(n.Entries, ej)
		case KindAttestation:
			a := r.Attestation()
			aj := attestationJSON{Claim: a.Claim, RFC3161: a.RFC3161}
			if w := a.Witness; w != nil {
				aj.Witness = &witnessJSON{Key: w.Key, Time: w.Time, Signature: w.Signature}
			}
			n.Attestations = append(n.Attestations, aj)
		}
	}
	return n
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
