package dnsserver

import (
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/miekg/dns"
)

// Table is an immutable, query-ready form of a resolved view.
//
// A host's records are read from the view itself, and the reverse names
// from each reverse zone's index of addresses (reverse.go): the table
// holds only the names that are more than that (fixed), and the fast
// path's pre-packed replies: about 165 bytes a host at 100,000 hosts
// (TestMemoryPerHost).
type Table struct {
	zones []*zone // longest apex first
	// fixed holds the zone apexes (SOA, NS), the NS names given
	// NSAddrs, the names with the admin's records (parsed, with the
	// view's addresses), and the empty non-terminals above forward names:
	// lower-case FQDN with trailing dot.
	fixed map[string]*rrset
	fast  *fastTable // pre-packed replies for the fast path
	// fastDeferred: fast is empty, left for WithFast (DeferFast).
	fastDeferred bool
	// Names is the number of names with data, for status and metrics.
	Names int

	apexes   map[string]*zone   // zone by apex
	view     *crdt.ResolvedView // what the table was built from, and answers from
	prefixes []netip.Prefix
	nsAddrs  []netip.Addr
}

type zone struct {
	apex    string // lower-case, trailing dot
	soa     *dns.SOA
	ns      []dns.RR
	negTTL  uint32
	reverse bool
	rev     *reverseIndex // nil unless the apex is a reverse name
}

// rrset holds a name's records. Address and PTR records are kept as the
// view gives them and built when a query needs them (the fast path answers
// from packed templates, so that is rare); SOA, NS and the admin's extra
// records are few and kept parsed. A name with no records exists only as
// an empty non-terminal (a descendant has records).
type rrset struct {
	owner string       // lower-case FQDN with trailing dot
	ttl   uint32       // of the address records
	addrs []netip.Addr // A and AAAA; shared with the view, never modified
	ptrs  []ptrTarget
	other map[uint16][]dns.RR
}

type ptrTarget struct {
	name string // FQDN with trailing dot
	ttl  uint32
}

// get returns the records of type qtype.
func (s *rrset) get(qtype uint16) []dns.RR {
	var out []dns.RR
	switch qtype {
	case dns.TypeA, dns.TypeAAAA:
		for _, a := range s.addrs {
			if a.Is4() == (qtype == dns.TypeA) {
				if qtype == dns.TypeA {
					out = append(out, &dns.A{Hdr: hdr(s.owner, qtype, s.ttl), A: a.AsSlice()})
				} else {
					out = append(out, &dns.AAAA{Hdr: hdr(s.owner, qtype, s.ttl), AAAA: a.AsSlice()})
				}
			}
		}
	case dns.TypePTR:
		for _, p := range s.ptrs {
			out = append(out, &dns.PTR{Hdr: hdr(s.owner, dns.TypePTR, p.ttl), Ptr: p.name})
		}
	}
	for _, rr := range s.other[qtype] {
		if !slices.ContainsFunc(out, func(o dns.RR) bool { return dns.IsDuplicate(o, rr) }) {
			out = append(out, rr)
		}
	}
	return out
}

// has reports whether the name has records of type qtype, without
// building them.
func (s *rrset) has(qtype uint16) bool {
	switch qtype {
	case dns.TypeA, dns.TypeAAAA:
		if slices.ContainsFunc(s.addrs, func(a netip.Addr) bool { return a.Is4() == (qtype == dns.TypeA) }) {
			return true
		}
	case dns.TypePTR:
		if len(s.ptrs) > 0 {
			return true
		}
	}
	return len(s.other[qtype]) > 0
}

// empty reports whether the name has no records at all.
func (s *rrset) empty() bool { return len(s.addrs) == 0 && len(s.ptrs) == 0 && len(s.other) == 0 }

// cname is the name's CNAME record, or nil.
func (s *rrset) cname() *dns.CNAME {
	if c := s.other[dns.TypeCNAME]; len(c) > 0 {
		return c[0].(*dns.CNAME)
	}
	return nil
}

// TableOptions are the local settings a table is built with.
type TableOptions struct {
	// NSName is the name this server gives itself in NS and SOA records
	// (default "ns.<zone>").
	NSName func(zone string) string
	// NSAddrs are the addresses this server answers on for the mesh: the
	// agent gives its tunnel addresses (not loopback). The NS name of each
	// zone answers A/AAAA with them, so the apex NS points at a name the
	// zone resolves (RFC 1034 §4.2.1; named-checkzone refuses an NS
	// without addresses), and NS answers carry them as glue. When the
	// view itself holds the NS name (a host claimed "ns"), its records
	// stand and NSAddrs are not used for it. Empty: the NS name has no
	// addresses.
	NSAddrs []netip.Addr
	// ReversePrefixes are the mesh prefixes this server answers PTR
	// queries for; reverse names outside them are refused. Default: the
	// /64 (IPv6) or /24 (IPv4) around each address in the view.
	ReversePrefixes []netip.Prefix
	// Previous is the table this one replaces: the packed replies of every
	// name whose records did not change are taken from it, so a view that
	// changed in one host costs one host's work, and an unchanged view
	// returns Previous itself.
	Previous *Table
	// DeferFast leaves the fast path's packed replies out: the Handler
	// answers every query itself (the same answers, TestFastPathMatchesHandler)
	// until the table WithFast returns replaces this one. A node starting
	// up answers sooner so: at 100,000 names this and Restore no longer
	// sorting a sorted state file took its first answer from 1.76 s to
	// 1.41 s (README).
	DeferFast bool
}

// NewTable turns a resolved view into a Table. The table keeps v (it
// answers from it, and compares it with the next view): v must not be
// modified afterwards, as the crdt package never does.
func NewTable(v *crdt.ResolvedView, opts TableOptions) (*Table, error) {
	prev := opts.Previous
	if prev != nil && (prev.view == nil || !slices.Equal(prev.view.Zones, v.Zones) || !slices.Equal(prev.prefixes, opts.ReversePrefixes) ||
		!slices.Equal(prev.nsAddrs, opts.NSAddrs)) {
		prev = nil // a zone's SOA is in every negative answer, its NS in glue: start over
	}
	if prev != nil && sameNames(prev.view, v) {
		if prev.fastDeferred && !opts.DeferFast {
			return prev.WithFast(), nil
		}
		return prev, nil
	}
	t := &Table{fixed: map[string]*rrset{}, view: v, apexes: map[string]*zone{},
		prefixes: slices.Clone(opts.ReversePrefixes), nsAddrs: slices.Clone(opts.NSAddrs)}
	// The reverse zones have no settings of their own: their SOA and NS
	// are the primary zone's (the best priority), so that every zone this
	// server answers names the same server, mailbox and timers; their
	// serial is the highest of all zones', so it moves when any does.
	var primary *crdt.Zone
	var maxSerial uint32
	for i, z := range v.Zones {
		if primary == nil || z.Priority < primary.Priority || (z.Priority == primary.Priority && z.Domain < primary.Domain) {
			primary = &v.Zones[i]
		}
		maxSerial = max(maxSerial, z.Serial)
	}
	for _, z := range v.Zones {
		apex := dns.Fqdn(z.Domain)
		ttl := uint32(z.TTL / time.Second)
		ns := "ns." + apex
		if opts.NSName != nil {
			ns = strings.ToLower(dns.Fqdn(opts.NSName(apex)))
		}
		zz := &zone{apex: apex, negTTL: ttl}
		zz.soa = &dns.SOA{
			Hdr: dns.RR_Header{Name: apex, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
			Ns:  ns, Mbox: "hostmaster." + apex, Serial: z.Serial,
			Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: ttl,
		}
		zz.ns = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: apex, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: ttl}, Ns: ns}}
		t.zones = append(t.zones, zz)
		t.apexes[apex] = zz
		t.add(zz.soa)
		t.add(zz.ns[0])
	}
	// A host's name stays in the view; a name with the admin's records
	// gets its records parsed.
	for fqdn, e := range v.Names {
		if len(e.Extra) == 0 {
			continue
		}
		name := dns.Fqdn(fqdn)
		for _, x := range e.Extra {
			rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", name, uint32(x.TTL/time.Second), x.Type, quoteTXT(x)))
			if err != nil || rr == nil {
				return nil, fmt.Errorf("extra record %s %s %q: %v", fqdn, x.Type, x.Data, err)
			}
			t.add(rr)
		}
	}
	// The NS name of each zone answers with this server's addresses,
	// unless the view has that name.
	for _, z := range t.zones {
		ns := strings.ToLower(z.ns[0].(*dns.NS).Ns)
		if len(opts.NSAddrs) == 0 || t.zoneOf(ns) == nil || t.fixed[ns] != nil || v.Names[strings.TrimSuffix(ns, ".")] != nil {
			continue
		}
		s := t.entry(ns)
		s.ttl = z.soa.Hdr.Ttl
		s.addrs = sortedAddrs(opts.NSAddrs)
	}
	// Reverse zones that cover the mesh prefixes: PTR for every address
	// that resolves.
	prefixes := opts.ReversePrefixes
	if prefixes == nil {
		prefixes = defaultPrefixes(v)
	}
	for _, p := range prefixes {
		apex, err := reverseApex(p)
		if err != nil {
			return nil, err
		}
		if t.apexes[apex] != nil {
			continue
		}
		ttl := uint32(crdt.DefaultDNSTTL / time.Second)
		ns, mbox, serial := "ns.invalid.", "hostmaster.invalid.", uint32(1)
		if primary != nil {
			pz := t.apexes[dns.Fqdn(primary.Domain)]
			ttl, ns, mbox, serial = pz.soa.Hdr.Ttl, pz.soa.Ns, pz.soa.Mbox, maxSerial
		}
		zz := &zone{apex: apex, reverse: true, negTTL: ttl}
		zz.soa = &dns.SOA{Hdr: hdr(apex, dns.TypeSOA, ttl), Ns: ns, Mbox: mbox, Serial: serial,
			Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: ttl}
		zz.ns = []dns.RR{&dns.NS{Hdr: hdr(apex, dns.TypeNS, ttl), Ns: ns}}
		t.zones = append(t.zones, zz)
		t.apexes[apex] = zz
		t.add(zz.soa)
		t.add(zz.ns[0])
	}
	slices.SortFunc(t.zones, func(a, b *zone) int { return len(b.apex) - len(a.apex) })
	t.indexReverse()
	// Empty non-terminals: every ancestor of a name, up to its zone apex,
	// exists. Those of reverse names are found in the reverse index.
	var ents []string
	for name := range t.forwardNames() {
		z := t.zoneOf(name)
		if z == nil {
			continue
		}
		for p := parent(name); len(p) > len(z.apex); p = parent(p) {
			if t.fixed[p] != nil || v.Names[p[:len(p)-1]] != nil {
				break // it and its ancestors are known
			}
			ents = append(ents, p)
		}
	}
	for _, p := range ents {
		if t.fixed[p] == nil {
			t.fixed[p] = &rrset{owner: p}
		}
	}
	t.Names = t.countNames()
	if opts.DeferFast {
		t.fast, t.fastDeferred = &fastTable{}, true
	} else {
		t.fast = buildFast(t, prev)
	}
	return t, nil
}

// WithFast returns t with the fast path's packed replies, built if
// NewTable deferred them, or t itself.
func (t *Table) WithFast() *Table {
	if !t.fastDeferred {
		return t
	}
	c := *t
	c.fast, c.fastDeferred = buildFast(&c, nil), false
	return &c
}

// lookup returns the records of name (lower case, fully qualified), or
// nil if the table does not have the name.
func (t *Table) lookup(name string) *rrset {
	s := t.fixed[name]
	if s == nil {
		if e := t.view.Names[strings.TrimSuffix(name, ".")]; e != nil {
			s = &rrset{owner: name, ttl: uint32(e.TTL / time.Second), addrs: e.Addrs}
		}
	}
	ptrs, rev := t.reverse(name)
	switch {
	case !rev:
		return s
	case s == nil:
		return &rrset{owner: name, ptrs: ptrs}
	}
	c := *s
	c.ptrs = ptrs
	return &c
}

// forwardNames are the names of the view and the fixed names, with
// trailing dot: every name the table has records for but the reverse names
// of the reverse index, and the empty non-terminals above them.
func (t *Table) forwardNames() iter.Seq[string] {
	return func(yield func(string) bool) {
		for name := range t.fixed {
			if !yield(name) {
				return
			}
		}
		for fqdn := range t.view.Names {
			if name := fqdn + "."; t.fixed[name] == nil && !yield(name) {
				return
			}
		}
	}
}

// names yields every name the table has, in no order: forwardNames, then
// the reverse names of the addresses (not the empty non-terminals above
// them).
func (t *Table) names(yield func(string) bool) {
	for name := range t.forwardNames() {
		if !yield(name) {
			return
		}
	}
	for _, z := range t.zones {
		if z.rev == nil {
			continue
		}
		for i := range z.rev.len() {
			name, err := dns.ReverseAddr(z.rev.addr(i).String())
			if err != nil || t.fixed[name] != nil || t.view.Names[strings.TrimSuffix(name, ".")] != nil {
				continue // a forward name too: yielded above
			}
			if !yield(name) {
				return
			}
		}
	}
}

// countNames counts the names with data.
func (t *Table) countNames() int {
	n := 0
	for _, z := range t.zones {
		if z.rev != nil {
			n += z.rev.len()
		}
	}
	for name := range t.forwardNames() {
		if s := t.fixed[name]; s != nil && s.empty() {
			continue // an empty non-terminal
		}
		n++
		// A reverse name that is a forward name too (a zone under arpa.
		// whose hosts are named like addresses) counts once.
		if strings.HasSuffix(name, ".arpa.") {
			if ptrs, _ := t.reverse(name); ptrs != nil {
				n--
			}
		}
	}
	return n
}

// View is the resolved view the table answers from (not to be modified).
func (t *Table) View() *crdt.ResolvedView { return t.view }

// unchangedIn reports whether name has the same records in t as in prev
// (the receiver), and nothing but its own records: the same view entry.
func (prev *Table) unchangedIn(t *Table, name string) bool {
	key := strings.TrimSuffix(name, ".")
	e, ok := t.view.Names[key]
	return ok && sameName(prev.view.Names[key], e)
}

func sameName(a, b *crdt.Name) bool {
	if a == b || a == nil || b == nil { // views share the entries that did not change
		return a == b
	}
	return a.FQDN == b.FQDN && a.Network == b.Network && a.Node == b.Node && a.TTL == b.TTL &&
		slices.Equal(a.Addrs, b.Addrs) && slices.Equal(a.Extra, b.Extra)
}

// sameNames reports whether two views with equal zones give the same
// answers.
func sameNames(a, b *crdt.ResolvedView) bool {
	if len(a.Names) != len(b.Names) || len(a.Reverse) != len(b.Reverse) {
		return false
	}
	for k, x := range b.Names {
		if !sameName(a.Names[k], x) {
			return false
		}
	}
	for k, x := range b.Reverse {
		if !slices.Equal(a.Reverse[k], x) {
			return false
		}
	}
	return true
}

// The SOA timers of every zone. Nothing transfers these zones (every
// node answers from its own view), so they only need to be sane and the
// same everywhere.
const (
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 86400
)

// sortedAddrs is a sorted copy of addrs without duplicates, unmapped.
func sortedAddrs(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// quoteTXT puts TXT data in quotes (escaping quotes and backslashes), and
// splits it into the 255-byte strings DNS allows.
func quoteTXT(x crdt.ExtraRecord) string {
	if x.Type != crdt.TypeTXT {
		return x.Data
	}
	var parts []string
	d := x.Data
	for len(d) > 0 {
		n := min(len(d), 255)
		parts = append(parts, `"`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(d[:n])+`"`)
		d = d[n:]
	}
	return strings.Join(parts, " ")
}

// entry returns the fixed rrset of name (lower case, fully qualified),
// making it with the view's addresses for the name.
func (t *Table) entry(name string) *rrset {
	s := t.fixed[name]
	if s == nil {
		s = &rrset{owner: name}
		if e := t.view.Names[strings.TrimSuffix(name, ".")]; e != nil {
			s.ttl, s.addrs = uint32(e.TTL/time.Second), e.Addrs
		}
		t.fixed[name] = s
	}
	return s
}

// add adds a parsed record (SOA, NS, an admin's record).
func (t *Table) add(rr dns.RR) {
	name := strings.ToLower(rr.Header().Name)
	rr.Header().Name = name
	s := t.entry(name)
	if s.other == nil {
		s.other = map[uint16][]dns.RR{}
	}
	for _, have := range s.other[rr.Header().Rrtype] {
		if dns.IsDuplicate(have, rr) {
			return
		}
	}
	s.other[rr.Header().Rrtype] = append(s.other[rr.Header().Rrtype], rr)
}

// zoneOf returns the most specific zone containing name (lower case,
// fully qualified), or nil: the first of name's suffixes that is an apex.
func (t *Table) zoneOf(name string) *zone {
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		if z := t.apexes[name[off:]]; z != nil {
			return z
		}
	}
	return nil
}

func parent(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end {
		return ""
	}
	return name[i:]
}

// reverseApex is the in-addr.arpa or ip6.arpa name of a prefix, rounded
// down to whole octets or nibbles.
func reverseApex(p netip.Prefix) (string, error) {
	p = p.Masked()
	a := p.Addr()
	if a.Is4() {
		bits := p.Bits() / 8 * 8
		b := a.As4()
		var labels []string
		for i := bits/8 - 1; i >= 0; i-- {
			labels = append(labels, fmt.Sprint(b[i]))
		}
		return strings.Join(append(labels, "in-addr.arpa."), "."), nil
	}
	if !a.Is6() {
		return "", fmt.Errorf("reverse zone for %v", p)
	}
	nibbles := p.Bits() / 4
	b := a.As16()
	var labels []string
	for i := nibbles - 1; i >= 0; i-- {
		v := b[i/2]
		if i%2 == 0 {
			v >>= 4
		}
		labels = append(labels, fmt.Sprintf("%x", v&0xf))
	}
	return strings.Join(append(labels, "ip6.arpa."), "."), nil
}

func defaultPrefixes(v *crdt.ResolvedView) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for a := range v.Reverse {
		bits := 64
		if a.Is4() {
			bits = 24
		}
		p, err := a.Prefix(bits)
		if err == nil && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}
