package mesh

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// cluster is N in-process nodes on a MemNetwork, all joined to one network
// whose settings name the test's witness, each publishing a host record.
type cluster struct {
	t        testing.TB
	net      *MemNetwork
	admin    crdt.PrivateKey
	witness  crdt.PrivateKey
	id       crdt.PublicKey
	nodes    []*testNode
	cfg      func(*Config)
	settings *crdt.Record
	// clock, if set, gives node i's store its clock (nil: time.Now).
	clock func(i int) func() time.Time
}

type testNode struct {
	key   crdt.PrivateKey
	host  string
	addr  netip.Addr
	state *crdt.State
	store *Store
	node  *Node
}

func newCluster(t testing.TB, n int, cfg func(*Config)) *cluster {
	return newClusterClock(t, n, cfg, nil)
}

// newClusterClock is newCluster with clock(i) as node i's store clock.
func newClusterClock(t testing.TB, n int, cfg func(*Config), clock func(i int) func() time.Time) *cluster {
	c := &cluster{t: t, net: NewMemNetwork(), admin: testKey("admin"), witness: testKey("witness"), cfg: cfg, clock: clock}
	c.id = c.admin.Public()
	for i := range n {
		c.add(i)
	}
	set := must(crdt.SignSettings(crdt.Settings{Network: c.id, Updated: time.Now().Add(-time.Minute), Domain: "mesh",
		HostTTL: time.Hour, DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{c.witness.Public()}}, c.admin))
	c.settings = set
	for _, tn := range c.nodes {
		tn.node.Publish(set) // as if bootstrapped with the network's settings
		c.startNode(tn)
	}
	for _, tn := range c.nodes {
		tn.node.Publish(c.hostRecord(tn))
	}
	t.Cleanup(c.stop)
	return c
}

func (c *cluster) add(i int) *testNode {
	key := testKey(fmt.Sprint("node", i))
	addr := clusterAddr(i)
	tn := &testNode{key: key, host: addr.String(), addr: addr}
	tn.state = crdt.NewState(crdt.DefaultOptions(), c.id)
	var now func() time.Time
	if c.clock != nil {
		now = c.clock(i)
	}
	tn.store = NewStore(tn.state, now)
	c.nodes = append(c.nodes, tn)
	c.newNode(tn)
	return tn
}

// clusterAddr is the address of a cluster's i-th node.
func clusterAddr(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfd, 14: byte(i >> 8), 15: byte(i + 1)})
}

func (c *cluster) newNode(tn *testNode) {
	cfg := Config{
		Key: tn.key, BindAddr: tn.addr, Routed: func(netip.Addr) bool { return true },
		Transport:         c.net.Transport(tn.host, DefaultGossipPort),
		HTTPClient:        c.net.HTTPClient(tn.host),
		SyncInterval:      200 * time.Millisecond,
		GossipInterval:    50 * time.Millisecond,
		ReconnectInterval: 300 * time.Millisecond,
	}
	if len(c.nodes) > 1 {
		cfg.Seeds = []string{"[" + c.nodes[0].host + "]:7946"}
	}
	if c.cfg != nil {
		c.cfg(&cfg)
	}
	tn.node = must(New(cfg, tn.store))
}

func (c *cluster) startNode(tn *testNode) {
	c.net.Serve(tn.host, tn.node.Handler())
	if err := tn.node.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) stop() {
	for _, tn := range c.nodes {
		tn.node.Stop()
	}
}

func (c *cluster) hostRecord(tn *testNode) *crdt.Record {
	return must(crdt.SignHost(crdt.Host{Network: c.id, Node: tn.key.Public(), Heartbeat: time.Now(),
		Addresses: []netip.Addr{tn.addr}, GossipPort: DefaultGossipPort, HTTPPort: DefaultHTTPPort}, tn.key))
}

// claim makes tn claim name and has the witness countersign it at once;
// both are published at tn.
func (c *cluster) claim(tn *testNode, name string) (*crdt.Record, *crdt.Record) {
	cl := must(crdt.SignClaim(crdt.Claim{Network: c.id, Node: tn.key.Public(), Name: name, Created: time.Now()}, tn.key))
	w := must(crdt.WitnessClaim(c.id, cl.Hash(), time.Now(), c.witness))
	if res := tn.node.Publish(cl, w); len(res.Rejected) > 0 {
		c.t.Fatalf("publishing claim: %v", res.Rejected)
	}
	return cl, w
}

func (tn *testNode) fingerprint(id crdt.PublicKey) (f crdt.Fingerprint) {
	tn.store.Read(func(st *crdt.State) { f = st.Fingerprint(id) })
	return f
}

func (tn *testNode) holds(id crdt.PublicKey, h crdt.Hash) (ok bool) {
	tn.store.Read(func(st *crdt.State) { ok = st.Lookup(id, h) != nil })
	return ok
}

func (tn *testNode) resolves(id crdt.PublicKey, fqdn string) (node crdt.PublicKey) {
	tn.store.Read(func(st *crdt.State) {
		if e := st.View(crdt.ViewConfig{Networks: []crdt.JoinedNetwork{{ID: id}}}, time.Now()).Names[fqdn]; e != nil {
			node = e.Node
		}
	})
	return node
}

// converged reports whether the given nodes (all, if none) hold identical
// states.
func (c *cluster) converged(nodes ...*testNode) bool {
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	want := nodes[0].fingerprint(c.id)
	for _, tn := range nodes[1:] {
		if tn.fingerprint(c.id) != want {
			return false
		}
	}
	return true
}

func (c *cluster) waitConverged(timeout time.Duration, nodes ...*testNode) {
	c.t.Helper()
	eventually(c.t, timeout, "identical state digests", func() bool { return c.converged(nodes...) })
}
