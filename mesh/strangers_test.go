package mesh

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// A host that gossip never told of, whose fresh record arrives, is met
// within the grace period, not at the next rejoin of absent hosts (an
// hour away here).
func TestStrangerWithAFreshRecordIsMet(t *testing.T) {
	c := newCluster(t, 2, func(cfg *Config) { cfg.ReconnectInterval = time.Hour })
	c.waitConverged(20 * time.Second)
	eventually(t, 20*time.Second, "two members", func() bool { return c.nodes[0].node.MemberCount() == 1 })
	// A node on its own: no seeds, and it holds nobody's record.
	lone := c.add(2)
	lone.node.cfg.Seeds = nil
	lone.node.Publish(c.settings)
	c.startNode(lone)
	lone.node.Publish(c.hostRecord(lone))
	// Its record reaches node 0 by other means (a sync with a third party,
	// say); memberlist tells nobody of it.
	c.nodes[0].node.Publish(c.hostRecord(lone))
	eventually(t, strangerGrace+30*time.Second, "the stranger met", func() bool {
		return lone.node.MemberCount() == 2 && c.nodes[0].node.MemberCount() == 2 && c.nodes[1].node.MemberCount() == 2
	})
}

func TestStrangersNotedOnlyWhenNews(t *testing.T) {
	self, other, member, old := testKey("self"), testKey("other"), testKey("member"), testKey("old")
	now := time.Now()
	host := func(k crdt.PrivateKey, heartbeat time.Time) *crdt.Record {
		return must(crdt.SignHost(crdt.Host{Network: testKey("admin").Public(), Node: k.Public(), Heartbeat: heartbeat,
			Addresses: []netip.Addr{netip.MustParseAddr("fd00::9")}, GossipPort: 7946, HTTPPort: 7947}, k))
	}
	isMember := func(k crdt.PublicKey) bool { return k == member.Public() }
	s := newStrangers(self.Public(), nil)
	added := []*crdt.Record{
		host(self, now), host(member, now), // itself, a member
		host(old, now.Add(-strangerFresh-time.Second)), // what a bootstrap brings
		host(other, now.Add(-time.Minute)),             // a node started a minute before this one
	}
	if !s.note(added, now, now, isMember) {
		t.Fatal("the first stranger did not tell the join loop")
	}
	if s.note(added, now, now, isMember) {
		t.Fatal("a stranger already waiting told the join loop again")
	}
	if d, ok := s.next(now); !ok || d != strangerGrace {
		t.Fatalf("next = %v, %v; want the grace %v", d, ok, strangerGrace)
	}
	if got := s.take(now, strangerTries, isMember); len(got) != 0 {
		t.Fatalf("taken before the grace: %v", got)
	}
	got := s.take(now.Add(strangerGrace), strangerTries, isMember)
	if len(got) != 1 || len(got[0]) != 1 || got[0][0] != "[fd00::9]:7946" {
		t.Fatalf("taken = %v; want only the other host's gossip address", got)
	}
	if _, ok := s.next(now); ok {
		t.Fatal("a stranger still waits after it was taken")
	}
	// One listed by gossip during the grace is forgotten, not joined.
	s.note([]*crdt.Record{host(other, now)}, now, now, isMember)
	if got := s.take(now.Add(strangerGrace), strangerTries, func(crdt.PublicKey) bool { return true }); len(got) != 0 {
		t.Fatalf("a host gossip listed meanwhile was taken: %v", got)
	}
	if _, ok := s.next(now); ok {
		t.Fatal("a host gossip listed meanwhile still waits")
	}
	// A host at no address WireGuard routes would be refused: not tried.
	routed := newStrangers(self.Public(), func(a netip.Addr) bool { return a != netip.MustParseAddr("fd00::9") })
	if routed.note([]*crdt.Record{host(other, now)}, now, now, isMember) || len(routed.due) != 0 {
		t.Fatal("a host at no routed address waits to be met")
	}
	// The wait is bounded.
	for i := range 2 * maxStrangers {
		s.note([]*crdt.Record{host(testKey(string(rune('a'+i))), now)}, now, now, isMember)
	}
	if len(s.due) != maxStrangers {
		t.Fatalf("%d strangers wait; the bound is %d", len(s.due), maxStrangers)
	}
}

// Nodes started together: A's join with its seed S fails (cut off) and B
// joins A. Not being alone is not being in the mesh: once the cut heals,
// A still joins S, though neither holds a record of the other and the
// rejoin of absent hosts is an hour away.
func TestIslandJoinsItsSeedOnceItAnswers(t *testing.T) {
	c := newCluster(t, 0, func(cfg *Config) { cfg.ReconnectInterval = time.Hour })
	s, a, b := c.add(0), c.add(1), c.add(2)
	b.node.cfg.Seeds = []string{"[" + a.host + "]:7946"}
	c.net.Partition([]string{s.host}, []string{a.host, b.host})
	for _, tn := range []*testNode{s, a, b} {
		tn.node.Publish(c.settings)
		c.startNode(tn)
		tn.node.Publish(c.hostRecord(tn))
	}
	eventually(t, 20*time.Second, "a and b together", func() bool { return a.node.MemberCount() == 1 && b.node.MemberCount() == 1 })
	c.net.Heal()
	eventually(t, 60*time.Second, "one mesh of three", func() bool {
		return s.node.MemberCount() == 2 && a.node.MemberCount() == 2 && b.node.MemberCount() == 2
	})
	c.waitConverged(20 * time.Second)
}

// The rejoin of absent hosts tries the seeds no member is at, alone or
// not: an island that holds no record of the rest knows them only there.
func TestAbsentHostsOfferSeedsNoMemberIsAt(t *testing.T) {
	c := newCluster(t, 2, func(cfg *Config) { cfg.ReconnectInterval = time.Hour })
	eventually(t, 20*time.Second, "two members", func() bool { return c.nodes[1].node.MemberCount() == 1 })
	n := c.nodes[1].node
	listed, absent := "["+c.nodes[0].host+"]:7946", "[fd00::99]:7946"
	n.AddSeeds(absent)
	got := n.absentHosts(3, netip.Addr{})
	if !slices.Contains(got, absent) || slices.Contains(got, listed) {
		t.Fatalf("absent hosts %v: want the seed no member is at (%s), not the member's (%s)", got, absent, listed)
	}
}
