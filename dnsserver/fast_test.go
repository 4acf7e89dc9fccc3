package dnsserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// fastReply runs the fast path on a packet: the reply bytes, or nil when
// the fast path passes the query on.
func fastReply(h *Handler, pkt []byte) []byte {
	var lower [256]byte
	var q query
	if !parseQuery(pkt, &lower, &q) {
		return nil
	}
	tab := h.table.Load()
	t := tab.fast.lookup(&q)
	if t == nil || (t == tab.fast.refused && len(h.forwarders) > 0) {
		return nil
	}
	out := make([]byte, maxUDPSize)
	n := t.build(pkt, &q, out)
	if n == 0 {
		return nil
	}
	return out[:n]
}

// slowReply is what the Handler answers over UDP.
func slowReply(h *Handler, pkt []byte) ([]byte, error) {
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		return nil, err
	}
	b, _ := h.reply(req, true)
	return b, nil
}

// sameReply checks that the fast path sent the Handler's bytes.
func sameReply(fast, slow []byte) error {
	if bytes.Equal(fast, slow) {
		return nil
	}
	ma, mb := new(dns.Msg), new(dns.Msg)
	if err := ma.Unpack(fast); err != nil {
		return fmt.Errorf("fast reply does not unpack: %v", err)
	}
	if err := mb.Unpack(slow); err != nil {
		return fmt.Errorf("slow reply does not unpack: %v", err)
	}
	return fmt.Errorf("fast (%d bytes, %x):\n%s\nslow (%d bytes, %x):\n%s", len(fast), fast, ma, len(slow), slow, mb)
}

func packQuery(name string, qtype uint16, mod func(*dns.Msg)) []byte {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.Id = 0xbeef
	if mod != nil {
		mod(q)
	}
	b, err := q.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

func TestFastPathMatchesHandler(t *testing.T) {
	h := newTestHandler(t)
	names := []string{"mors.nether.", "MORS.Nether.", "styx.nether.", "nobody.nether.", "_tcp.mors.nether.",
		"_ssh._tcp.mors.nether.", "www.nether.", "gone.nether.", "ext.nether.", "nether.", "NETHER.", "lethe.clan.",
		"deep.below.nobody.clan.", "example.org.", "org.", ".", "many.nether.",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", "1.0.0.10.in-addr.arpa.", "8.8.8.8.in-addr.arpa.",
		"ns.nether.", "NS.Nether.", "x.ns.nether.", "ns.clan.", "0.0.10.in-addr.arpa.", "A.B.C.D.NETHER.", "_SSH._tcp.MORS.nether."}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeHTTPS, dns.TypeTXT, dns.TypeSRV, dns.TypeCNAME, dns.TypeSOA,
		dns.TypeNS, dns.TypePTR, dns.TypeMX, dns.TypeCAA, dns.TypeNULL, 999}
	mods := map[string]func(*dns.Msg){
		"plain":   nil,
		"rd":      func(q *dns.Msg) { q.RecursionDesired = true },
		"cd":      func(q *dns.Msg) { q.CheckingDisabled = true },
		"edns":    func(q *dns.Msg) { q.SetEdns0(1232, false) },
		"edns-do": func(q *dns.Msg) { q.SetEdns0(4096, true) },
		"edns-small": func(q *dns.Msg) {
			q.SetEdns0(600, false)
		},
		"cookie": func(q *dns.Msg) {
			q.SetEdns0(1232, false)
			q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
		},
	}
	fast := 0
	for _, name := range names {
		for _, qt := range types {
			for label, mod := range mods {
				pkt := packQuery(name, qt, mod)
				slow, err := slowReply(h, pkt)
				if err != nil {
					t.Fatal(err)
				}
				f := fastReply(h, pkt)
				if f == nil {
					continue
				}
				fast++
				if err := sameReply(f, slow); err != nil {
					t.Fatalf("%s %s (%s): %v", name, dns.TypeToString[qt], label, err)
				}
				if !bytes.Equal(f[:2], pkt[:2]) {
					t.Fatalf("ID not copied")
				}
			}
		}
	}
	if fast < len(names)*len(types)*len(mods)*3/4 {
		t.Fatalf("only %d queries took the fast path", fast)
	}
	// What must not take the fast path: it would not say the same.
	for label, pkt := range map[string][]byte{
		"ANY":               packQuery("mors.nether.", dns.TypeANY, nil),
		"AXFR":              packQuery("nether.", dns.TypeAXFR, nil),
		"EDNS version 1":    packQuery("mors.nether.", dns.TypeAAAA, func(q *dns.Msg) { q.SetEdns0(1232, false); q.IsEdns0().SetVersion(1) }),
		"truncated at 512":  packQuery("many.nether.", dns.TypeAAAA, nil),
		"CHAOS":             packQuery("version.bind.", dns.TypeTXT, func(q *dns.Msg) { q.Question[0].Qclass = dns.ClassCHAOS }),
		"NOTIFY":            packQuery("nether.", dns.TypeSOA, func(q *dns.Msg) { q.Opcode = dns.OpcodeNotify }),
		"response":          packQuery("nether.", dns.TypeSOA, func(q *dns.Msg) { q.Response = true }),
		"CNAME chase of MX": nil,
	} {
		if pkt == nil {
			continue
		}
		if f := fastReply(h, pkt); f != nil {
			t.Errorf("%s took the fast path", label)
		}
	}
}

// With forwarders, names outside the zones go to the Handler.
func TestFastPathDefersToForwarding(t *testing.T) {
	h := newTestHandler(t, "192.0.2.53:53")
	if fastReply(h, packQuery("example.org.", dns.TypeA, nil)) != nil {
		t.Fatal("the fast path refused a name that is forwarded")
	}
	if fastReply(h, packQuery("mors.nether.", dns.TypeAAAA, nil)) == nil {
		t.Fatal("mesh names should still be fast")
	}
}

// FuzzQuery: arbitrary packets through both paths. Neither may panic, and
// whenever the fast path answers, it says what the Handler says.
func FuzzQuery(f *testing.F) {
	for _, p := range [][]byte{
		packQuery("mors.nether.", dns.TypeAAAA, nil),
		packQuery("MoRs.nether.", dns.TypeA, func(q *dns.Msg) { q.SetEdns0(1232, true) }),
		packQuery("nobody.nether.", dns.TypeTXT, nil),
		packQuery("example.org.", dns.TypeA, nil),
		packQuery("_tcp.mors.nether.", dns.TypeSRV, nil),
	} {
		f.Add(p)
	}
	h := newTestHandler(&testing.T{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		fr := fastReply(h, pkt)
		slow, err := slowReply(h, pkt)
		if fr == nil {
			return
		}
		if err != nil {
			t.Fatalf("the fast path answered a packet that does not parse: %v", err)
		}
		if err := sameReply(fr, slow); err != nil {
			t.Fatal(err)
		}
	})
}

// dns.json lists every name the server answers A or AAAA for, with the
// addresses it answers (claims, the admin's records, names whose CNAME
// leads to addresses, the NS name), IPv6 alone under "ips".
func TestWriteDNSJSON(t *testing.T) {
	h := newTestHandler(t)
	var b bytes.Buffer
	if err := h.Table().WriteDNSJSON(&b); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var order []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var line DNSJSONLine
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		got[line.Hostname] = l
		order = append(order, line.Hostname)
		for _, a := range line.IPs {
			if !a.Is6() || a.Is4In6() {
				t.Errorf("%s: an IPv4 address in ips", l)
			}
		}
	}
	if !slices.IsSorted(order) {
		t.Errorf("not sorted by name: %q", order)
	}
	for name, want := range map[string]string{
		"lethe.clan":     `{"hostname":"lethe.clan","ip":"fd00::3","ips":["fd00::3"]}`,
		"mors.nether":    `{"hostname":"mors.nether","ip":"fd00::1","ips":["fd00::1"],"ipv4":["10.0.0.1"]}`,
		"www.nether":     `{"hostname":"www.nether","ip":"fd00::1","ips":["fd00::1"],"ipv4":["10.0.0.1"]}`,
		"printer.nether": `{"hostname":"printer.nether","ip":"fd00::99","ips":["fd00::99"],"ipv4":["10.0.0.99"]}`,
		"legacy.nether":  `{"hostname":"legacy.nether","ips":[],"ipv4":["10.0.0.7"]}`,
		"ns.nether":      `{"hostname":"ns.nether","ip":"fd00::53","ips":["fd00::53"],"ipv4":["10.0.0.53"]}`,
	} {
		if got[name] != want {
			t.Errorf("%s: got %s, want %s", name, got[name], want)
		}
	}
	// Both ways: every name the handler answers with addresses is there,
	// with those addresses, and nothing else is.
	for name := range h.Table().names {
		if z := h.Table().zoneOf(name); z == nil || z.reverse {
			continue
		}
		var want DNSJSONLine
		for _, qt := range []uint16{dns.TypeAAAA, dns.TypeA} {
			q := new(dns.Msg)
			q.SetQuestion(name, qt)
			w := &recorder{tcp: true} // whole answers
			h.ServeDNS(w, q)
			for _, rr := range w.msg.Answer {
				switch rr := rr.(type) {
				case *dns.AAAA:
					want.IPs = append(want.IPs, netip.MustParseAddr(rr.AAAA.String()))
				case *dns.A:
					want.IPv4 = append(want.IPv4, netip.MustParseAddr(rr.A.String()))
				}
			}
		}
		host := strings.TrimSuffix(name, ".")
		l, listed := got[host]
		if len(want.IPs)+len(want.IPv4) == 0 {
			if listed {
				t.Errorf("%s is listed but has no address: %s", host, l)
			}
			continue
		}
		var line DNSJSONLine
		_ = json.Unmarshal([]byte(l), &line)
		slices.SortFunc(want.IPs, netip.Addr.Compare)
		slices.SortFunc(want.IPv4, netip.Addr.Compare)
		if !slices.Equal(line.IPs, want.IPs) || !slices.Equal(line.IPv4, want.IPv4) {
			t.Errorf("%s: dns.json %s, the server answers %v %v", host, l, want.IPs, want.IPv4)
		}
	}
	for _, absent := range []string{"gone.nether", "ext.nether", "_ssh._tcp.mors.nether", "nether"} {
		if l, ok := got[absent]; ok {
			t.Errorf("%s has no address but is listed: %s", absent, l)
		}
	}
	// From a view alone (what the agent calls today): the same, without
	// the NS name.
	var fromView bytes.Buffer
	if err := WriteDNSJSON(&fromView, testView()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fromView.String(), got["printer.nether"]) || strings.Contains(fromView.String(), "ns.nether") {
		t.Errorf("from the view:\n%s", fromView.String())
	}
}

// A table built with DeferFast answers every query through the Handler,
// with the same replies; WithFast, or the next table of the same names,
// packs the fast path.
func TestDeferredFastPath(t *testing.T) {
	opts := TableOptions{ReversePrefixes: []netip.Prefix{netip.MustParsePrefix("fd00::/64"), netip.MustParsePrefix("10.0.0.0/24")},
		NSAddrs: []netip.Addr{netip.MustParseAddr("fd00::53")}}
	full := must(NewTable(testView(), opts))
	lazy := must(NewTable(testView(), TableOptions{ReversePrefixes: opts.ReversePrefixes, NSAddrs: opts.NSAddrs, DeferFast: true}))
	hFull, hLazy := NewHandler(nil), NewHandler(nil)
	hFull.SetTable(full)
	hLazy.SetTable(lazy)
	for _, name := range []string{"mors.nether.", "styx.nether.", "nobody.nether.", "www.nether.", "nether.", "ns.nether.",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", "example.org."} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeSOA, dns.TypePTR} {
			pkt := packQuery(name, qt, nil)
			if fastReply(hLazy, pkt) != nil {
				t.Fatalf("%s %s: a deferred table answered on the fast path", name, dns.TypeToString[qt])
			}
			want := must(slowReply(hFull, pkt))
			if err := sameReply(must(slowReply(hLazy, pkt)), want); err != nil {
				t.Fatalf("%s %s: %v", name, dns.TypeToString[qt], err)
			}
		}
	}
	for what, tab := range map[string]*Table{
		"WithFast":           lazy.WithFast(),
		"the next same view": must(NewTable(testView(), TableOptions{ReversePrefixes: opts.ReversePrefixes, NSAddrs: opts.NSAddrs, Previous: lazy})),
	} {
		if tab == lazy || len(tab.fast.names) != len(full.fast.names) {
			t.Fatalf("%s: %d packed names, want %d", what, len(tab.fast.names), len(full.fast.names))
		}
	}
	if full.WithFast() != full {
		t.Fatal("WithFast rebuilt a complete table")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
