package dnsserver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/miekg/dns"
)

func freePort(t *testing.T) uint16 {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}

func startServer(t *testing.T, disableFast bool) (*Server, string) {
	t.Helper()
	port := freePort(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	s := NewServer(Config{Listen: []netip.AddrPort{addr}, DisableFastPath: disableFast})
	tab, err := NewTable(testView(), TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.SetTable(tab)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, addr.String()
}

func exchange(t *testing.T, net, addr, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	if edns {
		q.SetEdns0(1232, false)
	}
	c := &dns.Client{Net: net, Timeout: 2 * time.Second}
	m, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], net, err)
	}
	return m
}

func TestServerOverSockets(t *testing.T) {
	for _, slow := range []bool{false, true} {
		s, addr := startServer(t, slow)
		for _, proto := range []string{"udp", "tcp"} {
			m := exchange(t, proto, addr, "mors.nether.", dns.TypeAAAA, false)
			if len(m.Answer) != 1 || !m.Authoritative {
				t.Fatalf("%s (fast path off: %v): %v", proto, slow, m)
			}
			if m = exchange(t, proto, addr, "example.org.", dns.TypeA, false); m.Rcode != dns.RcodeRefused {
				t.Fatalf("%s: outside the mesh: %s", proto, dns.RcodeToString[m.Rcode])
			}
		}
		// Too large for plain UDP: TC, then the whole answer over TCP.
		m := exchange(t, "udp", addr, "many.nether.", dns.TypeAAAA, false)
		if !m.Truncated {
			t.Fatal("40 AAAA over plain UDP not truncated")
		}
		if m = exchange(t, "tcp", addr, "many.nether.", dns.TypeAAAA, false); len(m.Answer) != 40 {
			t.Fatalf("over TCP: %d answers", len(m.Answer))
		}
		if slow {
			if s.FastAnswers() != 0 {
				t.Fatal("fast path answered while disabled")
			}
		} else if s.FastAnswers() < 2 {
			t.Fatalf("fast path answered %d queries", s.FastAnswers())
		}
		// A new table takes effect at once.
		v := testView()
		v.Names["new.nether"] = &crdt.Name{FQDN: "new.nether", TTL: time.Minute, Addrs: []netip.Addr{netip.MustParseAddr("fd00::77")}}
		tab, err := NewTable(v, TableOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.SetTable(tab)
		if m = exchange(t, "udp", addr, "new.nether.", dns.TypeAAAA, true); len(m.Answer) != 1 {
			t.Fatalf("after SetTable: %v", m)
		}
	}
}

func TestServerReportsBindFailure(t *testing.T) {
	_, addr := startServer(t, false)
	ap := netip.MustParseAddrPort(addr)
	s := NewServer(Config{Listen: []netip.AddrPort{ap}})
	if err := s.Start(); err == nil {
		s.Stop()
		t.Fatal("two servers bound the same TCP address")
	}
}

// Nobody else may bind our UDP port while we hold it (it would receive
// our queries).
func TestUDPPortNotShared(t *testing.T) {
	_, addr := startServer(t, false)
	if fd, err := listenUDP(netip.MustParseAddrPort(addr)); err == nil {
		t.Fatalf("a second socket bound %s (fd %d)", addr, fd)
	}
}
