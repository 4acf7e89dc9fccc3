package dnsserver

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/miekg/dns"
)

// peerView is the zone NSD 4.6 and Knot DNS 3.2 served for the golden
// replies below:
//
//	nether. 60 SOA ns.nether. hostmaster.nether. 42 3600 600 86400 60
//	nether. 60 NS ns.nether.
//	ns 60 A 10.0.0.9 / AAAA fd00::9
//	mors 60 A 10.0.0.1 / AAAA fd00::1 / TXT "hello"
//	www 60 CNAME mors.nether.
//	_ssh._tcp.mors 60 SRV 0 5 22 mors.nether.
func peerView() *crdt.ResolvedView {
	a := netip.MustParseAddr
	return &crdt.ResolvedView{
		Zones: []crdt.Zone{{Domain: "nether", TTL: time.Minute, Serial: 42}},
		Names: map[string]*crdt.Name{
			"mors.nether": {FQDN: "mors.nether", Addrs: []netip.Addr{a("fd00::1"), a("10.0.0.1")}, TTL: time.Minute,
				Extra: []crdt.ExtraRecord{{Type: crdt.TypeTXT, TTL: time.Minute, Data: "hello"}}},
			"www.nether": {FQDN: "www.nether", TTL: time.Minute, Extra: []crdt.ExtraRecord{{Type: crdt.TypeCNAME, TTL: time.Minute, Data: "mors.nether."}}},
			"_ssh._tcp.mors.nether": {FQDN: "_ssh._tcp.mors.nether", TTL: time.Minute,
				Extra: []crdt.ExtraRecord{{Type: crdt.TypeSRV, TTL: time.Minute, Data: "0 5 22 mors.nether."}}},
		},
		Reverse: map[netip.Addr][]string{},
	}
}

func peerHandler(t *testing.T) *Handler {
	t.Helper()
	tab, err := NewTable(peerView(), TableOptions{ReversePrefixes: []netip.Prefix{},
		NSAddrs: []netip.Addr{netip.MustParseAddr("fd00::9"), netip.MustParseAddr("10.0.0.9")}})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(nil)
	h.SetTable(tab)
	return h
}

// Both paths send, byte for byte, what NSD 4.6 (minimal-responses: yes)
// and Knot DNS 3.2 sent for the same questions (query ID 0x1234, RD clear):
// names compressed against the question, whose case shows through; the
// NS answer with its glue, A before AAAA; the DO bit echoed; REFUSED with
// the extended error "Not Authoritative" (RFC 8914) when the query has EDNS.
// The SRV reply is NSD's: Knot adds the target's addresses.
func TestRepliesEqualNSDAndKnot(t *testing.T) {
	h := peerHandler(t)
	for _, tc := range []struct{ q, want string }{
		{"mors.nether. AAAA", "123484000001000100000000046d6f7273066e657468657200001c0001c00c001c00010000003c0010fd000000000000000000000000000001"},
		{"MoRs.NETHER. AAAA", "123484000001000100000000044d6f5273064e455448455200001c0001c00c001c00010000003c0010fd000000000000000000000000000001"},
		{"mors.nether. A", "123484000001000100000000046d6f7273066e65746865720000010001c00c000100010000003c00040a000001"},
		{"mors.nether. TXT", "123484000001000100000000046d6f7273066e65746865720000100001c00c001000010000003c00060568656c6c6f"},
		{"nobody.nether. AAAA", "123484030001000000010000066e6f626f6479066e657468657200001c0001c013000600010000003c0026026e73c0130a686f73746d6173746572c0130000002a00000e1000000258000151800000003c"},
		{"a.b.nobody.NETHER. A", "12348403000100000001000001610162066e6f626f6479064e45544845520000010001c017000600010000003c0026026e73c0170a686f73746d6173746572c0170000002a00000e1000000258000151800000003c"},
		{"mors.nether. MX", "123484000001000000010000046d6f7273066e657468657200000f0001c011000600010000003c0026026e73c0110a686f73746d6173746572c0110000002a00000e1000000258000151800000003c"},
		{"nether. NS", "123484000001000100000002066e65746865720000020001c00c000200010000003c0005026e73c00cc024000100010000003c00040a000009c024001c00010000003c0010fd000000000000000000000000000009"},
		{"NETHER. NS", "123484000001000100000002064e45544845520000020001c00c000200010000003c0005026e73c00cc024000100010000003c00040a000009c024001c00010000003c0010fd000000000000000000000000000009"},
		{"nether. SOA", "123484000001000100000000066e65746865720000060001c00c000600010000003c0026026e73c00c0a686f73746d6173746572c00c0000002a00000e1000000258000151800000003c"},
		{"nether. AAAA", "123484000001000000010000066e657468657200001c0001c00c000600010000003c0026026e73c00c0a686f73746d6173746572c00c0000002a00000e1000000258000151800000003c"},
		{"www.nether. AAAA", "12348400000100020000000003777777066e657468657200001c0001c00c000500010000003c0007046d6f7273c010c028001c00010000003c0010fd000000000000000000000000000001"},
		{"WWW.nether. CNAME", "12348400000100010000000003575757066e65746865720000050001c00c000500010000003c0007046d6f7273c010"},
		{"mors.nether. AAAA do", "123484000001000100000001046d6f7273066e657468657200001c0001c00c001c00010000003c0010fd00000000000000000000000000000100002904d0000080000000"},
		{"mors.nether. AAAA edns", "123484000001000100000001046d6f7273066e657468657200001c0001c00c001c00010000003c0010fd00000000000000000000000000000100002904d0000000000000"},
		{"nobody.nether. AAAA do", "123484030001000000010001066e6f626f6479066e657468657200001c0001c013000600010000003c0026026e73c0130a686f73746d6173746572c0130000002a00000e1000000258000151800000003c00002904d0000080000000"},
		{"example.org. A", "123480050001000000000000076578616d706c65036f72670000010001"},
		{"example.org. A edns", "123480050001000000000001076578616d706c65036f7267000001000100002904d0000000000006000f00020014"},
		{"example.org. A do", "123480050001000000000001076578616d706c65036f7267000001000100002904d0000080000006000f00020014"},
		{"1.0.0.10.in-addr.arpa. PTR edns", "12348005000100000000000101310130013002313007696e2d61646472046172706100000c000100002904d0000000000006000f00020014"},
		{"ns.nether. AAAA", "123484000001000100000000026e73066e657468657200001c0001c00c001c00010000003c0010fd000000000000000000000000000009"},
		{"ns.nether. A", "123484000001000100000000026e73066e65746865720000010001c00c000100010000003c00040a000009"},
		{"_tcp.mors.nether. A", "123484000001000000010000045f746370046d6f7273066e65746865720000010001c016000600010000003c0026026e73c0160a686f73746d6173746572c0160000002a00000e1000000258000151800000003c"},
		{"_ssh._tcp.mors.nether. SRV", "123484000001000100000000045f737368045f746370046d6f7273066e65746865720000210001c00c002100010000003c0013000000050016046d6f7273066e657468657200"},
	} {
		f := strings.Fields(tc.q)
		pkt := packQuery(f[0], dns.StringToType[f[1]], func(q *dns.Msg) {
			q.Id, q.RecursionDesired = 0x1234, false
			if len(f) > 2 {
				q.SetEdns0(1232, f[2] == "do")
			}
		})
		want, _ := hex.DecodeString(tc.want)
		slow, err := slowReply(h, pkt)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(slow, want) {
			t.Errorf("%s: the handler sends %d bytes, the peers %d:\n ours  %x\n peers %x", tc.q, len(slow), len(want), slow, want)
		}
		if fast := fastReply(h, pkt); fast == nil {
			t.Errorf("%s: not on the fast path", tc.q)
		} else if !bytes.Equal(fast, want) {
			t.Errorf("%s: the fast path sends %d bytes, the peers %d:\n ours  %x\n peers %x", tc.q, len(fast), len(want), fast, want)
		}
	}
}

// RFC 3225 §3: the DO bit of the query is copied into the reply, on both
// paths and for every kind of reply.
func TestDOBitEchoed(t *testing.T) {
	h := newTestHandler(t)
	for _, name := range []string{"mors.nether.", "nobody.nether.", "styx.nether.", "example.org.", "www.nether."} {
		for _, do := range []bool{true, false} {
			pkt := packQuery(name, dns.TypeAAAA, func(q *dns.Msg) { q.SetEdns0(1232, do) })
			replies := map[string][]byte{"fast path": fastReply(h, pkt)}
			replies["handler"], _ = slowReply(h, pkt)
			for path, b := range replies {
				if b == nil {
					continue
				}
				m := new(dns.Msg)
				if err := m.Unpack(b); err != nil {
					t.Fatal(err)
				}
				if o := m.IsEdns0(); o == nil || o.Do() != do {
					t.Errorf("%s, DO %v, %s: reply OPT %v", name, do, path, o)
				}
			}
		}
	}
	// A version the server does not know: BADVERS, DO still echoed.
	m := ask(h, "mors.nether.", dns.TypeAAAA, func(q *dns.Msg) { q.SetEdns0(1232, true); q.IsEdns0().SetVersion(1) })
	if m.Rcode != dns.RcodeBadVers || !m.IsEdns0().Do() {
		t.Errorf("BADVERS: rcode %s, OPT %v", dns.RcodeToString[m.Rcode], m.IsEdns0())
	}
}

// The NS name answers with the addresses the table was given, and NS
// answers carry them as glue; a host that claimed the name keeps it.
func TestNSNameHasAddresses(t *testing.T) {
	h := newTestHandler(t)
	if got := answers(ask(h, "ns.nether.", dns.TypeAAAA)); strings.Join(got, "|") != "AAAA fd00::53" {
		t.Errorf("ns.nether. AAAA: %q", got)
	}
	if got := answers(ask(h, "ns.nether.", dns.TypeA)); strings.Join(got, "|") != "A 10.0.0.53" {
		t.Errorf("ns.nether. A: %q", got)
	}
	if got := answers(ask(h, "ns.clan.", dns.TypeAAAA)); strings.Join(got, "|") != "AAAA fd00::53" {
		t.Errorf("ns.clan. AAAA: %q", got)
	}
	m := ask(h, "nether.", dns.TypeNS)
	var glue []string
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			glue = append(glue, rr.String())
		}
	}
	if strings.Join(glue, "|") != "ns.nether.\t60\tIN\tA\t10.0.0.53|ns.nether.\t60\tIN\tAAAA\tfd00::53" {
		t.Errorf("glue of the NS answer: %q", glue)
	}
	// Someone holds ns.nether: its records stand.
	v := testView()
	v.Names["ns.nether"] = &crdt.Name{FQDN: "ns.nether", TTL: time.Minute, Addrs: []netip.Addr{netip.MustParseAddr("fd00::77")}}
	tab, err := NewTable(v, TableOptions{NSAddrs: []netip.Addr{netip.MustParseAddr("fd00::53")}})
	if err != nil {
		t.Fatal(err)
	}
	h.SetTable(tab)
	if got := answers(ask(h, "ns.nether.", dns.TypeAAAA)); strings.Join(got, "|") != "AAAA fd00::77" {
		t.Errorf("a claimed ns.nether.: %q", got)
	}
	// New addresses make a new table, even from an unchanged view.
	tab2, err := NewTable(v, TableOptions{NSAddrs: []netip.Addr{netip.MustParseAddr("fd00::54")}, Previous: tab})
	if err != nil {
		t.Fatal(err)
	}
	h.SetTable(tab2)
	if tab2 == tab || len(ask(h, "nether.", dns.TypeNS).Extra) != 1 {
		t.Errorf("the table did not take the new NS addresses")
	}
}

// The reverse zones' SOA names the same server, mailbox, TTL and timers as
// the primary zone's (the best priority), with the highest serial.
func TestReverseSOAMatchesForward(t *testing.T) {
	h := newTestHandler(t)
	fwd := ask(h, "nether.", dns.TypeSOA).Answer[0].(*dns.SOA)
	for _, apex := range []string{"0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", "0.0.10.in-addr.arpa."} {
		m := ask(h, apex, dns.TypeSOA)
		if len(m.Answer) != 1 {
			t.Fatalf("%s SOA: %v", apex, m)
		}
		rev := m.Answer[0].(*dns.SOA)
		if rev.Ns != fwd.Ns || rev.Mbox != fwd.Mbox || rev.Serial != 42 || rev.Refresh != fwd.Refresh || rev.Retry != fwd.Retry ||
			rev.Expire != fwd.Expire || rev.Minttl != fwd.Minttl || rev.Hdr.Ttl != fwd.Hdr.Ttl {
			t.Errorf("reverse SOA %v\nforward SOA %v", rev, fwd)
		}
		if ns := answers(ask(h, apex, dns.TypeNS)); strings.Join(ns, "|") != "NS "+fwd.Ns {
			t.Errorf("%s NS: %q", apex, ns)
		}
	}
}

// Every zone the table holds, written out, passes BIND's named-checkzone
// (Debian bind9-utils; scripts/test installs it).
func TestZonesPassNamedCheckzone(t *testing.T) {
	checkzone, err := exec.LookPath("named-checkzone")
	if err != nil {
		t.Skip("named-checkzone is not installed (Debian bind9-utils)")
	}
	h := newTestHandler(t)
	dir := t.TempDir()
	zones := h.Table().Zones()
	if len(zones) != 4 {
		t.Fatalf("zones %q, want nether, clan and two reverse zones", zones)
	}
	for _, apex := range zones {
		var b bytes.Buffer
		if err := h.Table().WriteZone(&b, apex); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, apex+"zone")
		if err := writeFile(file, b.Bytes()); err != nil {
			t.Fatal(err)
		}
		// -i local: the reverse zones' NS is in a forward zone, which its
		// own check covers; named-checkzone would look it up in the DNS.
		out, err := exec.Command(checkzone, "-i", "local", "-k", "fail", "-n", "fail", "-m", "fail", "-M", "fail", "-S", "fail",
			apex, file).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Errorf("named-checkzone %s: %v\n%s\nzone:\n%s", apex, err, out, b.String())
		}
	}
}
