package dnsserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/miekg/dns"
)

// DNSJSONLine is one line of dns.json. The first data-mesher wrote this
// file, and jfly/coredns-data-mesher reads it: one object a line, "hostname"
// without a trailing dot and "ips", which that plugin answers as AAAA
// records (it would turn an IPv4 address into a v4-mapped AAAA), so "ips"
// holds IPv6 addresses only and IPv4 addresses go under "ipv4". "ip" is
// the first of "ips", for readers of the first data-mesher's format.
type DNSJSONLine struct {
	Hostname string       `json:"hostname"`
	IP       string       `json:"ip,omitempty"`
	IPs      []netip.Addr `json:"ips"`
	IPv4     []netip.Addr `json:"ipv4,omitempty"`
}

// WriteDNSJSON writes dns.json: every name of the forward zones for which
// this server answers A or AAAA records, with the addresses it answers,
// one JSON object a line, sorted by name. That is the hosts' claims, the
// admin's A and AAAA records, the names whose CNAME leads (inside the
// zones) to addresses, and the NS name when the table has NSAddrs.
func (t *Table) WriteDNSJSON(w io.Writer) error {
	var names []string
	for name := range t.forwardNames() {
		if z := t.zoneOf(name); z != nil && !z.reverse {
			if s := t.lookup(name); s != nil && !s.empty() {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	enc := json.NewEncoder(w)
	for _, name := range names {
		line := DNSJSONLine{Hostname: name[:len(name)-1], IPs: t.addrs(name, dns.TypeAAAA), IPv4: t.addrs(name, dns.TypeA)}
		if len(line.IPs) == 0 && len(line.IPv4) == 0 {
			continue
		}
		if line.IPs == nil {
			line.IPs = []netip.Addr{}
		} else {
			line.IP = line.IPs[0].String()
		}
		if err := enc.Encode(line); err != nil {
			return fmt.Errorf("writing dns.json: %w", err)
		}
	}
	return nil
}

// addrs are the addresses the server answers for name (lower case, fully
// qualified) and qtype A or AAAA, following CNAMEs as the Handler does,
// sorted.
func (t *Table) addrs(name string, qtype uint16) []netip.Addr {
	m := new(dns.Msg)
	if t.resolve(m, t.zoneOf(name), name, qtype) != ResultAnswer {
		return nil
	}
	var out []netip.Addr
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
				out = append(out, a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok {
				out = append(out, a)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// WriteDNSJSON writes the dns.json of a view: what a table built from v
// without options answers (no NS addresses). The agent, which has built
// the table already, should call Table.WriteDNSJSON instead.
func WriteDNSJSON(w io.Writer, v *crdt.ResolvedView) error {
	t, err := NewTable(v, TableOptions{ReversePrefixes: []netip.Prefix{}})
	if err != nil {
		return fmt.Errorf("writing dns.json: %w", err)
	}
	return t.WriteDNSJSON(w)
}
