package mesh

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/hashicorp/memberlist"
)

// The figures of the mesh issue, each next to its comparison in the same run:
//
//	go test -run XXX -bench 'Propagation|AntiEntropyBytes' -benchtime 5x ./mesh

// BenchmarkAntiEntropyBytes: two nodes holding the same hosts (at 1,000
// hosts each with a claim and an attestation; at 100,000 the host records
// alone, to keep the set-up to a minute). The bytes of a round when nothing
// changed, next to the size of the full data.json; then the bytes to sync
// one changed record (a new heartbeat: the old version goes, the new one
// comes, a difference of two), next to the record's size. HTTP headers are
// counted as MemNetwork counts them. v=1 is today's bucket exchange, v=2
// the riblt symbols, on the same states in the same run.
//
//	go test ./mesh -run '^$' -bench AntiEntropyBytes -benchtime 20x
func BenchmarkAntiEntropyBytes(b *testing.B) {
	for _, hosts := range []int{1000, 100000} {
		b.Run(fmt.Sprint("hosts=", hosts), func(b *testing.B) { antiEntropyBytes(b, hosts) })
	}
}

// bytesPair is two nodes on a MemNetwork holding the same hosts.
type bytesPair struct {
	id       crdt.PublicKey
	a, c     *Node
	peerA    Member
	mem      *MemNetwork
	keys     []crdt.PrivateKey
	now      time.Time
	dataJSON int
}

func newBytesPair(tb testing.TB, hosts int) *bytesPair {
	admin, w := testKey("admin"), testKey("witness")
	p := &bytesPair{id: admin.Public(), now: time.Now(), mem: NewMemNetwork()}
	set := must(crdt.SignSettings(crdt.Settings{Network: p.id, Updated: p.now, Domain: "mesh", HostTTL: time.Hour,
		Witnesses: []crdt.PublicKey{w.Public()}}, admin))
	recs := []*crdt.Record{set}
	for i := range hosts {
		k := testKey(fmt.Sprint("host", i))
		p.keys = append(p.keys, k)
		addr := netip.AddrFrom16([16]byte{0xfd, 15: byte(i), 14: byte(i >> 8), 13: byte(i >> 16)})
		recs = append(recs, must(crdt.SignHost(crdt.Host{Network: p.id, Node: k.Public(), Heartbeat: p.now,
			Addresses: []netip.Addr{addr}, GossipPort: 7946, HTTPPort: 7331, DNSPort: 53}, k)))
		if hosts <= 1000 {
			c := must(crdt.SignClaim(crdt.Claim{Network: p.id, Node: k.Public(), Name: fmt.Sprint("host", i), Created: p.now}, k))
			recs = append(recs, c, must(crdt.WitnessClaim(p.id, c.Hash(), p.now, w)))
		}
	}
	first := NewStore(crdt.NewState(crdt.DefaultOptions(), p.id), nil)
	if res := first.Ingest(recs); len(res.Rejected) > 0 {
		tb.Fatal(res.Rejected[0])
	}
	var verified []crdt.Verified
	first.Read(func(st *crdt.State) { verified = st.Verified(p.id) })
	mk := func(host string, st *Store) *Node {
		if st == nil {
			st = NewStore(crdt.NewState(crdt.DefaultOptions(), p.id), nil)
			st.Read(func(s *crdt.State) { s.Restore(verified, p.now) }) // verified above
		}
		n := must(New(Config{Key: testKey(host), Routed: func(netip.Addr) bool { return true }, BindAddr: netip.MustParseAddr(host), HTTPClient: p.mem.HTTPClient(host),
			PeerRate: 1e6, PeerBurst: 1 << 20}, st)) // rounds back to back
		p.mem.Serve(host, n.Handler())
		return n
	}
	p.a, p.c = mk("fd00::a", first), mk("fd00::c", nil)
	p.peerA = Member{Addr: netip.MustParseAddr("fd00::a"), HTTPPort: DefaultHTTPPort}
	p.a.store.Read(func(st *crdt.State) { p.dataJSON = len(must(crdt.EncodeDataJSON(st, p.id))) })
	// Build the encoders' first symbols before measuring (a running node
	// has them from its first round).
	for _, n := range []*Node{p.a, p.c} {
		n.store.Read(func(st *crdt.State) { must(st.SymbolRun(p.id, 0, 64, 0)) })
	}
	return p
}

// roundBytes measures, in version v, an in-step round and then the round
// after a changed record (the i-th heartbeat), both on the wire.
func (p *bytesPair) roundBytes(tb testing.TB, v, i int) (inStep, change, recSize int64) {
	p.c.wireVersion = v
	before := p.mem.HTTPBytes.Load()
	res, err := p.c.SyncWith(context.Background(), p.peerA)
	if err != nil || !res.InStep {
		tb.Fatalf("v%d in-step round: %+v %v", v, res, err)
	}
	inStep = p.mem.HTTPBytes.Load() - before
	k := p.keys[i%len(p.keys)]
	h := must(crdt.SignHost(crdt.Host{Network: p.id, Node: k.Public(), Heartbeat: p.now.Add(time.Duration(i+1) * time.Millisecond),
		Addresses: []netip.Addr{netip.MustParseAddr("fd00::1")}, GossipPort: 7946, HTTPPort: 7331, DNSPort: 53}, k))
	p.a.Publish(h)
	before = p.mem.HTTPBytes.Load()
	res, err = p.c.SyncWith(context.Background(), p.peerA)
	if err != nil || res.Pulled != 1 || res.Fallback != 0 {
		tb.Fatalf("v%d one-change round: %+v %v", v, res, err)
	}
	if !p.c.holds(p.id, h.Hash()) {
		tb.Fatalf("v%d: the changed record did not arrive", v)
	}
	return inStep, p.mem.HTTPBytes.Load() - before, int64(len(h.Bytes()))
}

func antiEntropyBytes(b *testing.B, hosts int) {
	p := newBytesPair(b, hosts)
	type figures struct{ inStep, change, recSize int64 }
	var got [3]figures
	for i := 0; b.Loop(); i++ {
		for _, v := range []int{1, 2} {
			f := &got[v]
			f.inStep, f.change, f.recSize = p.roundBytes(b, v, 2*i+v)
		}
	}
	b.ReportMetric(float64(p.dataJSON), "datajson-bytes")
	for _, v := range []int{1, 2} {
		f := got[v]
		b.ReportMetric(float64(f.inStep), fmt.Sprintf("v%d-instep-bytes", v))
		b.ReportMetric(float64(f.change-f.recSize), fmt.Sprintf("v%d-onechange-overhead-bytes", v))
	}
	b.ReportMetric(float64(got[2].recSize), "record-bytes")
	b.ReportMetric(100*float64(got[2].inStep)/float64(p.dataJSON), "v2-instep-%-of-datajson")
}

func (n *Node) holds(id crdt.PublicKey, h crdt.Hash) (ok bool) {
	n.store.Read(func(st *crdt.State) { ok = st.Lookup(id, h) != nil })
	return ok
}

// BenchmarkPropagation: the time for a new claim (and the attestation that
// activates it) published at one node to be active in every node's view,
// next to the time memberlist takes to spread a payload of the same size
// epidemically (each receiver re-broadcasts once, as Serf does), on the same
// in-memory network with the same gossip settings. Trials alternate.
func BenchmarkPropagation(b *testing.B) {
	for _, n := range []int{16, 64, 128} {
		b.Run(fmt.Sprint("N=", n), func(b *testing.B) {
			cfg := func(c *Config) {
				c.GossipInterval = 200 * time.Millisecond // memberlist's LAN default
				c.SyncInterval = 2 * time.Second
				c.ReconnectInterval = 30 * time.Second
			}
			c := newCluster(b, n, cfg)
			eventually(b, 120*time.Second, "full membership", func() bool {
				return slices.IndexFunc(c.nodes, func(tn *testNode) bool { return tn.node.MemberCount() != n-1 }) < 0
			})
			c.waitConverged(120 * time.Second)
			base := newBaseline(b, n)
			var ours, theirs []time.Duration
			for i := 0; b.Loop(); i++ {
				name := fmt.Sprint("p", i)
				origin := c.nodes[i%n]
				start := time.Now()
				cl, att := c.claim(origin, name)
				eventually(b, 60*time.Second, "the claim in every view", func() bool {
					for _, tn := range c.nodes {
						if !tn.holds(c.id, cl.Hash()) || !tn.holds(c.id, att.Hash()) {
							return false
						}
					}
					return true
				})
				ours = append(ours, time.Since(start))
				theirs = append(theirs, base.spread(b, i, len(cl.Bytes())+len(att.Bytes())))
			}
			mo, mt := median(ours), median(theirs)
			b.ReportMetric(float64(mo.Milliseconds()), "ours-ms")
			b.ReportMetric(float64(mt.Milliseconds()), "memberlist-ms")
			b.ReportMetric(float64(mo)/float64(mt), "ratio")
		})
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// baseline is a plain memberlist cluster whose delegate re-broadcasts each
// payload once on first receipt.
type baseline struct {
	nodes []*baseNode
	kinds packetKinds // what its nodes sent (TestScale's baseline)
}

type baseNode struct {
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue
	mu    sync.Mutex
	seen  map[string]time.Time
	meta  []byte
}

func (d *baseNode) NodeMeta(int) []byte { return d.meta }
func (d *baseNode) NotifyMsg(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := string(b[:8])
	if _, ok := d.seen[id]; ok {
		return
	}
	d.seen[id] = time.Now()
	d.queue.QueueBroadcast(&plainBroadcast{msg: append([]byte(nil), b...)})
}
func (d *baseNode) GetBroadcasts(o, l int) [][]byte   { return d.queue.GetBroadcasts(o, l) }
func (d *baseNode) LocalState(bool) []byte            { return nil }
func (d *baseNode) MergeRemoteState(b []byte, j bool) {}

// plainBroadcast is a payload in plain memberlist's own queue.
type plainBroadcast struct{ msg []byte }

func (b *plainBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *plainBroadcast) Message() []byte                       { return b.msg }
func (b *plainBroadcast) Finished()                             {}

func newBaseline(b *testing.B, n int) *baseline { return newBaselineT(b, n) }

func newBaselineT(b testing.TB, n int) *baseline {
	mem := NewMemNetwork()
	bl := &baseline{}
	for i := range n {
		host := netip.AddrFrom16([16]byte{0xfe, 15: byte(i + 1), 14: byte(i >> 8)}).String()
		d := &baseNode{seen: map[string]time.Time{}}
		mc := memberlist.DefaultLANConfig()
		mc.Name = host
		mc.Transport = mem.Transport(host, 7946)
		mc.Delegate = d
		mc.PushPullInterval = 0
		mc.Logger = log.New(io.Discard, "", 0)
		ml := must(memberlist.Create(mc))
		d.ml = ml
		d.queue = &memberlist.TransmitLimitedQueue{NumNodes: ml.NumMembers, RetransmitMult: mc.RetransmitMult}
		if i > 0 {
			must(ml.Join([]string{"[" + bl.nodes[0].ml.LocalNode().Addr.String() + "]:7946"}))
		}
		bl.nodes = append(bl.nodes, d)
	}
	b.Cleanup(func() {
		for _, d := range bl.nodes {
			d.ml.Shutdown()
		}
	})
	deadline := time.Now().Add(120 * time.Second)
	for slices.IndexFunc(bl.nodes, func(d *baseNode) bool { return d.ml.NumMembers() != n }) >= 0 {
		if time.Now().After(deadline) {
			mn, mx := n, 0
			for _, d := range bl.nodes {
				mn, mx = min(mn, d.ml.NumMembers()), max(mx, d.ml.NumMembers())
			}
			b.Fatalf("baseline membership incomplete after 2 minutes: between %d and %d of %d", mn, mx, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return bl
}

func (bl *baseline) spread(b *testing.B, trial, size int) time.Duration {
	id := fmt.Sprintf("%08d", trial)
	payload := append([]byte(id), make([]byte, size-len(id))...)
	origin := bl.nodes[trial%len(bl.nodes)]
	start := time.Now()
	origin.NotifyMsg(payload) // the origin "receives" it and broadcasts
	eventually(b, 60*time.Second, "the payload on every baseline node", func() bool {
		for _, d := range bl.nodes {
			d.mu.Lock()
			_, ok := d.seen[id]
			d.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}
