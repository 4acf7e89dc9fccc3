package dnsserver

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/miekg/dns"
)

// parseReverse reads back what dns.ReverseAddr writes, and the prefixes
// its shorter names spell; anything else spells no address.
func TestParseReverse(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		for _, a := range []netip.Addr{netip.AddrFrom16(b), netip.AddrFrom4([4]byte(b[:4]))} {
			name, err := dns.ReverseAddr(a.String())
			if err != nil {
				t.Fatal(err)
			}
			for bits, off := a.BitLen(), 0; ; {
				p, ok := parseReverse([]byte(wireName(name[off:])))
				want := netip.PrefixFrom(a, bits).Masked()
				if !ok || p != want {
					t.Fatalf("%s: %v %v, want %v", name[off:], p, ok, want)
				}
				i, end := dns.NextLabel(name, off)
				if end || name[i:] == "in-addr.arpa." || name[i:] == "ip6.arpa." {
					break
				}
				off = i
				bits -= map[bool]int{true: 8, false: 4}[a.Is4()]
			}
		}
	}
	for _, name := range []string{
		"ip6.arpa.", "in-addr.arpa.", // the roots: /0
	} {
		if p, ok := parseReverse([]byte(wireName(name))); !ok || p.Bits() != 0 {
			t.Errorf("%s: %v %v", name, p, ok)
		}
	}
	full := strings.Repeat("0.", 32)
	for _, name := range []string{
		"arpa.", "example.org.", "mesh.", "a.arpa.",
		"g.ip6.arpa.", "A.ip6.arpa.", "00.ip6.arpa.", "0" + ".-.ip6.arpa.", "0." + full + "ip6.arpa.",
		"256.in-addr.arpa.", "01.in-addr.arpa.", "00.in-addr.arpa.", "1a.in-addr.arpa.", "1.2.3.4.5.in-addr.arpa.", "1000.in-addr.arpa.",
		"1.ip6.arpa.example.", "1.in-addr.arpa.example.",
	} {
		if p, ok := parseReverse([]byte(wireName(name))); ok {
			t.Errorf("%s: parsed as %v", name, p)
		}
	}
}

// reverseOracle is every reverse name a table built with meshOptions
// holds, made as a zone file would have them: each address's name and
// its ancestors below the apex.
func reverseOracle(v *crdt.ResolvedView, apex string) map[string]bool {
	names := map[string]bool{}
	for a := range v.Reverse {
		r, _ := dns.ReverseAddr(a.String())
		for p := r; len(p) > len(apex); p = parent(p) {
			names[p] = true
		}
	}
	return names
}

// Deep reverse names with random interface IDs: an address's name has
// its PTR, each of its ancestors is an empty non-terminal (NODATA), a
// name with nothing below it does not exist (NXDOMAIN), whatever the case
// of the question; the fast path answers them all, as the Handler does.
func TestReverseNamesRandomAddresses(t *testing.T) {
	v := meshView(2000, true)
	tab, err := NewTable(v, meshOptions())
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(nil)
	h.SetTable(tab)
	apex := "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."
	exists := reverseOracle(v, apex)
	rng := rand.New(rand.NewPCG(5, 6))
	mixCase := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if 'a' <= c && c <= 'z' && rng.IntN(2) == 0 {
				b[i] = c - 'a' + 'A'
			}
		}
		return string(b)
	}
	check := func(name string, qtype uint16, rcode int, want []string) {
		t.Helper()
		m := ask(h, name, qtype)
		got := answers(m)
		if m.Rcode != rcode || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%s %s: %s %q, want %s %q", name, dns.TypeToString[qtype], dns.RcodeToString[m.Rcode], got,
				dns.RcodeToString[rcode], want)
		}
		if rcode == dns.RcodeNameError || (rcode == dns.RcodeSuccess && len(want) == 0) {
			if len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA || !strings.EqualFold(m.Ns[0].Header().Name, apex) {
				t.Fatalf("%s %s: authority %v, want the SOA of %s", name, dns.TypeToString[qtype], m.Ns, apex)
			}
		}
		for _, edns := range []bool{false, true} {
			pkt := packQuery(name, qtype, func(q *dns.Msg) {
				if edns {
					q.SetEdns0(1232, false)
				}
			})
			f := fastReply(h, pkt)
			if f == nil {
				t.Fatalf("%s %s: not on the fast path", name, dns.TypeToString[qtype])
			}
			slow, _ := slowReply(h, pkt)
			if err := sameReply(f, slow); err != nil {
				t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
			}
		}
	}
	n := 0
	for a, hosts := range v.Reverse {
		if n++; n > 200 {
			break
		}
		r, _ := dns.ReverseAddr(a.String())
		check(r, dns.TypePTR, dns.RcodeSuccess, []string{"PTR " + hosts[0] + "."})
		check(mixCase(r), dns.TypePTR, dns.RcodeSuccess, []string{"PTR " + hosts[0] + "."})
		check(r, dns.TypeAAAA, dns.RcodeSuccess, nil) // NODATA
		for p := parent(r); len(p) > len(apex); p = parent(p) {
			check(p, dns.TypePTR, dns.RcodeSuccess, nil) // an empty non-terminal
			check(mixCase(p), dns.TypeAAAA, dns.RcodeSuccess, nil)
			// Its siblings: NXDOMAIN unless an address lies below.
			for _, nib := range "0123456789abcdef" {
				sib := string(nib) + p[1:]
				rcode := dns.RcodeSuccess
				if !exists[sib] {
					rcode = dns.RcodeNameError
				}
				check(sib, dns.TypePTR, rcode, nil)
			}
		}
		check("0."+r, dns.TypePTR, dns.RcodeNameError, nil) // below an address
		check("x"+r[1:], dns.TypePTR, dns.RcodeNameError, nil)
	}
	// Most ancestors are their host's own: random interface IDs share
	// little beyond the first nibbles.
	if len(exists) < 2000*12 {
		t.Errorf("only %d reverse names for 2,000 random addresses", len(exists))
	}
	check(apex, dns.TypePTR, dns.RcodeSuccess, nil)
	check("1."+apex[2:], dns.TypePTR, dns.RcodeRefused, nil) // outside the /64
}

// Reverse names under in-addr.arpa, in a zone of a /16: octets as
// dns.ReverseAddr writes them, and nothing else.
func TestReverseNamesIPv4(t *testing.T) {
	_, h := withIPv4Names(t, 10, "10.0.1.5", "10.0.1.200", "10.0.7.0", "10.0.200.17")
	for _, tc := range []struct {
		name  string
		rcode int
		want  string
	}{
		{"5.1.0.10.in-addr.arpa.", dns.RcodeSuccess, "PTR v0.mesh."},
		{"200.1.0.10.IN-ADDR.ARPA.", dns.RcodeSuccess, "PTR v1.mesh."},
		{"0.7.0.10.in-addr.arpa.", dns.RcodeSuccess, "PTR v2.mesh."},
		{"17.200.0.10.in-addr.arpa.", dns.RcodeSuccess, "PTR v3.mesh."},
		{"1.0.10.in-addr.arpa.", dns.RcodeSuccess, ""}, // empty non-terminals
		{"7.0.10.in-addr.arpa.", dns.RcodeSuccess, ""},
		{"200.0.10.in-addr.arpa.", dns.RcodeSuccess, ""},
		{"0.10.in-addr.arpa.", dns.RcodeSuccess, ""}, // the apex
		{"2.0.10.in-addr.arpa.", dns.RcodeNameError, ""},
		{"20.0.10.in-addr.arpa.", dns.RcodeNameError, ""},
		{"6.1.0.10.in-addr.arpa.", dns.RcodeNameError, ""},
		{"05.1.0.10.in-addr.arpa.", dns.RcodeNameError, ""}, // not as ReverseAddr writes 5
		{"00.7.0.10.in-addr.arpa.", dns.RcodeNameError, ""},
		{"01.0.10.in-addr.arpa.", dns.RcodeNameError, ""},
		{"1.5.1.0.10.in-addr.arpa.", dns.RcodeNameError, ""},
		{"5.1.1.10.in-addr.arpa.", dns.RcodeRefused, ""},
	} {
		m := ask(h, tc.name, dns.TypePTR)
		got := strings.Join(answers(m), "|")
		if m.Rcode != tc.rcode || got != tc.want {
			t.Errorf("%s: %s %q, want %s %q", tc.name, dns.RcodeToString[m.Rcode], got, dns.RcodeToString[tc.rcode], tc.want)
		}
		pkt := packQuery(tc.name, dns.TypePTR, nil)
		if f := fastReply(h, pkt); f == nil {
			t.Errorf("%s: not on the fast path", tc.name)
		} else if slow, _ := slowReply(h, pkt); !bytes.Equal(f, slow) {
			t.Errorf("%s: %v", tc.name, sameReply(f, slow))
		}
	}
	if m := ask(h, "5.1.0.10.in-addr.arpa.", dns.TypePTR); len(m.Answer) == 1 && m.Answer[0].Header().Ttl != 20 {
		t.Errorf("PTR TTL %d, want the name's 20", m.Answer[0].Header().Ttl)
	}
}

// Tables built from the previous one through moves of hosts with random
// addresses answer as fresh tables do, on the reverse names too, also
// after the previous table packed their PTR replies.
func TestIncrementalReverseNames(t *testing.T) {
	v := meshView(500, true)
	opts := meshOptions()
	prev, err := NewTable(v, opts)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for step := range 20 {
		next := cloneView(v)
		host := fmt.Sprintf("h%d.mesh", rng.IntN(500))
		old := next.Names[host].Addrs[0]
		b := old.As16()
		b[8+rng.IntN(8)] ^= byte(1 + rng.IntN(255))
		moved := netip.AddrFrom16(b)
		next.Names[host].Addrs = []netip.Addr{moved}
		delete(next.Reverse, old)
		next.Reverse[moved] = []string{host}
		if step%5 == 4 {
			next.Names[host].TTL = time.Duration(step) * time.Second // the PTR's TTL follows
		}
		var names []string
		for _, a := range []netip.Addr{old, moved} {
			r, _ := dns.ReverseAddr(a.String())
			for p := r; len(p) > len("d.f.ip6.arpa."); p = parent(p) {
				names = append(names, p, "f"+p[1:])
			}
		}
		names = append(names, host+".", "x."+host+".")
		hp := NewHandler(nil)
		hp.SetTable(prev)
		for _, n := range names { // the previous table packs its replies
			fastReply(hp, packQuery(n, dns.TypePTR, nil))
		}
		popts := opts
		popts.Previous = prev
		inc, err := NewTable(next, popts)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := NewTable(next, opts)
		if err != nil {
			t.Fatal(err)
		}
		hi, hf := NewHandler(nil), NewHandler(nil)
		hi.SetTable(inc)
		hf.SetTable(fresh)
		for _, n := range names {
			for _, qt := range []uint16{dns.TypePTR, dns.TypeAAAA, dns.TypeA} {
				pkt := packQuery(n, qt, nil)
				a, b := fastReply(hi, pkt), fastReply(hf, pkt)
				if a == nil || !bytes.Equal(a, b) {
					t.Fatalf("step %d, %s %s: incremental and fresh tables differ", step, n, dns.TypeToString[qt])
				}
				if slow, _ := slowReply(hi, pkt); !bytes.Equal(a, slow) {
					t.Fatalf("step %d, %s %s: %v", step, n, dns.TypeToString[qt], sameReply(a, slow))
				}
			}
		}
		if inc.Names != fresh.Names {
			t.Fatalf("step %d: %d names, fresh %d", step, inc.Names, fresh.Names)
		}
		v, prev = next, inc
	}
}

// The fast loops (one per socket) pack PTR replies when first asked, all
// at once (go test -race).
func TestPTRPackedOnceConcurrently(t *testing.T) {
	v := meshView(300, true)
	tab, err := NewTable(v, meshOptions())
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(nil)
	h.SetTable(tab)
	var pkts [][]byte
	for a := range v.Reverse {
		r, _ := dns.ReverseAddr(a.String())
		pkts = append(pkts, packQuery(r, dns.TypePTR, nil))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for _, p := range pkts {
				f := fastReply(h, p)
				slow, _ := slowReply(h, p)
				if f == nil || !bytes.Equal(f, slow) {
					errs <- fmt.Errorf("%x: fast %x, handler %x", p, f, slow)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// FuzzReverseQuery: arbitrary packets against a table of random addresses
// and IPv4 hosts; whenever the fast path answers, it says what the Handler
// says.
func FuzzReverseQuery(f *testing.F) {
	v, h := withIPv4Names(f, 200, "10.0.1.5", "10.0.1.200", "10.0.7.0")
	n := 0
	for a := range v.Reverse {
		if n++; n > 5 {
			break
		}
		r, _ := dns.ReverseAddr(a.String())
		f.Add(packQuery(r, dns.TypePTR, nil))
		// An ancestor of the address's name (five labels up), in upper
		// case. Cut at labels: an IPv4 name's labels are not all one
		// character long (r[10:] made ".in-addr.arpa." of 200.1.0.10).
		up := dns.SplitDomainName(r)
		f.Add(packQuery(strings.ToUpper(dns.Fqdn(strings.Join(up[min(5, len(up)-1):], "."))), dns.TypeAAAA, func(q *dns.Msg) { q.SetEdns0(1232, true) }))
	}
	f.Add(packQuery("5.1.0.10.in-addr.arpa.", dns.TypePTR, nil))
	f.Add(packQuery("1.0.10.in-addr.arpa.", dns.TypePTR, nil))
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

// withIPv4Names is meshView(hosts) plus a name v<i>.mesh for each IPv4
// address, served with 10.0.0.0/16 as a reverse zone beside the mesh's.
func withIPv4Names(tb testing.TB, hosts int, addrs ...string) (*crdt.ResolvedView, *Handler) {
	tb.Helper()
	v := meshView(hosts, true)
	for i, s := range addrs {
		a := netip.MustParseAddr(s)
		name := fmt.Sprintf("v%d.mesh", i)
		v.Names[name] = &crdt.Name{FQDN: name, Addrs: []netip.Addr{a}, TTL: 20 * time.Second}
		v.Reverse[a] = []string{name}
	}
	tab, err := NewTable(v, TableOptions{ReversePrefixes: []netip.Prefix{meshPrefix, netip.MustParsePrefix("10.0.0.0/16")}})
	if err != nil {
		tb.Fatal(err)
	}
	h := NewHandler(nil)
	h.SetTable(tab)
	return v, h
}
