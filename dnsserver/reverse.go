package dnsserver

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/miekg/dns"
)

// Reverse names (in-addr.arpa, ip6.arpa) are not stored as names. A zone
// whose apex is a reverse name keeps the sorted addresses whose reverse
// names it holds, and a question's name is read back into an address, or
// into the prefix its labels spell: a whole address has the PTR records of
// the names that resolve to it, a prefix with an address below it is an
// empty non-terminal, anything else does not exist. Materialised, a host
// with a random interface ID under a /64 reverse zone would add 16 names of
// its own (the address's and 15 ancestors).

// reverseIndex is what a zone holds under in-addr.arpa and ip6.arpa.
type reverseIndex struct {
	covers []netip.Prefix // the addresses the apex's reverse names span
	// The addresses whose reverse names are in the zone, sorted: IPv6 as
	// two halves, IPv4 as a number (16 and 4 bytes where a netip.Addr
	// takes 24, and compared inline). The index's i-th address is v6[i],
	// then v4[i-len(v6)].
	v6 []addr6
	v4 []uint32
}

type addr6 struct{ hi, lo uint64 }

func (k addr6) less(o addr6) bool { return k.hi < o.hi || (k.hi == o.hi && k.lo < o.lo) }

func key6(a netip.Addr) addr6 {
	b := a.As16()
	return addr6{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func key4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// newReverseIndex is the index of a zone at apex, or nil if the apex is
// not a reverse name (nothing below it is).
func newReverseIndex(apex string) *reverseIndex {
	if apex == "arpa." {
		return &reverseIndex{covers: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}
	}
	p, ok := parseReverse([]byte(wireName(apex)))
	if !ok {
		return nil
	}
	return &reverseIndex{covers: []netip.Prefix{p}}
}

func (r *reverseIndex) covered(a netip.Addr) bool {
	return slices.ContainsFunc(r.covers, func(p netip.Prefix) bool { return p.Contains(a) })
}

// add adds an unmapped address; sort must follow.
func (r *reverseIndex) add(a netip.Addr) {
	if a.Is4() {
		r.v4 = append(r.v4, key4(a))
	} else {
		r.v6 = append(r.v6, key6(a))
	}
}

func (r *reverseIndex) sort() {
	slices.SortFunc(r.v6, func(a, b addr6) int { return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo)) })
	slices.Sort(r.v4)
	// An IPv4 address and its mapped form are one.
	r.v6, r.v4 = slices.Clip(slices.Compact(r.v6)), slices.Clip(slices.Compact(r.v4))
}

// len is the number of addresses.
func (r *reverseIndex) len() int { return len(r.v6) + len(r.v4) }

// addr is the i-th address.
func (r *reverseIndex) addr(i int) netip.Addr {
	if i < len(r.v6) {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], r.v6[i].hi)
		binary.BigEndian.PutUint64(b[8:], r.v6[i].lo)
		return netip.AddrFrom16(b)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], r.v4[i-len(r.v6)])
	return netip.AddrFrom4(b)
}

// find looks up the reverse name that spells p (masked): whether it is the
// name of the address at index i, or an empty non-terminal above some
// address.
func (r *reverseIndex) find(p netip.Prefix) (i int, addr, ent bool) {
	bits := p.Bits()
	if p.Addr().Is4() {
		k := key4(p.Addr())
		j, found := slices.BinarySearch(r.v4, k)
		i = len(r.v6) + j
		if bits == 32 {
			return i, found, false
		}
		return i, false, j < len(r.v4) && r.v4[j]>>(32-bits) == k>>(32-bits)
	}
	k := key6(p.Addr())
	lo, hi := 0, len(r.v6)
	for lo < hi {
		if m := int(uint(lo+hi) >> 1); r.v6[m].less(k) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(r.v6) {
		return lo, false, false
	}
	e := r.v6[lo]
	switch {
	case bits == 128:
		return lo, e == k, false
	case bits <= 64:
		return lo, false, e.hi>>(64-bits) == k.hi>>(64-bits)
	}
	return lo, false, e.hi == k.hi && e.lo>>(128-bits) == k.lo>>(128-bits)
}

// The wire forms of the reverse trees' roots.
const (
	ip6Arpa    = "\x03ip6\x04arpa\x00"
	inAddrArpa = "\x07in-addr\x04arpa\x00"
)

// nibble is the value of a lower-case hex digit, 0xff for other bytes.
var nibble = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// parseReverse reads a lower-case wire name under ip6.arpa (nibbles) or
// in-addr.arpa (octets) as the prefix its labels spell. A label that is
// not a lower-case nibble or a decimal octet as dns.ReverseAddr writes
// them, or too many of them, spells no address: ok is false.
func parseReverse(wire []byte) (p netip.Prefix, ok bool) {
	switch n := len(wire); {
	case n >= len(ip6Arpa) && string(wire[n-len(ip6Arpa):]) == ip6Arpa:
		labels := wire[:n-len(ip6Arpa)]
		nibbles := len(labels) / 2
		if len(labels)%2 != 0 || nibbles > 32 {
			return p, false
		}
		var b [16]byte
		for k := range nibbles {
			v := nibble[labels[2*k+1]]
			if labels[2*k] != 1 || v > 15 {
				return p, false
			}
			j := nibbles - 1 - k // the first label is the last nibble
			b[j/2] |= v << (4 * (1 - j%2))
		}
		return netip.PrefixFrom(netip.AddrFrom16(b), 4*nibbles), true
	case n >= len(inAddrArpa) && string(wire[n-len(inAddrArpa):]) == inAddrArpa:
		labels := wire[:n-len(inAddrArpa)]
		var octets [4]byte
		k := 0
		for i := 0; i < len(labels); k++ {
			l := int(labels[i])
			if k == 4 || l < 1 || l > 3 || i+1+l > len(labels) || (l > 1 && labels[i+1] == '0') {
				return p, false
			}
			v := 0
			for _, c := range labels[i+1 : i+1+l] {
				if c < '0' || c > '9' {
					return p, false
				}
				v = 10*v + int(c-'0')
			}
			if v > 255 {
				return p, false
			}
			octets[k] = byte(v)
			i += 1 + l
		}
		var b [4]byte
		for j := range k {
			b[j] = octets[k-1-j]
		}
		return netip.PrefixFrom(netip.AddrFrom4(b), 8*k), true
	}
	return p, false
}

// reverseAddr is the address whose reverse names the view's key a has, as
// dns.ReverseAddr names them: an IPv4-mapped address is named as IPv4; an
// address with a zone has no reverse name.
func reverseAddr(a netip.Addr) (netip.Addr, bool) {
	return a.Unmap(), a.IsValid() && a.Zone() == ""
}

// indexReverse puts every address of the view in the index of the most
// specific zone that holds its reverse name; t.zones are sorted, longest
// apex first.
func (t *Table) indexReverse() {
	var indexed []*zone
	for _, z := range t.zones {
		if z.rev = newReverseIndex(z.apex); z.rev != nil {
			indexed = append(indexed, z)
		}
	}
	if len(indexed) == 0 {
		return
	}
	for a := range t.view.Reverse {
		u, ok := reverseAddr(a)
		if !ok {
			continue
		}
		for _, z := range indexed {
			if z.rev.covered(u) {
				z.rev.add(u)
				break
			}
		}
	}
	for _, z := range indexed {
		z.rev.sort()
	}
}

// reverse looks up a name (lower case, fully qualified) in the reverse
// index of its zone: whether it exists there, and, if it is an address's
// name, its PTR records (not nil, if empty).
func (t *Table) reverse(name string) (ptrs []ptrTarget, exists bool) {
	if !strings.HasSuffix(name, ".arpa.") {
		return nil, false
	}
	z := t.zoneOf(name)
	if z == nil || z.rev == nil {
		return nil, false
	}
	var wire [256]byte
	n, err := dns.PackDomainName(name, wire[:], 0, nil, false)
	if err != nil {
		return nil, false
	}
	for i := range n {
		wire[i] = toLower[wire[i]]
	}
	p, ok := parseReverse(wire[:n])
	if !ok {
		return nil, false
	}
	i, addr, ent := z.rev.find(p)
	if !addr {
		return nil, ent
	}
	return t.ptrTargets(z.rev.addr(i)), true
}

// ptrTargets are the PTR records of address a's reverse name: the names
// that resolve to a (or to its IPv4-mapped form), with their TTLs.
func (t *Table) ptrTargets(a netip.Addr) []ptrTarget {
	names := t.view.Reverse[a]
	if a.Is4() {
		if mapped := t.view.Reverse[netip.AddrFrom16(a.As16())]; len(mapped) > 0 {
			names = append(slices.Clip(names), mapped...)
		}
	}
	out := make([]ptrTarget, 0, len(names))
	for _, n := range names {
		ttl := uint32(crdt.DefaultDNSTTL / time.Second)
		if e := t.view.Names[n]; e != nil {
			ttl = uint32(e.TTL / time.Second)
		}
		out = append(out, ptrTarget{name: dns.Fqdn(n), ttl: ttl})
	}
	return out
}
