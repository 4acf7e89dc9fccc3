package crdt

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// JoinedNetwork is this node's local configuration of one network.
type JoinedNetwork struct {
	ID PublicKey
	// Priority decides between networks that produce the same name: the
	// lower number wins (1.5 sits between 1 and 2).
	Priority float64
}

// ViewConfig is the local input to the resolved view.
type ViewConfig struct {
	Networks []JoinedNetwork
	// Reachable reports whether this node has seen node answer the
	// reachability challenge at its addresses in network. Nil means every
	// host counts as reachable (tests, and views computed for export).
	Reachable func(network, node PublicKey) bool
	// Previous is the view computed before, if any: the new one shares
	// its entries (and reverse lists) that did not change.
	Previous *ResolvedView
}

// ResolvedView is what DNS serves: for each fully qualified name, the
// winning addresses and records. It is computed from scratch and never
// modified afterwards, so readers need no lock.
type ResolvedView struct {
	// Zones are the joined networks' domains, one per domain (the best
	// priority wins), longest domain first so the first suffix match is the
	// most specific zone.
	Zones []Zone
	// Names maps a lower-case FQDN without trailing dot to its entry.
	Names map[string]*Name
	// Reverse maps an address to the names that resolve to it, sorted.
	Reverse map[netip.Addr][]string
	// ValidUntil is the earliest time the view changes by itself (a host
	// decays); recompute then at the latest. Zero if nothing will decay.
	ValidUntil time.Time
}

// Zone is a domain this node answers for.
type Zone struct {
	Domain   string
	Network  PublicKey
	Priority float64
	TTL      time.Duration // the DNS TTL of the zone's answers
	Serial   uint32        // SOA serial: the settings' time in seconds
}

// Name is one resolved name.
type Name struct {
	FQDN     string
	Network  PublicKey
	Priority float64
	// Node is the holder of the name; zero for names made only of the
	// admin's extra records.
	Node  PublicKey
	Addrs []netip.Addr
	TTL   time.Duration
	// Extra are the admin's records at this name, targets made absolute
	// (with a trailing dot).
	Extra []ExtraRecord
}

// View computes the resolved view at now.
func (s *State) View(cfg ViewConfig, now time.Time) *ResolvedView {
	size := 0
	for _, jn := range cfg.Networks {
		if n := s.nets[jn.ID]; n != nil {
			size += len(n.nodes)
		}
	}
	v := &ResolvedView{Names: map[string]*Name{}, Reverse: make(map[netip.Addr][]string, size)}
	nets := slices.Clone(cfg.Networks)
	slices.SortStableFunc(nets, func(a, b JoinedNetwork) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		return a.ID.Compare(b.ID)
	})
	zones := map[string]bool{}
	for _, jn := range nets {
		n := s.nets[jn.ID]
		if n == nil || n.settings == nil {
			continue
		}
		set := n.settings.Settings()
		if !zones[set.Domain] {
			zones[set.Domain] = true
			v.Zones = append(v.Zones, Zone{
				Domain: set.Domain, Network: jn.ID, Priority: jn.Priority,
				TTL: set.DNSTTL, Serial: uint32(set.Updated.Unix()),
			})
		}
		adm, covered := s.adminRecords(jn.ID, now)
		svc := s.registers(jn.ID, NamespaceServices, now)
		if svc != nil && !svc.ValidUntil.IsZero() && (v.ValidUntil.IsZero() || svc.ValidUntil.Before(v.ValidUntil)) {
			v.ValidUntil = svc.ValidUntil
		}
		names := n.resolve(jn, cfg.Reachable, now, v, adm, covered, svc, cfg.Previous)
		if len(v.Names) == 0 {
			v.Names = names // the first network's: no name is taken yet
			continue
		}
		for fqdn, e := range names {
			if _, taken := v.Names[fqdn]; !taken {
				v.Names[fqdn] = e
			}
		}
	}
	slices.SortFunc(v.Zones, func(a, b Zone) int {
		if c := cmp.Compare(len(b.Domain), len(a.Domain)); c != 0 {
			return c
		}
		return strings.Compare(a.Domain, b.Domain)
	})
	var was map[netip.Addr][]string
	if cfg.Previous != nil {
		was = cfg.Previous.Reverse
	}
	for fqdn, e := range v.Names {
		for _, a := range e.Addrs {
			names, seen := v.Reverse[a]
			if !seen {
				// Nearly every address has one name, as before: its list
				// is shared (clipped, so a second name copies it).
				if w := was[a]; len(w) > 0 && w[0] == fqdn {
					v.Reverse[a] = w[:1:1]
					continue
				}
			}
			v.Reverse[a] = append(names, fqdn)
		}
	}
	for a, names := range v.Reverse {
		if len(names) > 1 { // a list of its own (a shared one has one name)
			slices.Sort(names)
			if w := was[a]; slices.Equal(w, names) {
				v.Reverse[a] = w
			}
		}
	}
	return v
}

// resolve builds one network's names, by FQDN, and lowers v.ValidUntil to the first
// decay it sees. adm are the admin's records from namespaces, which
// replace the settings' extra records of the (name, type) pairs covered;
// svc the services nodes publish (services.go); prev the view before,
// whose entries that did not change the new one shares.
func (n *netState) resolve(jn JoinedNetwork, reachable func(network, node PublicKey) bool, now time.Time, v *ResolvedView,
	adm []ExtraRecord, covered map[[2]string]bool, svc *NamespaceItems, prev *ResolvedView) map[string]*Name {
	set := n.settings.Settings()
	live := func(node PublicKey) *Record {
		r := n.host(node)
		if r == nil || n.expired(r.Host(), now) || n.policy(node) != "" {
			return nil
		}
		return r
	}
	holders := n.winners(now)
	for _, o := range set.Overrides {
		holders[o.Name] = holder{host: live(o.Node)}
	}
	byName := make(map[string]*Name, len(holders))
	var old map[string]*Name
	if prev != nil {
		old = prev.Names
	}
	// The names that get records beside a claim's addresses: the admin's,
	// and the services' (an owner's, under each name it holds).
	extras := slices.DeleteFunc(slices.Clone(set.Extra), func(x ExtraRecord) bool { return covered[[2]string{x.Name, x.Type.String()}] })
	extras = append(extras, adm...)
	owned := ownedServices(svc)
	more := make(map[string]bool, len(extras))
	for _, x := range extras {
		more[x.Name] = true
	}
	// Fresh entries in blocks, fewer allocations than one each: the
	// first view's in one block (100,000 allocations fewer at 100,000
	// hosts), a later view's a few at a time (nearly all its entries are
	// the previous view's).
	var block []Name
	fresh := func(fqdn string) *Name {
		if len(block) == cap(block) {
			size := 64
			if len(old) == 0 {
				size = max(len(holders), size)
			}
			block = make([]Name, 0, size)
		}
		block = append(block, Name{FQDN: fqdn, Network: jn.ID, Priority: jn.Priority, TTL: set.DNSTTL})
		e := &block[len(block)-1]
		byName[fqdn] = e
		return e
	}
	var buf []byte
	// key is the FQDN of rel, in a buffer reused (a map lookup with
	// string(key(rel)) allocates nothing).
	key := func(rel string) []byte {
		buf = buf[:0]
		if rel != "@" {
			buf = append(append(buf, rel...), '.')
		}
		return append(buf, set.Domain...)
	}
	entry := func(rel string) *Name {
		buf = key(rel)
		e := byName[string(buf)]
		if e == nil {
			return fresh(string(buf))
		}
		if o := old[string(buf)]; o == e { // shared, and about to change: a copy
			c := *o
			e = fresh(o.FQDN)
			*e = c
		}
		return e
	}
	var pending []ExtraRecord // the services' records, once their names have entries
	for name, w := range holders {
		if w.host == nil || len(name)+1+len(set.Domain) > maxNameLen {
			continue
		}
		h := w.host.Host()
		node := h.Node
		if end := h.Heartbeat.Add(set.HostTTL); v.ValidUntil.IsZero() || end.Before(v.ValidUntil) {
			v.ValidUntil = end
		}
		if reachable != nil && !reachable(n.id, node) {
			continue
		}
		svcs := serviceRecords(owned[node], name)
		pending = append(pending, svcs...)
		buf = key(name)
		// An entry of the previous view that says the same is shared:
		// a view costs its changes, not a copy of every name (at
		// 100,000 hosts, 15 MB held twice while the next is computed).
		if o := old[string(buf)]; o != nil && !more[name] && len(svcs) == 0 && len(o.Extra) == 0 &&
			o.Network == jn.ID && o.Priority == jn.Priority && o.TTL == set.DNSTTL && o.Node == node &&
			slices.Equal(o.Addrs, h.Addresses) {
			byName[o.FQDN] = o
			continue
		}
		e := entry(name)
		e.Node = node
		e.Addrs = h.Addresses // records never change: shared, like the view
	}
	for _, x := range pending {
		se := entry(x.Name)
		x.TTL, x.Data = set.DNSTTL, absoluteData(x, set.Domain)
		se.Extra = append(se.Extra, x)
	}
	for _, x := range extras {
		e := entry(x.Name)
		if x.TTL == 0 {
			x.TTL = set.DNSTTL
		}
		x.Data = absoluteData(x, set.Domain)
		e.Extra = append(e.Extra, x)
	}
	for fqdn, e := range byName {
		// A CNAME excludes all other data at its name; the admin's record
		// wins over a claim.
		if i := slices.IndexFunc(e.Extra, func(x ExtraRecord) bool { return x.Type == TypeCNAME }); i >= 0 {
			e.Extra = []ExtraRecord{e.Extra[i]}
			e.Addrs, e.Node = nil, PublicKey{}
		}
		if len(e.Addrs) == 0 && len(e.Extra) == 0 {
			delete(byName, fqdn)
		}
	}
	return byName
}

// absoluteData makes CNAME and SRV targets fully qualified.
func absoluteData(x ExtraRecord, domain string) string {
	abs := func(t string) string {
		if strings.HasSuffix(t, ".") {
			return t
		}
		return t + "." + domain + "."
	}
	switch x.Type {
	case TypeCNAME:
		return abs(x.Data)
	case TypeSRV:
		f := strings.Split(x.Data, " ")
		f[3] = abs(f[3])
		return strings.Join(f, " ")
	}
	return x.Data
}

// ClaimState is one claim's standing in a contest for a name.
type ClaimState struct {
	Hash     Hash
	Node     PublicKey
	Created  time.Time
	Attested bool      // at least one valid attestation
	Time     time.Time // earliest attested time (if Attested)
	By       Attestor  // who attested that time
	HostLive bool      // the claimant's host record is live
	Active   bool      // attested and host live: it competes for the name
}

// NameStatus says who holds a name in a network and why.
type NameStatus struct {
	Name     string
	Holder   PublicKey // zero if nobody holds it
	Override bool      // held by the admin's override, not by a claim
	Claims   []ClaimState
}

// winners decides every claimed name of the network: among active claims,
// the earliest attested time wins; equal times go to the smaller claim hash.
func (n *netState) winners(now time.Time) map[string]holder {
	best := make(map[string]holder, len(n.nodes)) // 16 bytes a name: at 100,000 hosts, 5 MB, not 17
	// By node: a claim competes only while its node's host record is live
	// and the settings let the node publish, the same for all its claims
	// (claimState, node by node).
	for node, r := range n.nodes {
		h, list := r.host, r.claims
		if h == nil || n.expired(h.Host(), now) || n.policy(node) != "" {
			continue
		}
		for _, c := range list {
			at, ok := n.attestedTime(c.hash)
			if !ok {
				continue
			}
			name := c.Claim().Name
			b, held := best[name]
			if held {
				bat, _ := n.attestedTime(b.claim.hash) // a contested name: rare
				held = compareStanding(&ClaimState{Time: at, Hash: c.hash}, &ClaimState{Time: bat, Hash: b.claim.hash}) >= 0
			}
			if !held {
				best[name] = holder{host: h, claim: c}
			}
		}
	}
	return best
}

// holder is who holds a name: the node's host record if live (nil for an
// override whose node is not), and its winning claim (nil for an
// override).
type holder struct {
	host, claim *Record
}

// attestedTime is a subject's earliest attested time by a trusted
// attestor.
func (n *netState) attestedTime(subject Hash) (time.Time, bool) {
	for _, e := range n.byClaim[subject] {
		if n.trust.Trusts(e.at.By) { // a state fresh from Join may hold others
			return e.at.Time, true
		}
	}
	return time.Time{}, false
}

func compareStanding(a, b *ClaimState) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return a.Hash.Compare(b.Hash)
}

func (n *netState) claimState(c *Record, now time.Time) ClaimState {
	st := ClaimState{Hash: c.hash, Node: c.Claim().Node, Created: c.Claim().Created}
	if h := n.host(c.Claim().Node); h != nil && !n.expired(h.Host(), now) {
		st.HostLive = true
	}
	for _, e := range n.byClaim[c.hash] {
		if n.trust.Trusts(e.at.By) { // as attestedTime
			st.Attested, st.Time, st.By = true, e.at.Time, e.at.By
			break
		}
	}
	st.Active = st.Attested && st.HostLive && n.policy(c.Claim().Node) == ""
	return st
}

// NameStatus explains who holds name (relative to the domain) in network id
// and how every claim on it stands, the winner first: what `doctor` and
// `dm-agent hosts` show.
func (s *State) NameStatus(id PublicKey, name string, now time.Time) NameStatus {
	ns := NameStatus{Name: name}
	n := s.nets[id]
	if n == nil {
		return ns
	}
	for _, c := range n.allClaims() {
		if c.Claim().Name == name {
			ns.Claims = append(ns.Claims, n.claimState(c, now))
		}
	}
	slices.SortFunc(ns.Claims, func(a, b ClaimState) int {
		if a.Active != b.Active {
			if a.Active {
				return -1
			}
			return 1
		}
		if a.Attested != b.Attested {
			if a.Attested {
				return -1
			}
			return 1
		}
		return compareStanding(&a, &b)
	})
	if len(ns.Claims) > 0 && ns.Claims[0].Active {
		ns.Holder = ns.Claims[0].Node
	}
	if n.settings != nil {
		for _, o := range n.settings.Settings().Overrides {
			if o.Name == name {
				ns.Holder, ns.Override = o.Node, true
			}
		}
	}
	return ns
}

// Claims lists the claims of node in network id (its names), sorted.
func (s *State) Claims(id, node PublicKey) []*Record {
	if n := s.nets[id]; n != nil {
		return slices.Clone(n.claims(node))
	}
	return nil
}

// Attestations lists the attestations held for a claim or a first-writer-wins
// entry, earliest first.
func (s *State) Attestations(id PublicKey, claim Hash) []*Record {
	n := s.nets[id]
	if n == nil {
		return nil
	}
	var out []*Record
	for _, e := range n.byClaim[claim] {
		out = append(out, e.rec)
	}
	return out
}

// Hosts lists the host records of network id, by node key.
func (s *State) Hosts(id PublicKey) []*Record {
	if n := s.nets[id]; n != nil {
		return n.sortedHosts()
	}
	return nil
}

// EachHost calls f with each host record of network id, in no
// particular order, until f returns false: for who looks at every host
// and keeps few (Hosts sorts them all, 100,000 at a time).
func (s *State) EachHost(id PublicKey, f func(*Record) bool) {
	n := s.nets[id]
	if n == nil {
		return
	}
	for _, r := range n.nodes {
		if r.host != nil && !f(r.host) {
			return
		}
	}
}

// allClaims iterates over every held claim (in no particular order).
func (n *netState) allClaims() func(yield func(int, *Record) bool) {
	return func(yield func(int, *Record) bool) {
		i := 0
		for _, r := range n.nodes {
			for _, c := range r.claims {
				if !yield(i, c) {
					return
				}
				i++
			}
		}
	}
}
