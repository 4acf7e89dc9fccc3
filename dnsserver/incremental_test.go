package dnsserver

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/miekg/dns"
)

// A table built from the previous one answers exactly like a table built
// from scratch, through a sequence of changes; an unchanged view costs
// nothing.
func TestIncrementalTableMatchesFresh(t *testing.T) {
	opts := TableOptions{ReversePrefixes: []netip.Prefix{netip.MustParsePrefix("fd00::/64"), netip.MustParsePrefix("10.0.0.0/24")}}
	v := testView()
	prev, err := NewTable(v, opts)
	if err != nil {
		t.Fatal(err)
	}
	same, _ := NewTable(testView(), TableOptions{ReversePrefixes: opts.ReversePrefixes, Previous: prev})
	if same != prev {
		t.Fatal("an unchanged view built a new table")
	}
	steps := []func(v *crdt.ResolvedView){
		func(v *crdt.ResolvedView) {
			v.Names["styx.nether"].Addrs = []netip.Addr{netip.MustParseAddr("fd00::22")}
		},
		func(v *crdt.ResolvedView) {
			v.Names["new.nether"] = &crdt.Name{FQDN: "new.nether", TTL: time.Minute, Addrs: []netip.Addr{netip.MustParseAddr("fd00::5")}}
			v.Reverse[netip.MustParseAddr("fd00::5")] = []string{"new.nether"}
		},
		func(v *crdt.ResolvedView) {
			delete(v.Names, "lethe.clan")
			delete(v.Reverse, netip.MustParseAddr("fd00::3"))
		},
		func(v *crdt.ResolvedView) {
			v.Names["mors.nether"].Addrs = []netip.Addr{netip.MustParseAddr("fd00::1")}
		}, // www → mors changes too
		func(v *crdt.ResolvedView) { v.Names["mors.nether"].TTL = 5 * time.Minute },
		func(v *crdt.ResolvedView) { v.Zones[0].Serial++ }, // a new SOA: start over
		func(v *crdt.ResolvedView) {
			v.Names["a.b.c.nether"] = &crdt.Name{FQDN: "a.b.c.nether", TTL: time.Minute, Addrs: []netip.Addr{netip.MustParseAddr("fd00::7")}}
		},
	}
	names := []string{"mors.nether.", "styx.nether.", "www.nether.", "new.nether.", "lethe.clan.", "b.c.nether.", "c.nether.",
		"a.b.c.nether.", "nobody.nether.", "nether.", "clan.", "gone.nether.", "_tcp.mors.nether.",
		"2.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
		"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
		"3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."}
	for i, step := range steps {
		v = cloneView(v) // views are immutable once given to a table
		step(v)
		inc, err := NewTable(v, TableOptions{ReversePrefixes: opts.ReversePrefixes, Previous: prev})
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := NewTable(v, opts)
		if err != nil {
			t.Fatal(err)
		}
		hi, hf := NewHandler(nil), NewHandler(nil)
		hi.SetTable(inc)
		hf.SetTable(fresh)
		for _, n := range names {
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypePTR, dns.TypeTXT, dns.TypeMX, dns.TypeSOA} {
				pkt := packQuery(n, qt, nil)
				a, b := fastReply(hi, pkt), fastReply(hf, pkt)
				if !bytes.Equal(a, b) {
					t.Fatalf("step %d, %s %s: incremental and fresh tables differ", i, n, dns.TypeToString[qt])
				}
			}
		}
		prev = inc
	}
}

func cloneView(v *crdt.ResolvedView) *crdt.ResolvedView {
	c := &crdt.ResolvedView{Zones: append([]crdt.Zone(nil), v.Zones...), Names: map[string]*crdt.Name{}, Reverse: map[netip.Addr][]string{}}
	for k, n := range v.Names {
		cp := *n
		cp.Addrs = append([]netip.Addr(nil), n.Addrs...)
		cp.Extra = append([]crdt.ExtraRecord(nil), n.Extra...)
		c.Names[k] = &cp
	}
	for k, r := range v.Reverse {
		c.Reverse[k] = append([]string(nil), r...)
	}
	return c
}
