package dnsserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"

	"github.com/data-mesher/data-mesher/crdt"
)

// dnsJSONLine is one line of dns.json, the format of the first data-mesher
// and of jfly/coredns-data-mesher.
type dnsJSONLine struct {
	Hostname string       `json:"hostname"`
	IP       netip.Addr   `json:"ip"`
	IPs      []netip.Addr `json:"ips"`
}

// WriteDNSJSON writes the names of v that have addresses, one JSON object
// a line, sorted by name: {"hostname": "mors.nether", "ip": "fd…", "ips": […]}.
// "ip" is the first address (IPv6 before IPv4, as the mesh is IPv6 first).
func WriteDNSJSON(w io.Writer, v *crdt.ResolvedView) error {
	names := make([]string, 0, len(v.Names))
	for n, e := range v.Names {
		if len(e.Addrs) > 0 {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	enc := json.NewEncoder(w)
	for _, n := range names {
		addrs := slices.Clone(v.Names[n].Addrs)
		slices.SortStableFunc(addrs, func(a, b netip.Addr) int {
			if a.Is6() != b.Is6() {
				if a.Is6() {
					return -1
				}
				return 1
			}
			return a.Compare(b)
		})
		if err := enc.Encode(dnsJSONLine{Hostname: n, IP: addrs[0], IPs: addrs}); err != nil {
			return fmt.Errorf("writing dns.json: %w", err)
		}
	}
	return nil
}
