package dnsserver

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps the reply (no socket).
type recorder struct {
	msg *dns.Msg
	raw []byte
	tcp bool
}

func (r *recorder) LocalAddr() net.Addr { return &net.UDPAddr{} }
func (r *recorder) RemoteAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.ParseIP("fd00::9"), Port: 4242}
	}
	return &net.UDPAddr{IP: net.ParseIP("fd00::9"), Port: 4242}
}
func (r *recorder) WriteMsg(m *dns.Msg) error { r.msg = m; return nil }
func (r *recorder) Write(b []byte) (int, error) {
	r.raw = append([]byte(nil), b...)
	r.msg = new(dns.Msg)
	return len(b), r.msg.Unpack(b)
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// testView is two networks: "nether" (priority 1) with hosts, extra records
// and an IPv4 host; and "clan".
func testView() *crdt.ResolvedView {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	v := &crdt.ResolvedView{
		Zones: []crdt.Zone{{Domain: "nether", Priority: 1, TTL: time.Minute, Serial: 42}, {Domain: "clan", Priority: 2, TTL: 30 * time.Second, Serial: 7}},
		Names: map[string]*crdt.Name{
			"mors.nether": {FQDN: "mors.nether", Addrs: []netip.Addr{a("10.0.0.1"), a("fd00::1")}, TTL: time.Minute,
				Extra: []crdt.ExtraRecord{{Type: crdt.TypeTXT, TTL: time.Hour, Data: `hello "world"`}}},
			"styx.nether": {FQDN: "styx.nether", Addrs: []netip.Addr{a("fd00::2")}, TTL: time.Minute},
			"_ssh._tcp.mors.nether": {FQDN: "_ssh._tcp.mors.nether", TTL: time.Minute,
				Extra: []crdt.ExtraRecord{{Type: crdt.TypeSRV, TTL: time.Minute, Data: "0 5 22 mors.nether."}}},
			"www.nether":  {FQDN: "www.nether", TTL: time.Minute, Extra: []crdt.ExtraRecord{{Type: crdt.TypeCNAME, TTL: time.Minute, Data: "mors.nether."}}},
			"gone.nether": {FQDN: "gone.nether", TTL: time.Minute, Extra: []crdt.ExtraRecord{{Type: crdt.TypeCNAME, TTL: time.Minute, Data: "nobody.nether."}}},
			"ext.nether":  {FQDN: "ext.nether", TTL: time.Minute, Extra: []crdt.ExtraRecord{{Type: crdt.TypeCNAME, TTL: time.Minute, Data: "example.org."}}},
			"lethe.clan":  {FQDN: "lethe.clan", Addrs: []netip.Addr{a("fd00::3")}, TTL: 30 * time.Second},
		},
		Reverse: map[netip.Addr][]string{a("fd00::1"): {"mors.nether"}, a("fd00::2"): {"styx.nether"}, a("10.0.0.1"): {"mors.nether"}, a("fd00::3"): {"lethe.clan"}},
	}
	// The admin's own address records: a printer, and an IPv4-only name.
	v.Names["printer.nether"] = &crdt.Name{FQDN: "printer.nether", TTL: time.Minute, Extra: []crdt.ExtraRecord{
		{Type: crdt.TypeAAAA, TTL: time.Minute, Data: "fd00::99"}, {Type: crdt.TypeA, TTL: time.Minute, Data: "10.0.0.99"}}}
	v.Names["legacy.nether"] = &crdt.Name{FQDN: "legacy.nether", TTL: time.Minute, Extra: []crdt.ExtraRecord{
		{Type: crdt.TypeA, TTL: time.Minute, Data: "10.0.0.7"}}}
	v.Names["many.nether"] = &crdt.Name{FQDN: "many.nether", TTL: time.Minute}
	for i := range 40 {
		v.Names["many.nether"].Addrs = append(v.Names["many.nether"].Addrs, netip.AddrFrom16([16]byte{0xfd, 1, 15: byte(i)}))
	}
	return v
}

func newTestHandler(t *testing.T, fwd ...string) *Handler {
	t.Helper()
	tab, err := NewTable(testView(), TableOptions{ReversePrefixes: []netip.Prefix{netip.MustParsePrefix("fd00::/64"), netip.MustParsePrefix("10.0.0.0/24")},
		NSAddrs: []netip.Addr{netip.MustParseAddr("fd00::53"), netip.MustParseAddr("10.0.0.53")}})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(fwd)
	h.SetTable(tab)
	return h
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

func ask(h *Handler, name string, qtype uint16, mod ...func(*dns.Msg)) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	for _, f := range mod {
		f(q)
	}
	w := &recorder{}
	h.ServeDNS(w, q)
	return w.msg
}

func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		f := strings.Fields(rr.String())
		out = append(out, f[3]+" "+strings.Join(f[4:], " "))
	}
	return out
}

func TestAnswers(t *testing.T) {
	h := newTestHandler(t)
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
		soa   bool // SOA in authority
	}{
		{"mors.nether.", dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA fd00::1"}, false},
		{"mors.nether.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.0.0.1"}, false},
		{"MoRs.NeThEr.", dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA fd00::1"}, false},
		{"mors.nether.", dns.TypeTXT, dns.RcodeSuccess, []string{`TXT "hello \"world\""`}, false},
		{"styx.nether.", dns.TypeA, dns.RcodeSuccess, nil, true},        // NODATA
		{"nobody.nether.", dns.TypeAAAA, dns.RcodeNameError, nil, true}, // NXDOMAIN
		{"x.mors.nether.", dns.TypeAAAA, dns.RcodeNameError, nil, true}, // below a name
		{"_tcp.mors.nether.", dns.TypeSRV, dns.RcodeSuccess, nil, true}, // empty non-terminal: NODATA
		{"_ssh._tcp.mors.nether.", dns.TypeSRV, dns.RcodeSuccess, []string{"SRV 0 5 22 mors.nether."}, false},
		{"www.nether.", dns.TypeAAAA, dns.RcodeSuccess, []string{"CNAME mors.nether.", "AAAA fd00::1"}, false},
		{"www.nether.", dns.TypeCNAME, dns.RcodeSuccess, []string{"CNAME mors.nether."}, false},
		{"gone.nether.", dns.TypeAAAA, dns.RcodeNameError, []string{"CNAME nobody.nether."}, true},
		{"ext.nether.", dns.TypeA, dns.RcodeSuccess, []string{"CNAME example.org."}, false},
		{"nether.", dns.TypeSOA, dns.RcodeSuccess, []string{"SOA ns.nether. hostmaster.nether. 42 3600 600 86400 60"}, false},
		{"nether.", dns.TypeNS, dns.RcodeSuccess, []string{"NS ns.nether."}, false},
		{"nether.", dns.TypeAAAA, dns.RcodeSuccess, nil, true},
		{"lethe.clan.", dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA fd00::3"}, false},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR mors.nether."}, false},
		{"1.0.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR mors.nether."}, false},
		{"9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeNameError, nil, true},
		{"8.8.8.8.in-addr.arpa.", dns.TypePTR, dns.RcodeRefused, nil, false}, // outside the mesh prefixes
		{"example.org.", dns.TypeA, dns.RcodeRefused, nil, false},            // not an open resolver
		{"nether.example.org.", dns.TypeA, dns.RcodeRefused, nil, false},
	} {
		m := ask(h, tc.name, tc.qtype)
		got := answers(m)
		if m.Rcode != tc.rcode || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s %s: rcode %s answers %q, want %s %q", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[m.Rcode], got, dns.RcodeToString[tc.rcode], tc.want)
		}
		hasSOA := len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == dns.TypeSOA
		if hasSOA != tc.soa {
			t.Errorf("%s %s: SOA in authority %v, want %v", tc.name, dns.TypeToString[tc.qtype], hasSOA, tc.soa)
		}
		if m.Question[0].Name != tc.name {
			t.Errorf("question case not echoed: %s", m.Question[0].Name)
		}
		wantAA := tc.rcode != dns.RcodeRefused
		if m.Authoritative != wantAA || m.RecursionAvailable {
			t.Errorf("%s: AA %v RA %v", tc.name, m.Authoritative, m.RecursionAvailable)
		}
	}
}

func TestProtocolEdges(t *testing.T) {
	h := newTestHandler(t)
	// EDNS0: the reply carries our OPT.
	m := ask(h, "mors.nether.", dns.TypeAAAA, func(q *dns.Msg) { q.SetEdns0(4096, true) })
	if o := m.IsEdns0(); o == nil || o.UDPSize() != maxUDPSize || o.Version() != 0 {
		t.Errorf("EDNS reply OPT: %v", o)
	}
	// Unknown EDNS version: BADVERS.
	m = ask(h, "mors.nether.", dns.TypeAAAA, func(q *dns.Msg) { q.SetEdns0(1232, false); q.IsEdns0().SetVersion(1) })
	if m.Rcode != dns.RcodeBadVers || m.IsEdns0() == nil {
		t.Errorf("EDNS version 1: rcode %s", dns.RcodeToString[m.Rcode])
	}
	// 40 AAAA records do not fit 512 bytes: TC over UDP, whole over TCP or
	// with EDNS.
	m = ask(h, "many.nether.", dns.TypeAAAA)
	if !m.Truncated {
		t.Errorf("40 AAAA in a plain UDP answer: not truncated (%d records)", len(m.Answer))
	}
	m = ask(h, "many.nether.", dns.TypeAAAA, func(q *dns.Msg) { q.SetEdns0(1232, false) })
	if m.Truncated || len(m.Answer) != 40 {
		t.Errorf("with EDNS 1232: TC %v, %d records", m.Truncated, len(m.Answer))
	}
	q := new(dns.Msg)
	q.SetQuestion("many.nether.", dns.TypeAAAA)
	w := &recorder{tcp: true}
	h.ServeDNS(w, q)
	if w.msg.Truncated || len(w.msg.Answer) != 40 {
		t.Errorf("over TCP: TC %v, %d records", w.msg.Truncated, len(w.msg.Answer))
	}
	// ANY is answered minimally (RFC 8482).
	m = ask(h, "mors.nether.", dns.TypeANY)
	if len(m.Answer) != 1 || m.Answer[0].Header().Rrtype != dns.TypeHINFO {
		t.Errorf("ANY: %v", m.Answer)
	}
	// Zone transfers are refused.
	for _, qt := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
		if m = ask(h, "nether.", qt); m.Rcode != dns.RcodeRefused {
			t.Errorf("%s: %s", dns.TypeToString[qt], dns.RcodeToString[m.Rcode])
		}
	}
	// Other opcodes, several questions, other classes.
	if m = ask(h, "nether.", dns.TypeSOA, func(q *dns.Msg) { q.Opcode = dns.OpcodeUpdate }); m.Rcode != dns.RcodeNotImplemented {
		t.Errorf("UPDATE: %s", dns.RcodeToString[m.Rcode])
	}
	if m = ask(h, "nether.", dns.TypeSOA, func(q *dns.Msg) { q.Question = append(q.Question, q.Question[0]) }); m.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %s", dns.RcodeToString[m.Rcode])
	}
	if m = ask(h, "version.bind.", dns.TypeTXT, func(q *dns.Msg) { q.Question[0].Qclass = dns.ClassCHAOS }); m.Rcode != dns.RcodeRefused {
		t.Errorf("CHAOS: %s", dns.RcodeToString[m.Rcode])
	}
	// A response is never answered.
	if m = ask(h, "mors.nether.", dns.TypeAAAA, func(q *dns.Msg) { q.Response = true }); m != nil {
		t.Error("answered a response")
	}
	if h.Count(ResultRefused) == 0 || h.Count(ResultAnswer) == 0 {
		t.Error("results are not counted")
	}
}

// With a forwarder configured, names outside the mesh go to it; without,
// they are refused (see TestAnswers).
func TestForwarding(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		m.Answer = []dns.RR{&dns.A{Hdr: hdr(r.Question[0].Name, dns.TypeA, 5), A: net.ParseIP("192.0.2.1")}}
		_ = w.WriteMsg(m)
	})}
	go up.ActivateAndServe()
	defer up.Shutdown()
	h := newTestHandler(t, pc.LocalAddr().String())
	m := ask(h, "example.org.", dns.TypeA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || h.Count(ResultForwarded) != 1 {
		t.Fatalf("forwarded: %v", m)
	}
	if m = ask(h, "mors.nether.", dns.TypeAAAA); len(m.Answer) != 1 || !m.Authoritative {
		t.Fatal("mesh names must still be answered locally")
	}
}
