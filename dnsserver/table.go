package dnsserver

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/miekg/dns"
)

// Table is an immutable, query-ready form of a resolved view.
type Table struct {
	zones []*zone           // longest apex first
	names map[string]*rrset // lower-case FQDN with trailing dot
	fast  *fastTable        // pre-packed replies for the fast path
	// Names is the number of names with data, for status and metrics.
	Names int
}

type zone struct {
	apex    string // lower-case, trailing dot
	soa     *dns.SOA
	ns      []dns.RR
	negTTL  uint32
	reverse bool
}

// rrset holds a name's records by type. A name with no records exists only
// as an empty non-terminal (a descendant has records).
type rrset struct {
	byType map[uint16][]dns.RR
}

// TableOptions are the local settings a table is built with.
type TableOptions struct {
	// NSName is the name this server gives itself in NS and SOA records
	// (default "ns.<zone>").
	NSName func(zone string) string
	// ReversePrefixes are the mesh prefixes this server answers PTR
	// queries for; reverse names outside them are refused. Default: the
	// /64 (IPv6) or /24 (IPv4) around each address in the view.
	ReversePrefixes []netip.Prefix
}

// NewTable turns a resolved view into a Table.
func NewTable(v *crdt.ResolvedView, opts TableOptions) (*Table, error) {
	t := &Table{names: map[string]*rrset{}}
	for _, z := range v.Zones {
		apex := dns.Fqdn(z.Domain)
		ttl := uint32(z.TTL / time.Second)
		ns := "ns." + apex
		if opts.NSName != nil {
			ns = dns.Fqdn(opts.NSName(apex))
		}
		zz := &zone{apex: apex, negTTL: ttl}
		zz.soa = &dns.SOA{
			Hdr: dns.RR_Header{Name: apex, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
			Ns:  ns, Mbox: "hostmaster." + apex, Serial: z.Serial,
			Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl,
		}
		zz.ns = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: apex, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: ttl}, Ns: ns}}
		t.zones = append(t.zones, zz)
		t.add(zz.soa)
		t.add(zz.ns[0])
	}
	for fqdn, e := range v.Names {
		name := dns.Fqdn(fqdn)
		ttl := uint32(e.TTL / time.Second)
		for _, a := range e.Addrs {
			if a.Is4() {
				t.add(&dns.A{Hdr: hdr(name, dns.TypeA, ttl), A: a.AsSlice()})
			} else {
				t.add(&dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, ttl), AAAA: a.AsSlice()})
			}
		}
		for _, x := range e.Extra {
			rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", name, uint32(x.TTL/time.Second), x.Type, quoteTXT(x)))
			if err != nil || rr == nil {
				return nil, fmt.Errorf("extra record %s %s %q: %v", fqdn, x.Type, x.Data, err)
			}
			t.add(rr)
		}
	}
	// Reverse names: PTR for every address that resolves, in reverse zones
	// that cover the mesh prefixes.
	prefixes := opts.ReversePrefixes
	if prefixes == nil {
		prefixes = defaultPrefixes(v)
	}
	for _, p := range prefixes {
		apex, err := reverseApex(p)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(t.zones, func(z *zone) bool { return z.apex == apex }) {
			continue
		}
		ttl := uint32(crdt.DefaultDNSTTL / time.Second)
		zz := &zone{apex: apex, reverse: true, negTTL: ttl}
		ns := "ns.invalid."
		if len(t.zones) > 0 {
			ns = t.zones[0].soa.Ns
		}
		zz.soa = &dns.SOA{Hdr: hdr(apex, dns.TypeSOA, ttl), Ns: ns, Mbox: "hostmaster.invalid.", Serial: 1,
			Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl}
		zz.ns = []dns.RR{&dns.NS{Hdr: hdr(apex, dns.TypeNS, ttl), Ns: ns}}
		t.zones = append(t.zones, zz)
		t.add(zz.soa)
		t.add(zz.ns[0])
	}
	for addr, names := range v.Reverse {
		rev, err := dns.ReverseAddr(addr.String())
		if err != nil {
			continue
		}
		if t.zoneOf(rev) == nil {
			continue
		}
		for _, n := range names {
			ttl := uint32(crdt.DefaultDNSTTL / time.Second)
			if e := v.Names[n]; e != nil {
				ttl = uint32(e.TTL / time.Second)
			}
			t.add(&dns.PTR{Hdr: hdr(rev, dns.TypePTR, ttl), Ptr: dns.Fqdn(n)})
		}
	}
	slices.SortFunc(t.zones, func(a, b *zone) int { return len(b.apex) - len(a.apex) })
	// Empty non-terminals: every ancestor of a name, up to its zone apex,
	// exists.
	for name := range t.names {
		z := t.zoneOf(name)
		for p := parent(name); z != nil && p != "" && dns.IsSubDomain(z.apex, p) && p != z.apex; p = parent(p) {
			if t.names[p] == nil {
				t.names[p] = &rrset{}
			}
		}
	}
	for _, s := range t.names {
		if len(s.byType) > 0 {
			t.Names++
		}
	}
	t.fast = buildFast(t)
	return t, nil
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

func (t *Table) add(rr dns.RR) {
	name := strings.ToLower(rr.Header().Name)
	rr.Header().Name = name
	s := t.names[name]
	if s == nil {
		s = &rrset{byType: map[uint16][]dns.RR{}}
		t.names[name] = s
	}
	if s.byType == nil {
		s.byType = map[uint16][]dns.RR{}
	}
	for _, have := range s.byType[rr.Header().Rrtype] {
		if dns.IsDuplicate(have, rr) {
			return
		}
	}
	s.byType[rr.Header().Rrtype] = append(s.byType[rr.Header().Rrtype], rr)
}

// zoneOf returns the most specific zone containing name, or nil.
func (t *Table) zoneOf(name string) *zone {
	var best *zone
	for _, z := range t.zones {
		if dns.IsSubDomain(z.apex, name) && (best == nil || len(z.apex) > len(best.apex)) {
			best = z
		}
	}
	return best
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
