package dnsserver

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/miekg/dns"
)

// meshPrefix is the /64 of the hosts of meshView.
var meshPrefix = netip.MustParsePrefix("fd00::/64")

// meshView is a view of n hosts h0.mesh … each with one IPv6 address in
// meshPrefix: fd00::1, fd00::2 … (sequential), or random interface IDs as
// meshes that derive addresses from keys have (clan-core hashes them).
func meshView(n int, random bool) *crdt.ResolvedView {
	v := &crdt.ResolvedView{Zones: []crdt.Zone{{Domain: "mesh", Priority: 1, TTL: time.Minute, Serial: 1}},
		Names: make(map[string]*crdt.Name, n), Reverse: make(map[netip.Addr][]string, n)}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		b := meshPrefix.Addr().As16()
		for {
			if random {
				iid := rng.Uint64()
				for k := range 8 {
					b[8+k] = byte(iid >> (56 - 8*k))
				}
			} else {
				b[13], b[14], b[15] = byte((i+1)>>16), byte((i+1)>>8), byte(i+1)
			}
			if _, taken := v.Reverse[netip.AddrFrom16(b)]; !taken {
				break
			}
		}
		a := netip.AddrFrom16(b)
		name := fmt.Sprintf("h%d.mesh", i)
		v.Names[name] = &crdt.Name{FQDN: name, Addrs: []netip.Addr{a}, TTL: time.Minute}
		v.Reverse[a] = []string{name}
	}
	return v
}

// meshOptions are the options the agent builds a table with: the mesh
// prefix for PTR, its own address for the NS name.
func meshOptions() TableOptions {
	return TableOptions{ReversePrefixes: []netip.Prefix{meshPrefix}, NSAddrs: []netip.Addr{netip.MustParseAddr("fd00::53")}}
}

// heapAfterGC is the live heap, settled.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestMemoryPerHost reports what a table costs per host, beyond the view
// it is built from (live heap after GC), and how long NewTable takes, for
// 10,000 and 100,000 hosts with sequential and random addresses; then
// what it costs once every host's PTR reply has been asked for (they are
// packed when first asked). Run with -v to see the figures; -short skips
// 100,000. It fails above 350 bytes per host (issue 19 gives the whole
// agent 2 KB).
func TestMemoryPerHost(t *testing.T) {
	for _, n := range []int{10000, 100000} {
		if n > 10000 && testing.Short() {
			continue
		}
		for _, random := range []bool{false, true} {
			kind := map[bool]string{false: "sequential", true: "random"}[random]
			v := meshView(n, random)
			before := heapAfterGC()
			began := time.Now()
			tab, err := NewTable(v, meshOptions())
			took := time.Since(began)
			if err != nil {
				t.Fatal(err)
			}
			per := float64(int64(heapAfterGC())-int64(before)) / float64(n)
			// Every PTR asked once (the queries themselves are not counted).
			var pkts [][]byte
			for a := range v.Reverse {
				r, _ := dns.ReverseAddr(a.String())
				pkts = append(pkts, packQuery(r, dns.TypePTR, nil))
			}
			withPkts := heapAfterGC()
			h := NewHandler(nil)
			h.SetTable(tab)
			for _, p := range pkts {
				if fastReply(h, p) == nil {
					t.Fatalf("PTR not on the fast path: %x", p)
				}
			}
			perPTR := per + float64(int64(heapAfterGC())-int64(withPkts))/float64(n)
			t.Logf("%d hosts, %s addresses: %.0f B per host (%.0f with every PTR asked), NewTable %v", n, kind, per, perPTR,
				took.Round(time.Millisecond))
			if per > 350 {
				t.Errorf("%d hosts, %s addresses: %.0f B per host, want at most 350", n, kind, per)
			}
			runtime.KeepAlive(tab)
			runtime.KeepAlive(v)
			runtime.KeepAlive(pkts)
		}
	}
}

func BenchmarkNewTable10k(b *testing.B) {
	for _, random := range []bool{false, true} {
		b.Run(map[bool]string{false: "sequential", true: "random"}[random], func(b *testing.B) {
			v := meshView(10000, random)
			for b.Loop() {
				if _, err := NewTable(v, meshOptions()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNewTableOneChange10k: one host of 10,000 moves, the table is
// built from the previous one.
func BenchmarkNewTableOneChange10k(b *testing.B) {
	v := meshView(10000, true)
	prev, err := NewTable(v, meshOptions())
	if err != nil {
		b.Fatal(err)
	}
	moved := cloneView(v)
	old := moved.Names["h5.mesh"].Addrs[0]
	a := netip.AddrFrom16([16]byte{0xfd, 15: 0xfe})
	moved.Names["h5.mesh"].Addrs = []netip.Addr{a}
	delete(moved.Reverse, old)
	moved.Reverse[a] = []string{"h5.mesh"}
	opts := meshOptions()
	opts.Previous = prev
	for b.Loop() {
		if _, err := NewTable(moved, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFastPath: parse, look up and build replies on the fast path,
// for a table of 10,000 hosts with random addresses, cycling through
// 1,000 queries of one kind.
func BenchmarkFastPath(b *testing.B) {
	v := meshView(10000, true)
	tab, err := NewTable(v, meshOptions())
	if err != nil {
		b.Fatal(err)
	}
	h := NewHandler(nil)
	h.SetTable(tab)
	rev := func(i int) string {
		r, _ := dns.ReverseAddr(v.Names[fmt.Sprintf("h%d.mesh", i)].Addrs[0].String())
		return r
	}
	// revMiss is the reverse name of an address next to host i's that no
	// host has.
	revMiss := func(i int) string {
		b := v.Names[fmt.Sprintf("h%d.mesh", i)].Addrs[0].As16()
		for {
			b[15]++
			if _, taken := v.Reverse[netip.AddrFrom16(b)]; !taken {
				r, _ := dns.ReverseAddr(netip.AddrFrom16(b).String())
				return r
			}
		}
	}
	for _, kind := range []struct {
		name  string
		qname func(i int) string
		qtype uint16
	}{
		{"AAAA", func(i int) string { return fmt.Sprintf("h%d.mesh.", i) }, dns.TypeAAAA},
		{"AAAA-mixed-case", func(i int) string { return fmt.Sprintf("H%d.Mesh.", i) }, dns.TypeAAAA},
		{"A-nodata", func(i int) string { return fmt.Sprintf("h%d.mesh.", i) }, dns.TypeA},
		{"HTTPS-nodata", func(i int) string { return fmt.Sprintf("h%d.mesh.", i) }, dns.TypeHTTPS},
		{"NXDOMAIN", func(i int) string { return fmt.Sprintf("nobody%d.mesh.", i) }, dns.TypeAAAA},
		{"PTR", rev, dns.TypePTR},
		{"PTR-nxdomain", revMiss, dns.TypePTR},
		{"PTR-ent-nodata", func(i int) string { return rev(i)[2:] }, dns.TypePTR},
		{"refused", func(i int) string { return fmt.Sprintf("h%d.example.", i) }, dns.TypeA},
	} {
		b.Run(kind.name, func(b *testing.B) {
			var pkts [][]byte
			for i := range 1000 {
				pkts = append(pkts, packQuery(kind.qname(i*7), kind.qtype, func(q *dns.Msg) { q.SetEdns0(1232, false) }))
			}
			for _, p := range pkts { // every one answered fast, and as the Handler answers
				f := fastReply(h, p)
				if f == nil {
					b.Fatalf("not on the fast path: %x", p)
				}
				slow, _ := slowReply(h, p)
				if err := sameReply(f, slow); err != nil {
					b.Fatal(err)
				}
			}
			var lower [256]byte
			var q query
			out := make([]byte, maxUDPSize)
			i := 0
			for b.Loop() {
				p := pkts[i%len(pkts)]
				i++
				if !parseQuery(p, &lower, &q) {
					b.Fatal("parse")
				}
				if tp := tab.fast.lookup(&q); tp == nil || tp.build(p, &q, out) == 0 {
					b.Fatal("not fast")
				}
			}
		})
	}
}
