package mesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/hashicorp/memberlist"
)

func TestThreeNodes(t *testing.T) {
	c := newCluster(t, 3, nil)
	for i, tn := range c.nodes {
		c.claim(tn, []string{"mors", "styx", "lethe"}[i])
	}
	c.waitConverged(10 * time.Second)
	if got := c.nodes[0].fingerprint(c.id).Count; got != 1+3+3+3 {
		t.Fatalf("state has %d records, want settings + 3 hosts + 3 claims + 3 attestations", got)
	}
	for _, tn := range c.nodes {
		for i, name := range []string{"mors.mesh", "styx.mesh", "lethe.mesh"} {
			if got := tn.resolves(c.id, name); got != c.nodes[i].key.Public() {
				t.Errorf("%s resolves %s to %s", tn.host, name, got.Short())
			}
		}
	}
}

func Test64NodesConverge(t *testing.T) {
	if testing.Short() {
		t.Skip("64 nodes")
	}
	start := time.Now()
	c := newCluster(t, 64, func(cfg *Config) { cfg.SyncInterval = time.Second })
	for i, tn := range c.nodes {
		c.claim(tn, fmt.Sprintf("n%d", i))
	}
	c.waitConverged(60 * time.Second)
	t.Logf("64 nodes converged on %d records in %v", c.nodes[0].fingerprint(c.id).Count, time.Since(start).Round(time.Millisecond))
	if got := c.nodes[0].fingerprint(c.id).Count; got != 1+3*64 {
		t.Fatalf("%d records, want %d", got, 1+3*64)
	}
	last := c.nodes[63]
	if got := last.resolves(c.id, "n0.mesh"); got != c.nodes[0].key.Public() {
		t.Fatalf("n0.mesh on the last node: %s", got.Short())
	}
}

// Cut the mesh in two, write on both sides, heal: every node ends with the
// same digest and the same view.
func TestPartitionHeal(t *testing.T) {
	c := newCluster(t, 16, nil)
	c.waitConverged(20 * time.Second)
	a, b := c.nodes[:8], c.nodes[8:]
	hosts := func(ns []*testNode) []string {
		var out []string
		for _, tn := range ns {
			out = append(out, tn.host)
		}
		return out
	}
	c.net.Partition(hosts(a), hosts(b))
	// Both sides claim the same name: the earliest attestation must win
	// everywhere after the heal.
	c.claim(a[1], "shared")
	time.Sleep(2 * time.Millisecond) // distinct attestation times (the clock's granularity, not a wait for an event)
	c.claim(b[1], "shared")
	c.claim(a[2], "only-a")
	c.claim(b[2], "only-b")
	c.waitConverged(20*time.Second, a...)
	c.waitConverged(20*time.Second, b...)
	if a[0].fingerprint(c.id) == b[0].fingerprint(c.id) {
		t.Fatal("the partition let records through")
	}
	if a[0].resolves(c.id, "shared.mesh") != a[1].key.Public() || b[0].resolves(c.id, "shared.mesh") != b[1].key.Public() {
		t.Fatal("each side should see its own claim while cut off")
	}
	c.net.Heal()
	c.waitConverged(60 * time.Second)
	for _, tn := range c.nodes {
		if tn.resolves(c.id, "shared.mesh") != a[1].key.Public() {
			t.Fatalf("%s: shared.mesh does not go to the earliest claim", tn.host)
		}
		if tn.resolves(c.id, "only-a.mesh").IsZero() || tn.resolves(c.id, "only-b.mesh").IsZero() {
			t.Fatalf("%s: lost a side's names", tn.host)
		}
	}
}

// A member that gossips and pushes forged records: nobody stores them,
// nobody forwards them, and the pusher is ignored.
func TestForgedRecordsRejectedNotPropagated(t *testing.T) {
	c := newCluster(t, 6, nil)
	c.waitConverged(20 * time.Second)
	evil := c.nodes[5]
	victim := c.nodes[1]
	// A host record for the victim, signed by the evil node's key.
	h := crdt.Host{Network: c.id, Node: victim.key.Public(), Heartbeat: time.Now(),
		Addresses: []netip.Addr{netip.MustParseAddr("fd66::66")}}
	forged := forgeHost(t, h, evil.key)
	// A real claim of the evil node, one byte changed.
	cl := must(crdt.SignClaim(crdt.Claim{Network: c.id, Node: evil.key.Public(), Name: "evil", Created: time.Now()}, evil.key))
	tampered := bytes.Clone(cl.Bytes())
	tampered[len(tampered)-1] ^= 1
	before := c.nodes[0].fingerprint(c.id)
	forwarded := map[*testNode]int64{}
	for _, tn := range c.nodes[:5] {
		forwarded[tn] = tn.node.Stats().Broadcasts.Load()
	}
	// Gossip, bypassing the evil node's own ingestion.
	for _, raw := range [][]byte{forged, tampered} {
		evil.node.queue.Queue(append([]byte{msgRecord}, raw...), sha(raw))
	}
	// And a push over anti-entropy, several times.
	push := &wireMsg{stage: 3, nets: []wireNet{{id: c.id, records: [][]byte{forged, tampered, forged}}}}
	for range 2 {
		resp, err := evil.node.exchange(context.Background(), evil.node.peerURL(Member{Addr: victim.addr, HTTPPort: DefaultHTTPPort}, "/v1/sync"), push.encode())
		_ = resp
		_ = err
	}
	eventually(t, 10*time.Second, "the victim to penalize the pusher", func() bool { return victim.node.Stats().PeersPenalized.Load() > 0 })
	// The evil node's gossip reaches some nodes directly; they refuse it
	// and, refusing it, do not pass it on.
	eventually(t, 10*time.Second, "the forged gossip to be sent out", func() bool {
		return evil.node.queue.NumQueued() == 0
	})
	refused := 0
	for _, tn := range c.nodes[:5] {
		if tn.node.Stats().Rejected.Load() > 0 {
			refused++
		}
		if got := tn.node.Stats().Broadcasts.Load(); got != forwarded[tn] {
			t.Errorf("%s forwarded %d records after the forgeries arrived", tn.host, got-forwarded[tn])
		}
	}
	if refused < 2 {
		t.Fatalf("only %d nodes refused anything: the test did not deliver the forgeries", refused)
	}
	for _, tn := range c.nodes {
		if tn.fingerprint(c.id) != before {
			t.Fatalf("%s's state changed", tn.host)
		}
	}
	if ok, _ := victim.node.limits.allow(evil.addr, time.Now()); ok {
		t.Fatal("the victim still serves the node that pushed forged records")
	}
}

func forgeHost(t *testing.T, h crdt.Host, key crdt.PrivateKey) []byte {
	// Sign a host record with the node set to the signer, then swap in the
	// victim's key: the signature no longer matches the claimed signer.
	real := h
	real.Node = key.Public()
	rec := must(crdt.SignHost(real, key))
	raw := bytes.Clone(rec.Bytes())
	copy(raw[2+32:2+64], h.Node[:])
	return raw
}

func sha(b []byte) crdt.Hash { return crdt.Hash(sha256.Sum256(b)) }

// A node that was down catches up when it comes back, keeping what it had.
func TestRestartedNodeCatchesUp(t *testing.T) {
	c := newCluster(t, 5, nil)
	c.waitConverged(20 * time.Second)
	down := c.nodes[4]
	down.node.Stop()
	c.net.Serve(down.host, nil)
	cl, _ := c.claim(c.nodes[0], "while-away")
	c.waitConverged(20*time.Second, c.nodes[:4]...)
	if down.holds(c.id, cl.Hash()) {
		t.Fatal("a stopped node received a record")
	}
	kept := down.fingerprint(c.id).Count
	c.newNode(down) // same store: the state it had
	if down.fingerprint(c.id).Count != kept {
		t.Fatal("restart lost records")
	}
	c.startNode(down)
	c.waitConverged(30 * time.Second)
	if down.resolves(c.id, "while-away.mesh") != c.nodes[0].key.Public() {
		t.Fatal("the restarted node did not catch up")
	}
}

// A fresh node bootstraps from a copy of data.json on a plain file server,
// then joins the gossip through the hosts the copy lists.
func TestBootstrapFromStaticFile(t *testing.T) {
	c := newCluster(t, 4, nil)
	c.claim(c.nodes[0], "mors")
	c.waitConverged(20 * time.Second)
	var data []byte
	c.nodes[0].store.Read(func(st *crdt.State) { data = must(crdt.EncodeDataJSON(st, c.id)) })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "data.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	const static = "10.9.9.9"
	c.net.Serve(static, http.FileServer(http.Dir(dir)))

	fresh := c.add(99)
	fresh.node.cfg.Seeds = nil
	fresh.node.cfg.Bootstrap = []string{"http://" + static + "/data.json"}
	c.startNode(fresh)
	eventually(t, 30*time.Second, "the bootstrapped node to resolve mors.mesh", func() bool {
		return fresh.resolves(c.id, "mors.mesh") == c.nodes[0].key.Public()
	})
	// It joined the gossip through the hosts the file lists: it sees the
	// members, and a name claimed now elsewhere reaches it.
	eventually(t, 30*time.Second, "the bootstrapped node to see every member", func() bool { return fresh.node.MemberCount() == 4 })
	c.claim(c.nodes[2], "after")
	eventually(t, 30*time.Second, "a new claim to reach the bootstrapped node", func() bool {
		return fresh.resolves(c.id, "after.mesh") == c.nodes[2].key.Public()
	})
}

// A copy with a tampered field yields only the untampered records.
func TestBootstrapTamperedCopy(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.claim(c.nodes[0], "mors")
	c.claim(c.nodes[1], "styx")
	c.waitConverged(20 * time.Second)
	var data []byte
	c.nodes[0].store.Read(func(st *crdt.State) { data = must(crdt.EncodeDataJSON(st, c.id)) })
	// Point node 1's host record at another address.
	tampered := strings.Replace(string(data), `"`+c.nodes[1].host+`"`, `"fd66::66"`, 1)
	if tampered == string(data) {
		t.Fatal("nothing to tamper with")
	}
	const static = "10.9.9.8"
	c.net.Serve(static, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tampered) }))
	// The fresh node can reach only the file server.
	fresh := c.add(98)
	fresh.node.cfg.Seeds = nil
	c.net.Partition([]string{fresh.host, static})
	c.startNode(fresh)
	if err := fresh.node.Bootstrap(context.Background(), "http://"+static+"/data.json"); err == nil {
		t.Log("bootstrap joined nobody, as expected behind the partition") // the error is the failed join
	}
	var count int
	var n1host, n0host bool
	fresh.store.Read(func(st *crdt.State) {
		count = st.Len(c.id)
		n1host = st.Host(c.id, c.nodes[1].key.Public()) != nil
		n0host = st.Host(c.id, c.nodes[0].key.Public()) != nil
	})
	if n1host || !n0host || count != c.nodes[0].fingerprint(c.id).Count-1 {
		t.Fatalf("from the tampered copy: %d records, tampered host taken: %v, untampered host taken: %v", count, n1host, n0host)
	}
	if fresh.resolves(c.id, "mors.mesh").IsZero() {
		t.Fatal("an untampered name was lost")
	}
}

// A node stores, requests and serves only the networks it joined.
func TestOnlyJoinedNetworks(t *testing.T) {
	c := newCluster(t, 3, nil)
	other := testKey("other-admin")
	both := c.nodes[0]
	both.store.Join(other.Public())
	set2 := must(crdt.SignSettings(crdt.Settings{Network: other.Public(), Updated: time.Now(), Domain: "other", HostTTL: time.Hour}, other))
	h2 := must(crdt.SignHost(crdt.Host{Network: other.Public(), Node: both.key.Public(), Heartbeat: time.Now()}, both.key))
	if res := both.node.Publish(set2, h2); res.Added != 2 {
		t.Fatalf("publishing to the second network: %+v", res)
	}
	c.claim(both, "marker")
	c.waitConverged(20 * time.Second)
	for _, tn := range c.nodes[1:] {
		tn.store.Read(func(st *crdt.State) {
			if st.Len(other.Public()) != 0 || len(st.Joined()) != 1 {
				t.Fatalf("%s stores a network it did not join", tn.host)
			}
		})
	}
	// Asked for it over HTTP, a node that did not join says so.
	resp := must(c.net.HTTPClient("fd00::99").Get("http://[" + c.nodes[1].host + "]:7331/data.json?network=" + url.QueryEscape(other.Public().String())))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("data.json of a network not joined: %s", resp.Status)
	}
}

// A fetch that fails is tried again, with back-off, until the record
// comes: here the announcer's peer endpoint is down until every other node
// has tried, and until gossip has stopped retransmitting the announcement
// (each copy that arrives is another chance, within a fraction of a
// second). Anti-entropy is off and nobody else holds the record to
// announce it, so only the fetcher's own retries can deliver it.
func TestFetchRetriesUntilTheAnnouncerAnswers(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.SyncInterval = time.Hour })
	eventually(t, 60*time.Second, "full membership", func() bool {
		for _, tn := range c.nodes {
			if tn.node.MemberCount() != 3 {
				return false
			}
		}
		return true
	})
	src := c.nodes[0]
	c.net.Serve(src.host, nil) // down: every fetch from it fails
	s := crdt.Settings{Network: c.id, Updated: time.Now(), Domain: "mesh", HostTTL: time.Hour,
		Witnesses: []crdt.PublicKey{c.witness.Public()}}
	for i := range 40 {
		s.Extra = append(s.Extra, crdt.ExtraRecord{Name: fmt.Sprintf("txt%d", i), Type: crdt.TypeTXT, Data: strings.Repeat("x", 60)})
	}
	big := must(crdt.SignSettings(s, c.admin))
	src.node.Publish(big)
	eventually(t, 40*time.Second, "every other node to have tried to fetch it, and the announcement's retransmissions to end", func() bool {
		for _, tn := range c.nodes[1:] {
			if tn.node.Stats().Fetches.Load() == 0 {
				return false
			}
		}
		return src.node.queue.NumQueued() == 0
	})
	for _, tn := range c.nodes[1:] {
		if tn.holds(c.id, big.Hash()) {
			t.Fatal("a node holds the record while its only holder did not answer")
		}
	}
	c.net.Serve(src.host, src.node.Handler())
	eventually(t, 40*time.Second, "the record on every node once its holder answers", func() bool {
		for _, tn := range c.nodes {
			if !tn.holds(c.id, big.Hash()) {
				return false
			}
		}
		return true
	})
}

// A failed fetch is retried on its own schedule, not only when another
// announcement wakes the fetcher. Here one announcement is made, of a
// record its announcer does not have (it answers 404), and nothing else
// is ever announced: the fetcher must keep trying. It once slept for an
// hour after every failure it had started while no other job waited, and
// retried only when gossip happened to bring the announcement again
// (under load in CI, the record never arrived once the announcer
// answered).
func TestFetchRetriedWithoutAnotherAnnouncement(t *testing.T) {
	c := newCluster(t, 2, func(cfg *Config) { cfg.SyncInterval = time.Hour })
	eventually(t, 60*time.Second, "full membership", func() bool {
		return c.nodes[0].node.MemberCount() == 1 && c.nodes[1].node.MemberCount() == 1
	})
	a, b := c.nodes[0], c.nodes[1]
	var missing crdt.Hash
	missing[0] = 1
	b.node.announced(c.id, missing, a.key.Public().String())
	// FetchRetry waits 250 ms, 500 ms, 1 s before the second, third and
	// fourth attempts.
	eventually(t, 30*time.Second, "the fetch to be retried three times", func() bool {
		return b.node.Stats().Fetches.Load() >= 4
	})
}

// Records too large for a gossip packet are announced and fetched over
// HTTP (anti-entropy is off here, so only gossip can deliver).
func TestLargeRecordsAnnouncedAndFetched(t *testing.T) {
	// Generous bounds and failure detection: CI runs other packages' tests
	// beside this one on two cores, and a probe that times out there makes
	// a member suspect, then dead (8 members at once took more than 60 s
	// with both cores kept busy and LAN timeouts). What is tested here is
	// the announce and fetch, not the failure detector.
	//
	// Membership must still converge. In the product a member whose alive
	// messages a node missed comes back through anti-entropy: it brings
	// every host record, and the join loop rejoins live hosts that are not
	// members (memberlist's own push/pull is off). With anti-entropy off
	// here, nothing did: under -race with both cores busy, one node of 8
	// saw 6 members for the whole 90 s, with no refusal. memberlist's
	// push/pull does that job in this test; it carries membership only
	// (the delegate's LocalState is empty), never records.
	//
	// And an epidemic broadcast reaches every node only with high
	// probability: each of the 8 nodes sends an announcement RetransmitMult
	// × ⌈log10(N+1)⌉ times to random members: with the default of 4, about
	// 28 sends in all, a given node misses every one with probability
	// (6/7)^28 ≈ 1.3%, some node in a few runs of a hundred. Seen under
	// load: node 5 held nothing, had fetched nothing and had no fetch
	// pending, with 13 gossip messages in and none dropped, while the other
	// 7 held the record. In the product anti-entropy brings what gossip
	// missed; with it off here, the retransmissions are doubled.
	c := newCluster(t, 8, func(cfg *Config) {
		cfg.SyncInterval = time.Hour
		cfg.RetransmitMult = 8
		cfg.TuneMemberlist = func(mc *memberlist.Config) {
			mc.ProbeTimeout, mc.ProbeInterval, mc.SuspicionMult = 2*time.Second, 4*time.Second, 8
			mc.PushPullInterval = 2 * time.Second
		}
	})
	var big *crdt.Record
	t.Cleanup(func() {
		if t.Failed() { // say who saw whom, what each refused, and how its fetches went
			for i, tn := range c.nodes {
				holds := big != nil && tn.holds(c.id, big.Hash())
				var jobs []string
				tn.node.fetch.mu.Lock()
				for _, j := range tn.node.fetch.jobs {
					jobs = append(jobs, fmt.Sprintf("%s: %d tries, %d announcers, next in %v", j.hash.Short(), j.tries, len(j.from), time.Until(j.next).Round(time.Millisecond)))
				}
				tn.node.fetch.mu.Unlock()
				st := tn.node.Stats()
				t.Logf("node %d: %d members, refusals %v; holds the record %v; %d fetches, %d gossip messages in, %d dropped; pending %v",
					i, tn.node.MemberCount(), tn.node.Refusals(), holds, st.Fetches.Load(), st.GossipIn.Load(), st.GossipDropped.Load(), jobs)
			}
		}
	})
	eventually(t, 90*time.Second, "full membership", func() bool {
		for _, tn := range c.nodes {
			if tn.node.MemberCount() != 7 {
				return false
			}
		}
		return true
	})
	s := crdt.Settings{Network: c.id, Updated: time.Now(), Domain: "mesh", HostTTL: time.Hour,
		Witnesses: []crdt.PublicKey{c.witness.Public()}}
	for i := range 40 {
		s.Extra = append(s.Extra, crdt.ExtraRecord{Name: fmt.Sprintf("txt%d", i), Type: crdt.TypeTXT, Data: strings.Repeat("x", 60)})
	}
	big = must(crdt.SignSettings(s, c.admin))
	if len(big.Bytes()) <= 1000 {
		t.Fatalf("settings of %d bytes fit a packet", len(big.Bytes()))
	}
	c.nodes[3].node.Publish(big)
	// As long as the fetcher keeps trying (FetchRetry: 12 attempts, about
	// a minute), and some: under -race with both cores busy, 40 s was not
	// always enough.
	eventually(t, 90*time.Second, "the large settings on every node", func() bool {
		for _, tn := range c.nodes {
			if !tn.holds(c.id, big.Hash()) {
				return false
			}
		}
		return true
	})
	var fetches int64
	for _, tn := range c.nodes {
		fetches += tn.node.Stats().Fetches.Load()
	}
	if fetches == 0 {
		t.Fatal("no node fetched the announced record")
	}
}

// A peer that is a live member but never answers HTTP (crashed behind its
// tunnel, not yet suspected) does not stop a node's anti-entropy: rounds
// with it wait for RequestTimeout (a minute here) while the node goes on
// with other peers. Node 0 can learn node 2's records only from its own
// rounds with node 2: node 1 is silent both ways, and node 2's rounds
// with node 0 are refused.
func TestSilentPeerDoesNotStopRounds(t *testing.T) {
	host := func(i int) string { return clusterAddr(i).String() }
	k := 0
	c := newCluster(t, 3, func(cfg *Config) {
		base, i := cfg.HTTPClient.Transport, k
		cfg.HTTPClient = &http.Client{Transport: blockingTransport{base, func(to string) bool {
			return i == 1 || (i == 0 && to == host(1)) || (i == 2 && to == host(0))
		}}}
		cfg.RequestTimeout = time.Minute
		k++
	})
	a, b, z := c.nodes[0], c.nodes[1], c.nodes[2]
	c.net.Serve(b.host, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	eventually(t, 20*time.Second, "three members", func() bool { return a.node.MemberCount() == 2 })
	for i := range 5 {
		cl := must(crdt.SignClaim(crdt.Claim{Network: c.id, Node: z.key.Public(), Name: fmt.Sprint("later", i), Created: time.Now()}, z.key))
		if res := z.store.Ingest([]*crdt.Record{cl}); res.Added != 1 {
			t.Fatalf("ingesting: %+v", res)
		}
		eventually(t, 20*time.Second, fmt.Sprintf("claim %d at node 0", i), func() bool { return a.holds(c.id, cl.Hash()) })
	}
}

// blockingTransport holds the requests to the hosts block names until
// they are cancelled, and passes the others on.
type blockingTransport struct {
	base  http.RoundTripper
	block func(host string) bool
}

func (bt blockingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if bt.block(req.URL.Hostname()) {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	return bt.base.RoundTrip(req)
}
