package mesh

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/hashicorp/memberlist"
)

// bareDelegate is a memberlist delegate with fixed metadata: a node that
// speaks gossip but is not an agent (or forges what an agent says).
type bareDelegate struct{ meta []byte }

func (d bareDelegate) NodeMeta(int) []byte               { return d.meta }
func (d bareDelegate) NotifyMsg([]byte)                  {}
func (d bareDelegate) GetBroadcasts(int, int) [][]byte   { return nil }
func (d bareDelegate) LocalState(bool) []byte            { return nil }
func (d bareDelegate) MergeRemoteState(b []byte, j bool) {}

// impostor joins the cluster's gossip at host as a bare memberlist named
// name; its join may well be refused.
func (c *cluster) impostor(t *testing.T, host, name string, meta []byte) *memberlist.Memberlist {
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.Transport = c.net.Transport(host, DefaultGossipPort)
	mc.Delegate = bareDelegate{meta}
	mc.PushPullInterval = 0
	mc.Logger = log.New(io.Discard, "", 0)
	ml := must(memberlist.Create(mc))
	t.Cleanup(func() { ml.Shutdown() })
	_, _ = ml.Join([]string{"[" + c.nodes[0].host + "]:7946"})
	return ml
}

// lists reports whether tn counts name among its members: the agent's own
// list (sync, fetch) or memberlist's (probes, gossip).
func (tn *testNode) lists(name string) bool {
	if slices.ContainsFunc(tn.node.Members(), func(m Member) bool { return m.Name == name }) {
		return true
	}
	return slices.ContainsFunc(tn.node.ml.Members(), func(m *memberlist.Node) bool { return m.Name == name })
}

func (c *cluster) waitMembership(t *testing.T, want int) {
	t.Helper()
	eventually(t, 60*time.Second, "full membership", func() bool {
		for _, tn := range c.nodes {
			if tn.node.MemberCount() != want {
				return false
			}
		}
		return true
	})
}

// Anyone who reaches the gossip port could join under any name: a member
// must prove its key. Without a proof, with another node's proof, or with
// a proof of its own but a banned key, a would-be member is refused by
// every node, each refusal counted by its reason.
func TestMembersProveTheirKey(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.waitMembership(t, 2)
	banned := testKey("banned")
	set := must(crdt.SignSettings(crdt.Settings{Network: c.id, Updated: time.Now(), Domain: "mesh", HostTTL: time.Hour,
		DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{c.witness.Public()}, Banned: []crdt.PublicKey{banned.Public()}}, c.admin))
	c.nodes[0].node.Publish(set)
	eventually(t, 30*time.Second, "the settings with the ban everywhere", func() bool {
		for _, tn := range c.nodes {
			if !tn.holds(c.id, set.Hash()) {
				return false
			}
		}
		return true
	})

	noProof := testKey("no-proof").Public().String()
	c.impostor(t, "fd00::a1", noProof, nil)
	forged := testKey("forged").Public().String()
	c.impostor(t, "fd00::a2", forged, c.nodes[1].node.nodeMeta()) // node 1's valid proof, for node 1
	// The banned key runs a real node, whose proof is good.
	bn := &testNode{key: banned, host: "fd00::a3", addr: netip.MustParseAddr("fd00::a3")}
	bn.state = crdt.NewState(crdt.DefaultOptions(), c.id)
	bn.store = NewStore(bn.state, nil)
	c.newNode(bn)
	c.startNode(bn)
	t.Cleanup(bn.node.Stop)
	bn.node.AddSeeds("[" + c.nodes[0].host + "]:7946")

	eventually(t, 30*time.Second, "the refusals counted", func() bool {
		r := c.nodes[0].node.Refusals()
		return r[ReasonBadProof] >= 2 && r[ReasonMemberBanned] >= 1
	})
	for _, tn := range c.nodes {
		for _, name := range []string{noProof, forged, banned.Public().String()} {
			if tn.lists(name) {
				t.Errorf("%s lists the refused member %.10s", tn.host, name)
			}
		}
	}
	if c.nodes[0].node.MemberCount() != 2 {
		t.Errorf("the honest members were lost: %v", c.nodes[0].node.Members())
	}
}

// A member whose gossip address WireGuard does not route is refused.
func TestMemberNotRoutedIsRefused(t *testing.T) {
	unrouted := netip.AddrFrom16([16]byte{0xfd, 15: 3}) // node 2's address
	c := newCluster(t, 3, func(cfg *Config) { cfg.Routed = func(a netip.Addr) bool { return a != unrouted } })
	eventually(t, 60*time.Second, "nodes 0 and 1 to be members of each other", func() bool {
		return c.nodes[0].node.MemberCount() == 1 && c.nodes[1].node.MemberCount() == 1
	})
	eventually(t, 30*time.Second, "the refusal counted", func() bool { return c.nodes[0].node.Refusals()[ReasonNotRouted] > 0 })
	name := c.nodes[2].key.Public().String()
	for _, tn := range c.nodes[:2] {
		if tn.lists(name) {
			t.Errorf("%s lists the unrouted member", tn.host)
		}
	}
}

// A ban drops its member from every node within seconds: from the members
// the node syncs with at once, and from memberlist (no more probes or
// gossip) once its failure detection has found it silent.
func TestABanDropsItsMemberWithinSeconds(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.waitMembership(t, 3)
	victim := c.nodes[3]
	name := victim.key.Public().String()
	set := must(crdt.SignSettings(crdt.Settings{Network: c.id, Updated: time.Now(), Domain: "mesh", HostTTL: time.Hour,
		DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{c.witness.Public()}, Banned: []crdt.PublicKey{victim.key.Public()}}, c.admin))
	start := time.Now()
	c.nodes[0].node.Publish(set)
	eventually(t, 60*time.Second, "the banned member gone from every other node", func() bool {
		for _, tn := range c.nodes[:3] {
			if tn.lists(name) {
				return false
			}
		}
		return true
	})
	t.Logf("the banned member left every node %v after the ban was published", time.Since(start).Round(10*time.Millisecond))
	for _, tn := range c.nodes[:3] {
		if tn.node.MemberCount() != 2 {
			t.Errorf("%s lost honest members: %v", tn.host, tn.node.Members())
		}
	}
}

// busyTransport is a transport as memberlist's NetTransport is: its
// listener hands every packet over on an unbuffered channel, and Shutdown
// waits for the listener to end.
type busyTransport struct {
	memberlist.NodeAwareTransport // only the methods below are called
	packets                       chan *memberlist.Packet
	streams                       chan net.Conn
	stop                          chan struct{}
	listener                      sync.WaitGroup
}

func (b *busyTransport) PacketCh() <-chan *memberlist.Packet { return b.packets }
func (b *busyTransport) StreamCh() <-chan net.Conn           { return b.streams }
func (b *busyTransport) Shutdown() error {
	close(b.stop)
	b.listener.Wait()
	return nil
}

// A peer still gossiping while the node shuts down: the filter keeps
// taking packets until the inner transport has stopped, so Shutdown
// returns (it stopped forwarding first, the listener blocked on its
// hand-over, and an agent hung on SIGTERM about once in 30 stops).
func TestFilterTransportShutsDownUnderTraffic(t *testing.T) {
	inner := &busyTransport{packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), stop: make(chan struct{})}
	inner.listener.Add(1)
	go func() { // the listener: a packet arrives all the time
		defer inner.listener.Done()
		from := &net.UDPAddr{IP: net.ParseIP("fd00::2"), Port: 7946}
		for {
			// As NetTransport.udpListen: a plain send, then a look at
			// whether it was shut down.
			inner.packets <- &memberlist.Packet{Buf: []byte("x"), From: from, Timestamp: time.Now()}
			select {
			case <-inner.stop:
				return
			default:
			}
		}
	}()
	ft := newFilterTransport(inner, &addrSet{})
	// Nobody reads the filter's channel (memberlist reads until its own
	// Shutdown returns; here it has stopped first, the worst order): once
	// its buffer is full the forwarder waits with a packet in hand, and
	// the listener waits on its hand-over.
	eventually(t, 10*time.Second, "the filter's buffer to fill", func() bool { return len(ft.packets) == cap(ft.packets) })
	done := make(chan error, 1)
	go func() { done <- ft.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return while packets kept arriving")
	}
}

// randomPeer takes only members that pass shun and the penalty box,
// prefers those avoid does not name, and picks uniformly among them.
func TestRandomPeerPicksAmongThosePassing(t *testing.T) {
	n := &Node{members: map[string]Member{}, limits: &peerLimits{peers: map[netip.Addr]*peerState{}}}
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}) }
	for i := range 10 {
		n.members[fmt.Sprint("m", i)] = Member{Name: fmt.Sprint("m", i), Addr: addr(i)}
	}
	now := time.Now()
	n.limits.peers[addr(0)] = &peerState{badUntil: now.Add(time.Hour)} // penalized
	shun := func(a netip.Addr, _ time.Time) bool { return a == addr(1) || a == addr(2) }
	avoid := func(a netip.Addr, _ time.Time) bool { return a.As4()[3] >= 6 } // 6..9 avoided
	seen := map[string]int{}
	for range 4000 {
		m, ok := n.randomPeer(shun, avoid)
		if !ok {
			t.Fatal("no peer, with three that pass")
		}
		seen[m.Name]++
	}
	if len(seen) != 3 {
		t.Fatalf("picked %v; want only m3, m4, m5 (passing, not avoided)", seen)
	}
	for name, k := range seen {
		if name != "m3" && name != "m4" && name != "m5" {
			t.Fatalf("picked %s (%v)", name, seen)
		}
		if k < 1000 || k > 1700 { // 1333 expected, sigma about 30: only a bias fails
			t.Errorf("%s picked %d times of 4000: not uniform (%v)", name, k, seen)
		}
	}
	// All avoided: any that passes shun and the penalty box.
	all := func(netip.Addr, time.Time) bool { return true }
	fell := map[string]bool{}
	for range 400 {
		m, ok := n.randomPeer(shun, all)
		if !ok || m.Name == "m0" || m.Name == "m1" || m.Name == "m2" {
			t.Fatalf("with every member avoided: %v, %v", m.Name, ok)
		}
		fell[m.Name] = true
	}
	if len(fell) != 7 {
		t.Errorf("with every member avoided, picked %v; want all of m3..m9", fell)
	}
	if m, ok := n.randomPeer(all, all); ok {
		t.Errorf("every member shunned, yet picked %s", m.Name)
	}
}

// A reconnection round joins one absent host, the first that answers: one
// push/pull, not one per candidate.
func TestRejoinJoinsTheFirstThatAnswers(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) {
		cfg.Seeds = nil // four nodes alone: only rejoinOne joins them
		cfg.ReconnectInterval = time.Hour
	})
	addr := func(tn *testNode) string { return "[" + tn.host + "]:7946" }
	down := "[" + clusterAddr(9).String() + "]:7946" // nobody serves it
	c.nodes[0].node.rejoinOne([]string{down, addr(c.nodes[1]), addr(c.nodes[2]), addr(c.nodes[3])})
	if got := c.nodes[0].node.ml.NumMembers(); got != 2 {
		t.Fatalf("after one rejoin the node has %d gossip members with itself, want 2 (itself and the first that answered)", got)
	}
	if _, ok := c.nodes[0].node.member(c.nodes[1].key.Public().String()); !ok {
		t.Fatal("the first candidate that answered was not joined")
	}
}

func TestReconnectScaleFollowsMemberlistsPushPullRule(t *testing.T) {
	base := 30 * time.Second
	for _, tc := range []struct {
		members int
		want    time.Duration
	}{{1, base}, {32, base}, {33, 2 * base}, {64, 2 * base}, {65, 3 * base}, {800, 6 * base}, {10000, 10 * base}} {
		if got := ReconnectScale(base, tc.members); got != tc.want {
			t.Errorf("ReconnectScale(30s, %d) = %v, want %v", tc.members, got, tc.want)
		}
	}
}

// Members whose proofs have aged past proofMaxAge are dropped at the next
// recheck, and come back once their proofs are young again (here: the
// judge's clock set back).
func TestMembersWithAgedProofsAreDroppedAndComeBack(t *testing.T) {
	var ahead atomic.Int64 // node 0's clock runs this far ahead
	c := newClusterClock(t, 3, nil, func(i int) func() time.Time {
		if i != 0 {
			return nil
		}
		return func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	})
	c.waitMembership(t, 2)
	judge := c.nodes[0].node
	ahead.Store(int64(proofMaxAge + time.Minute))
	judge.recheckMembers()
	if got := judge.MemberCount(); got != 0 {
		t.Fatalf("%d members kept with proofs older than %v", got, proofMaxAge)
	}
	if judge.Refusals()[ReasonStaleProof] == 0 {
		t.Fatalf("no stale-proof refusal counted: %v", judge.Refusals())
	}
	ahead.Store(0)
	judge.recheckMembers()
	eventually(t, 60*time.Second, "the members back once their proofs are young", func() bool { return judge.MemberCount() == 2 })
}

// Given every address of a mesh (the WireGuard peers of a node that has
// just come up), a node joins one that answers, not each in turn:
// memberlist's Join pulls the whole member list from every address it is
// given, which at 10,000 peers is 10,000 lists of 10,000 members. Half the
// addresses here are dead; the join still needs at most seedTries tries,
// and gossip brings the node every member.
func TestAddSeedsJoinsOneAddressNotEach(t *testing.T) {
	c := newCluster(t, 8, nil)
	eventually(t, 60*time.Second, "the cluster to form", func() bool {
		for _, tn := range c.nodes {
			if tn.node.MemberCount() != 7 {
				return false
			}
		}
		return true
	})
	var seeds []string
	for i, tn := range c.nodes {
		seeds = append(seeds, "["+tn.host+"]:7946", fmt.Sprintf("[fd00::dead:%d]:7946", i))
	}
	fresh := &testNode{key: testKey("fresh"), host: "fd00::f1", addr: netip.MustParseAddr("fd00::f1")}
	fresh.state = crdt.NewState(crdt.DefaultOptions(), c.id)
	fresh.store = NewStore(fresh.state, nil)
	c.newNode(fresh)
	fresh.node.cfg.Seeds = nil
	c.nodes = append(c.nodes, fresh)
	fresh.node.Publish(c.settings)
	c.startNode(fresh)
	fresh.node.Publish(c.hostRecord(fresh))
	tr := fresh.node.cfg.Transport.(*MemTransport)
	before := tr.Dials.Load()
	fresh.node.AddSeeds(seeds...)
	eventually(t, 30*time.Second, "the fresh node to join", func() bool { return fresh.node.MemberCount() > 0 })
	d := tr.Dials.Load() - before
	t.Logf("%d dials to join, for %d addresses", d, len(seeds))
	if d > seedTries {
		t.Errorf("joining took %d dials, want at most %d", d, seedTries)
	}
	eventually(t, 60*time.Second, "gossip to bring every member", func() bool { return fresh.node.MemberCount() == 8 })
	if got := fresh.node.seeds(); len(got) != len(seeds) {
		t.Errorf("%d seeds kept to try again, want %d", len(got), len(seeds))
	}
}

// absentHosts picks live hosts that gossip does not list, uniformly, never
// a member or this node: over many picks of 3 among 60 absent hosts, each
// is picked, and no pick repeats an address; a preferred one comes first.
func TestAbsentHostsSamplesTheAbsent(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.waitMembership(t, 1)
	a := c.nodes[0]
	absent := map[string]bool{}
	for i := range 60 {
		k := testKey(fmt.Sprint("absent", i))
		addr := netip.AddrFrom16([16]byte{0xfd, 0xab, 14: byte(i >> 8), 15: byte(i)})
		h := must(crdt.SignHost(crdt.Host{Network: c.id, Node: k.Public(), Heartbeat: time.Now(), Addresses: []netip.Addr{addr},
			GossipPort: DefaultGossipPort, HTTPPort: DefaultHTTPPort}, k))
		if res := a.store.Ingest([]*crdt.Record{h}); len(res.Rejected) > 0 {
			t.Fatal(res.Rejected)
		}
		absent[net.JoinHostPort(addr.String(), "7946")] = true
	}
	picked := map[string]int{}
	for range 400 {
		got := a.node.absentHosts(3, netip.Addr{})
		if len(got) != 3 || got[0] == got[1] || got[1] == got[2] || got[0] == got[2] {
			t.Fatalf("absentHosts(3) = %v", got)
		}
		for _, g := range got {
			if !absent[g] {
				t.Fatalf("picked %s, not an absent host (a member, or this node)", g)
			}
			picked[g]++
		}
	}
	if len(picked) != len(absent) {
		t.Errorf("%d of the %d absent hosts were ever picked", len(picked), len(absent))
	}
	// A preferred address (a bootstrap source's) comes first, beside the k.
	src := netip.AddrFrom16([16]byte{0xfd, 0xab, 15: 41})
	if got := a.node.absentHosts(3, src); len(got) != 4 || got[0] != net.JoinHostPort(src.String(), "7946") || slices.Contains(got[1:], got[0]) {
		t.Errorf("absentHosts(3, %s) = %v, want it first and 3 others", src, got)
	}
}
