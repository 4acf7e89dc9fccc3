package mesh

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// BenchmarkAntiEntropyEntryPut (issue 14, cost): two nodes holding one
// namespace of 1,000 writers with 10 entries each (10,000 entries, and the
// writers' host records); one writer puts one entry on the first node (a
// new key, then a new value for a key it holds: the old one goes). The
// bytes of the round that brings it to the second node, less the entry's
// size (goal: at most 2 KB), in both versions of the exchange, and of an
// in-step round, beside the full data.json, in the same run.
//
//	go test ./mesh -run '^$' -bench AntiEntropyEntryPut -benchtime 10x
func BenchmarkAntiEntropyEntryPut(b *testing.B) {
	admin := testKey("admin")
	id, now := admin.Public(), time.Now()
	set := must(crdt.SignSettings(crdt.Settings{Network: id, Updated: now, Domain: "mesh", HostTTL: time.Hour,
		Namespaces: []crdt.Namespace{{Name: "services", Writers: crdt.WritersOwner, Policy: crdt.PolicyLWW}}}, admin))
	recs := []*crdt.Record{set}
	var writers []crdt.PrivateKey
	for i := range 1000 {
		k := testKey(fmt.Sprint("writer", i))
		writers = append(writers, k)
		addr := netip.AddrFrom16([16]byte{0xfd, 14: byte(i >> 8), 15: byte(i)})
		recs = append(recs, must(crdt.SignHost(crdt.Host{Network: id, Node: k.Public(), Heartbeat: now, Addresses: []netip.Addr{addr}, HTTPPort: 7331}, k)))
		for j := range 10 {
			recs = append(recs, must(crdt.SignEntry(crdt.Entry{Network: id, Namespace: "services", Writer: k.Public(), Key: fmt.Sprintf("_svc%d._tcp", j),
				Time: now, Policy: crdt.PolicyLWW, Op: crdt.OpPut, Value: []byte(fmt.Sprintf("0 0 %d host%d", 8000+j, i))}, k)))
		}
	}
	mem := NewMemNetwork()
	mk := func(host string) *Node {
		st := NewStore(crdt.NewState(crdt.DefaultOptions(), id), nil)
		if res := st.Ingest(recs); len(res.Rejected) > 0 {
			b.Fatal(res.Rejected[0])
		}
		n := must(New(Config{Key: testKey(host), Routed: func(netip.Addr) bool { return true }, BindAddr: netip.MustParseAddr(host),
			HTTPClient: mem.HTTPClient(host), PeerRate: 1e6, PeerBurst: 1 << 20}, st))
		mem.Serve(host, n.Handler())
		n.store.Read(func(st *crdt.State) { must(st.SymbolRun(id, 0, 64, 0)) }) // a running node has its first symbols
		return n
	}
	a, c := mk("fd00::a"), mk("fd00::c")
	var dataJSON int
	a.store.Read(func(st *crdt.State) { dataJSON = len(must(crdt.EncodeDataJSON(st, id))) })
	peer := Member{Addr: netip.MustParseAddr("fd00::a"), HTTPPort: DefaultHTTPPort}
	round := func(v int) (int64, SyncResult) {
		c.wireVersion = v
		before := mem.HTTPBytes.Load()
		res, err := c.SyncWith(context.Background(), peer)
		if err != nil {
			b.Fatalf("v%d: %v", v, err)
		}
		return mem.HTTPBytes.Load() - before, res
	}
	type figures struct{ inStep, newKey, replaced, entry int64 }
	var got [3]figures
	for i := 0; b.Loop(); i++ {
		for _, v := range []int{1, 2} {
			f := &got[v]
			if n, res := round(v); !res.InStep {
				b.Fatalf("v%d: not in step before the put: %+v", v, res)
			} else {
				f.inStep = n
			}
			w := writers[(2*i+v)%len(writers)]
			put := func(key string, value string) *crdt.Record {
				e := must(crdt.SignEntry(crdt.Entry{Network: id, Namespace: "services", Writer: w.Public(), Key: key,
					Time: now.Add(time.Duration(2*i+v) * time.Millisecond), Policy: crdt.PolicyLWW, Op: crdt.OpPut, Value: []byte(value)}, w))
				a.Publish(e)
				return e
			}
			e := put(fmt.Sprintf("_new%d._tcp", i), "0 0 9000 new")
			n, res := round(v)
			if res.Pulled != 1 || !c.holds(id, e.Hash()) {
				b.Fatalf("v%d new key: %+v", v, res)
			}
			f.newKey, f.entry = n, int64(e.Size())
			e = put("_svc0._tcp", fmt.Sprintf("0 0 8000 moved%d", i))
			n, res = round(v)
			if res.Pulled != 1 || !c.holds(id, e.Hash()) {
				b.Fatalf("v%d replaced value: %+v", v, res)
			}
			f.replaced = n
		}
	}
	b.ReportMetric(float64(dataJSON), "datajson-bytes")
	b.ReportMetric(float64(got[2].entry), "entry-bytes")
	for _, v := range []int{1, 2} {
		f := got[v]
		b.ReportMetric(float64(f.inStep), fmt.Sprintf("v%d-instep-bytes", v))
		b.ReportMetric(float64(f.newKey-f.entry), fmt.Sprintf("v%d-newkey-overhead-bytes", v))
		b.ReportMetric(float64(f.replaced-f.entry), fmt.Sprintf("v%d-replace-overhead-bytes", v))
	}
}
