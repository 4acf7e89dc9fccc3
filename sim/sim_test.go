package sim

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
	"github.com/hashicorp/memberlist"
)

// faulty is a small run with every fault at once: loss, crashes during
// the warm-up, churn, a partition that heals, and hostile nodes.
func faulty(seed uint64) Config {
	c := DefaultConfig(200)
	c.Seed = seed
	c.Loss, c.Down, c.ChurnPerMinute, c.Hostile = 0.03, 0.1, 20, 3
	c.PartitionAt, c.HealAt = 25*time.Second, 50*time.Second
	c.Warmup, c.Claims, c.Burst, c.Large = 10*time.Second, 2, 20, 1
	return c
}

func mustRun(t *testing.T, c Config) Report {
	t.Helper()
	r, err := Run(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Violations) > 0 {
		t.Fatalf("seed %d (replay: go run ./scripts/sim -nodes %d -seed %d ...):\n%s", c.Seed, c.Nodes, c.Seed, r)
	}
	return r
}

// One seed gives one run, bit for bit: the same messages at the same
// virtual times, the same figures. Another seed gives another run.
func TestOneSeedOneRun(t *testing.T) {
	a, b := mustRun(t, faulty(7)), mustRun(t, faulty(7))
	a.Wall, b.Wall = 0, 0
	if fmt.Sprint(a) != fmt.Sprint(b) || a.Trace != b.Trace || a.Events != b.Events {
		t.Fatalf("seed 7 twice:\n%s\n---\n%s", a, b)
	}
	if c := mustRun(t, faulty(8)); c.Trace == a.Trace {
		t.Fatal("seeds 7 and 8 gave the same run")
	}
}

// Sharing the decoded records and their gossip messages between the
// nodes (ingestRaw, queue) is only memory: with every node decoding and
// building its own, every fault at once gives the same run, bit for bit.
func TestSharedRecordsChangeNothing(t *testing.T) {
	shared := mustRun(t, faulty(9))
	c := faulty(9)
	c.decodeEach = true
	each := mustRun(t, c)
	shared.Wall, each.Wall = 0, 0
	if fmt.Sprint(shared) != fmt.Sprint(each) || shared.Trace != each.Trace {
		t.Fatalf("shared:\n%s\n---\ndecoded at each node:\n%s", shared, each)
	}
}

// Every fault at once, several seeds: no honest node accepts a forged
// record, forgeries did reach nodes (and were refused), every claim
// reached every live honest node, and those that can reach each other
// end in step.
func TestInvariantsUnderFaults(t *testing.T) {
	seeds := 4
	if testing.Short() {
		seeds = 1
	}
	for seed := range uint64(seeds) {
		r := mustRun(t, faulty(100+seed))
		if r.Forged == 0 || r.Rejected == 0 || r.Converged == 0 || r.Reach100 <= 0 {
			t.Fatalf("seed %d: %s", 100+seed, r)
		}
		t.Logf("seed %d: claim to 100%% in %v, in step at %v, %d forgeries refused %d times", 100+seed, r.Reach100, r.Converged, r.Forged, r.Rejected)
	}
}

// The invariant checker is real: a record that the run counts as forged
// and an honest node accepts is reported.
func TestForgeryCheckCatchesAnAcceptance(t *testing.T) {
	s, err := New(DefaultConfig(10))
	if err != nil {
		t.Fatal(err)
	}
	n := s.nodes[0]
	for n.hostile {
		n = s.nodes[n.i+1]
	}
	recs := s.claim(n, "looks-forged")
	s.forged[recs[0].Hash()] = true
	s.publish(n, recs...)
	if len(s.r.Violations) != 1 || !strings.Contains(s.r.Violations[0], "accepted forged record") {
		t.Fatalf("violations: %q", s.r.Violations)
	}
}

// 10,000 nodes, briefly: one claim reaches them all, in step at the end,
// within about the gossip floor.
func TestTenThousandNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 nodes")
	}
	c := DefaultConfig(10000)
	c.Warmup, c.Claims, c.Burst, c.Large, c.ForgeEvery = 4*time.Second, 1, 0, 0, 2*time.Second
	r := mustRun(t, c)
	t.Logf("%s", r)
	if r.Reach100 > 3*r.Floor || r.Converged == 0 {
		t.Fatalf("claim to 100%% in %v, floor %v; in step at %v", r.Reach100, r.Floor, r.Converged)
	}
}

// The simulator counts HTTP as mesh.MemNetwork does: a real round between
// two real nodes on a MemNetwork costs what the simulator says for the
// same bodies, in step and with one record changed.
func TestHTTPCountedAsMemNetwork(t *testing.T) {
	s, err := New(DefaultConfig(20))
	if err != nil {
		t.Fatal(err)
	}
	mem := mesh.NewMemNetwork()
	mk := func(n *node) *mesh.Node {
		addr := netip.MustParseAddrPort(n.host).Addr()
		nd, err := mesh.New(mesh.Config{Key: n.key, Routed: func(netip.Addr) bool { return true }, BindAddr: addr,
			HTTPClient: mem.HTTPClient(addr.String())}, n.store)
		if err != nil {
			t.Fatal(err)
		}
		mem.Serve(addr.String(), nd.Handler())
		return nd
	}
	a, b := s.nodes[2], s.nodes[3]
	mk(a)
	nb := mk(b)
	peer := mesh.Member{Addr: netip.MustParseAddrPort(a.host).Addr(), HTTPPort: mesh.DefaultHTTPPort}
	// What the simulator counts for a round of b with a, on copies of
	// their stores.
	simRound := func() int {
		total := 0
		ask := mesh.NewAsker(b.store, mesh.AskOptions{})
		for req := ask.Start(); req != nil; {
			total += httpSyncRequest(a.host, len(req))
			out, _, err := mesh.Answer(a.store, req, mesh.AnswerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			total += httpSyncAnswer(len(out), mesh.InStepAnswer(out))
			if req, err = ask.Next(out); err != nil {
				t.Fatal(err)
			}
		}
		return total
	}
	realRound := func() int {
		before := mem.HTTPBytes.Load()
		if _, err := nb.SyncWith(context.Background(), peer); err != nil {
			t.Fatal(err)
		}
		return int(mem.HTTPBytes.Load() - before)
	}
	if sim, real := simRound(), realRound(); sim != real {
		t.Fatalf("in step: the simulator counts %d bytes, MemNetwork %d", sim, real)
	}
	// One record at a only: count the simulated round on the states
	// before the real round moves it, then compare.
	recs := s.claim(a, "one")
	a.store.Ingest(recs[:1])
	var snapshot []crdt.Verified
	b.store.Read(func(st *crdt.State) { snapshot = st.Verified(s.id) })
	sim := simRound()
	// Undo what the simulated round moved, then run the real one.
	fresh := crdt.NewState(crdt.DefaultOptions(), s.id)
	fresh.Restore(snapshot, s.wall())
	b.store = mesh.NewStore(fresh, s.wall)
	nb = mk(b)
	if real := realRound(); sim != real {
		t.Fatalf("one change: the simulator counts %d bytes, MemNetwork %d", sim, real)
	}
}

// recorder is a memberlist transport that keeps the size of every packet
// sent.
type recorder struct {
	memberlist.NodeAwareTransport
	mu    sync.Mutex
	sizes map[byte][]int // by first byte
}

func (r *recorder) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	r.mu.Lock()
	r.sizes[b[0]] = append(r.sizes[b[0]], len(b))
	r.mu.Unlock()
	return r.NodeAwareTransport.WriteToAddress(b, a)
}

// The probe messages the model counts are memberlist's: two real
// memberlist nodes with names like the mesh's (44-character keys) send
// pings and acks of the sizes the model computes (compressed, as memberlist
// sends them).
func TestProbeSizesAreMemberlists(t *testing.T) {
	s, err := New(DefaultConfig(2))
	if err != nil {
		t.Fatal(err)
	}
	mem := mesh.NewMemNetwork()
	var recs []*recorder
	var mls []*memberlist.Memberlist
	for i, host := range []string{"fd00::1:2", "fd00::1:3"} {
		mc := memberlist.DefaultLANConfig()
		mc.Name = s.nodes[i].name
		rec := &recorder{NodeAwareTransport: mem.Transport(host, 7946), sizes: map[byte][]int{}}
		mc.Transport = rec
		mc.ProbeInterval = 100 * time.Millisecond
		mc.PushPullInterval = 0
		mc.Logger = log.New(io.Discard, "", 0)
		ml, err := memberlist.Create(mc)
		if err != nil {
			t.Fatal(err)
		}
		defer ml.Shutdown()
		recs, mls = append(recs, rec), append(mls, ml)
	}
	if _, err := mls[1].Join([]string{"[fd00::1:2]:7946"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		recs[0].mu.Lock()
		pings, acks := len(recs[0].sizes[pingMsg])+len(recs[0].sizes[compressMsg]), len(recs[0].sizes[ackRespMsg])
		recs[0].mu.Unlock()
		if pings >= 10 && acks >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probes after 20 s: %v", recs[0].sizes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	recs[0].mu.Lock()
	defer recs[0].mu.Unlock()
	// A ping is sent compressed (type 9) when that is shorter, which for
	// names of random keys it is not. Its sequence number is small in
	// this short run, so allow the few bytes a larger one takes.
	last := func(b byte) int { l := recs[0].sizes[b]; return l[len(l)-1] }
	ping := last(pingMsg) // here compression does not pay
	if d := s.probe.ping - ping; d < 0 || d > 4 {
		t.Errorf("ping: memberlist sent %d bytes, the model counts %d", ping, s.probe.ping)
	}
	if ack := last(ackRespMsg); s.probe.ack-ack < 0 || s.probe.ack-ack > 4 {
		t.Errorf("ack: memberlist sent %d bytes, the model counts %d", ack, s.probe.ack)
	}
}

// Failure detection shared among agents (Config.Agents) keeps every
// invariant under every fault, and tells the same story as the exact
// model: the same idle traffic (memberlist's messages fill the packets
// alike) and the same time to drop a crashed node, within 15%.
func TestAgentsAgreeWithTheExactModel(t *testing.T) {
	c := faulty(11)
	c.Agents = 20
	r := mustRun(t, c)
	if r.Forged == 0 || r.Rejected == 0 || r.Converged == 0 || r.Detected == 0 {
		t.Fatalf("with agents, every fault: %s", r)
	}
	if testing.Short() {
		t.Skip("the comparison at 300 nodes")
	}
	c = DefaultConfig(300)
	c.Loss, c.Down, c.Warmup, c.Claims, c.Burst, c.Large = 0.01, 0.1, 20*time.Second, 2, 20, 0
	exact := mustRun(t, c)
	c.Agents = 30
	shared := mustRun(t, c)
	near := func(what string, a, b float64) {
		t.Logf("%s: exact %.0f, with %d agents %.0f (%.2f×)", what, a, c.Agents, b, b/a)
		if r := b / a; r < 0.8 || r > 1.2 {
			t.Errorf("%s: exact %.0f, with %d agents %.0f (%.2f×)", what, a, c.Agents, b, r)
		}
	}
	near("idle B/node/s", exact.Idle.Total, shared.Idle.Total)
	near("crash to dropped, ms", float64(exact.Detected.Milliseconds()), float64(shared.Detected.Milliseconds()))
	near("claim to 100%, ms", float64(exact.Reach100.Milliseconds()), float64(shared.Reach100.Milliseconds()))
	if shared.Undetected != 0 || exact.Undetected != 0 {
		t.Errorf("crashed nodes still listed: exact %d, shared %d", exact.Undetected, shared.Undetected)
	}
}

// A member that crashed is first suspected at the deadline of the probe
// that found it, a probe interval after the ping (memberlist's
// probeNode waits for an ack until then), not at the probe timeout, when
// the indirect pings go out.
func TestSuspicionAtTheProbesDeadline(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		c := DefaultConfig(16)
		c.Seed, c.Hostile = seed, 0
		c.ScaleTimeouts()
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range s.nodes {
			n.epoch = 1
			s.startTimers(n)
		}
		const crashAt = 10 * time.Second
		s.at(crashAt, func() { s.crash(s.nodes[0]) })
		suspected := func() bool {
			h := s.health[0]
			return h != nil && slices.ContainsFunc(h.k, func(k knowledge) bool { return k.nfrom > 0 })
		}
		var first time.Duration
		for first == 0 && s.step(crashAt+10*c.ProbeInterval) {
			if suspected() {
				first = s.now
			}
		}
		if first == 0 {
			t.Fatalf("seed %d: node 0 never suspected", seed)
		}
		// The first ping to reach for it goes at or after the crash.
		if d := first - crashAt; d < c.ProbeInterval {
			t.Errorf("seed %d: suspected %v after the crash, before a probe interval (%v)", seed, d, c.ProbeInterval)
		}
	}
}
