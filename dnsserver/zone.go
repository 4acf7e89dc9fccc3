package dnsserver

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// ErrNoZone is returned by WriteZone for a name that is not the apex of a
// zone the table answers for.
var ErrNoZone = errors.New("not a zone of this server")

// Zones lists the apexes of the zones the table answers for, forward and
// reverse, lower case with a trailing dot, in canonical order.
func (t *Table) Zones() []string {
	out := make([]string, 0, len(t.zones))
	for _, z := range t.zones {
		out = append(out, z.apex)
	}
	slices.SortFunc(out, canonicalCompare)
	return out
}

// WriteZone writes the zone at apex as a master file (RFC 1035 §5.1): the
// records this server answers with, one per line with absolute names and
// explicit TTLs, the SOA first, then the names in canonical order (RFC 4034
// §6.1). Nothing transfers the zones (every node answers from its own
// view); this is for people and for checkers such as named-checkzone.
// Names of a more specific zone of the table are left to that zone.
func (t *Table) WriteZone(w io.Writer, apex string) error {
	z := t.apexes[strings.ToLower(dns.Fqdn(apex))]
	if z == nil {
		return fmt.Errorf("writing zone %s: %w", apex, ErrNoZone)
	}
	var names []string
	for name := range t.names {
		if s := t.lookup(name); s != nil && !s.empty() && t.zoneOf(name) == z {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, canonicalCompare)
	var b strings.Builder
	fmt.Fprintf(&b, "; zone %s as this server answers it\n%s\n", z.apex, z.soa)
	for _, name := range names {
		s := t.lookup(name)
		for _, qt := range s.types() {
			if qt == dns.TypeSOA && name == z.apex {
				continue // first, above
			}
			for _, rr := range s.get(qt) {
				b.WriteString(rr.String())
				b.WriteByte('\n')
			}
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing zone %s: %w", apex, err)
	}
	return nil
}

// types lists the record types the name has, by type number.
func (s *rrset) types() []uint16 {
	var out []uint16
	for _, a := range s.addrs {
		if a.Is4() {
			out = append(out, dns.TypeA)
		} else {
			out = append(out, dns.TypeAAAA)
		}
	}
	if len(s.ptrs) > 0 {
		out = append(out, dns.TypePTR)
	}
	for qt := range s.other {
		out = append(out, qt)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// canonicalCompare orders names as RFC 4034 §6.1 does: by their labels
// from the root, case-insensitively.
func canonicalCompare(a, b string) int {
	la, lb := dns.SplitDomainName(strings.ToLower(a)), dns.SplitDomainName(strings.ToLower(b))
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := strings.Compare(la[i], lb[j]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}
