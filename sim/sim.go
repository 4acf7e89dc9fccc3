package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
	"github.com/hashicorp/memberlist"
)

// Epoch is the wall-clock time at virtual time 0: records are signed and
// ingested at Epoch plus the virtual time, so a run does not depend on
// when it runs.
var Epoch = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// Traffic categories.
const (
	catGossip = iota // memberlist packets carrying the mesh's gossip
	catProbe         // memberlist's pings, acks and indirect probes (with what they piggyback)
	catSync          // anti-entropy over HTTP, headers included
	catFetch         // fetches of announced records over HTTP
	nCats
)

// Sim is one run in progress.
type Sim struct {
	cfg        Config
	rng        *rand.Rand
	now        time.Duration
	events     eventQueue
	seq        uint64
	eventCount int64

	nodes    []*node
	byName   map[string]int
	admin    crdt.PrivateKey
	witness  crdt.PrivateKey
	id       crdt.PublicKey
	settings *crdt.Record

	probe  probeSizes
	pack   packer
	detect time.Duration // from a crash to the node leaving the member lists

	// A partition: cut while the network is cut in two; split while the
	// member lists are (from detection until the halves rejoin).
	cut, split bool
	// counted nodes (in the member lists), by index parity.
	counted [2]int

	mlMsgs map[string]mlMessage // memberlist's own broadcasts, by their bytes
	mlEnc  map[mlMessage][]byte // and their bytes
	health []*subjectHealth     // what the nodes know of each node's health (failure.go)
	// Records decoded once and shared by the nodes, by their bytes, and
	// the gossip message of each that fits a packet (the same bytes from
	// every node): each node still ingests (verifies, merges) and queues
	// them, but 10,000 nodes do not each hold a copy (ingestRaw, queue).
	decoded  map[string]*crdt.Record
	messages map[crdt.Hash][]byte
	forged   map[crdt.Hash]bool
	watches  map[crdt.Hash]*watch
	bytes    [nCats]int64
	// syncRecords counts the records anti-entropy delivered.
	syncRecords int64
	trace       hash.Hash
	r           Report
}

type node struct {
	i       int
	name    string
	host    string // host:port of its peer endpoint, for HTTP's Host header
	key     crdt.PrivateKey
	store   *mesh.Store
	queue   *mesh.Queue // the mesh's gossip
	ml      *agent      // its failure detection (failure.go)
	hostile bool

	up      bool
	counted bool // in the member lists
	downAt  time.Duration
	deadAt  time.Duration // when declared dead
	epoch   int           // incremented at each crash, to drop its stale timers
	inc     uint32        // memberlist incarnation

	gossipPhase   time.Duration
	gossipPending bool
	crowd         *mesh.Crowding        // the room memberlist leaves the mesh's gossip
	syncWith      map[int]bool          // the peers of the rounds in flight
	failedAt      map[int]time.Duration // peers whose last round failed, and when
	fetches       map[crdt.Hash]*fetchJob
}

type fetchJob struct {
	network crdt.PublicKey
	hash    crdt.Hash
	from    []string
	tries   int
}

// watch follows one record to every node.
type watch struct {
	at    []time.Duration // by node; -1 until it arrives
	count int
}

func nodeKey(seed uint64, role string, i int) crdt.PrivateKey {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	s := sha256.Sum256(fmt.Appendf(b[:], "data-mesher sim %s %d", role, i))
	k, err := crdt.NewPrivateKeyFromSeed(s[:])
	if err != nil {
		panic(err)
	}
	return k
}

func (s *Sim) wall() time.Time { return Epoch.Add(s.now) }

// New prepares a run.
func New(cfg Config) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), byName: map[string]int{},
		forged: map[crdt.Hash]bool{}, mlMsgs: map[string]mlMessage{}, mlEnc: map[mlMessage][]byte{},
		decoded: map[string]*crdt.Record{}, messages: map[crdt.Hash][]byte{}, watches: map[crdt.Hash]*watch{}, trace: sha256.New()}
	s.pack.compress = cfg.EnableCompressed
	s.health = make([]*subjectHealth, cfg.Nodes)
	s.admin, s.witness = nodeKey(cfg.Seed, "admin", 0), nodeKey(cfg.Seed, "witness", 0)
	s.id = s.admin.Public()
	s.detect = s.failureDetectionTime()
	set, err := crdt.SignSettings(crdt.Settings{Network: s.id, Updated: Epoch.Add(-time.Hour), Domain: "sim",
		HostTTL: 24 * time.Hour, Witnesses: []crdt.PublicKey{s.witness.Public()}}, s.admin)
	if err != nil {
		return nil, err
	}
	s.settings = set
	for i := range cfg.Nodes {
		k := nodeKey(cfg.Seed, "node", i)
		addr := netip.AddrFrom16([16]byte{0xfd, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		n := &node{i: i, name: k.Public().String(), host: netip.AddrPortFrom(addr, mesh.DefaultHTTPPort).String(), key: k,
			up: true, counted: true, fetches: map[crdt.Hash]*fetchJob{}}
		n.queue = s.newQueue()
		n.crowd = mesh.NewCrowding(s.cfg.UDPBufferSize, s.wall())
		s.nodes = append(s.nodes, n)
		s.byName[n.name] = i
		s.counted[i%2]++
	}
	if cfg.Agents == 0 {
		for _, n := range s.nodes {
			n.ml = &agent{col: n.i, q: s.newMLQueue(), owner: n}
		}
	} else {
		agents := make([]*agent, cfg.Agents)
		for i := range agents {
			agents[i] = &agent{col: i, q: s.newMLQueue(), driver: s.nodes[i]}
		}
		for _, n := range s.nodes {
			n.ml = agents[n.i%cfg.Agents]
			n.ml.group = append(n.ml.group, n)
		}
	}
	for _, i := range s.rng.Perm(cfg.Nodes)[:cfg.Hostile] {
		s.nodes[i].hostile = true
	}
	s.probe = newProbeSizes(s.nodes[0].name, s.nodes[1].name, cfg.EnableCompressed)
	// The records every node holds at the start, verified once.
	base := mesh.NewStore(crdt.NewState(crdt.DefaultOptions(), s.id), s.wall)
	recs := []*crdt.Record{set}
	for i := range cfg.Held {
		recs = append(recs, s.hostRecord(i))
	}
	if res := base.Ingest(recs); len(res.Rejected) > 0 {
		return nil, fmt.Errorf("sim: the base records: %v", res.Rejected[0])
	}
	var verified []crdt.Verified
	base.Read(func(st *crdt.State) { verified = st.Verified(s.id) })
	for _, n := range s.nodes {
		st := crdt.NewState(crdt.DefaultOptions(), s.id)
		st.Restore(verified, s.wall())
		n.store = mesh.NewStore(st, s.wall)
		n.store.Subscribe(func(c mesh.Change) { s.added(n, c.Added) })
	}
	return s, nil
}

// ingestRaw is n's Store.IngestBytes of one encoded record, with the
// decoding shared: bytes another node decoded are ingested as the record
// it decoded (a Record is immutable), the rest decoded here. Bytes that do
// not decode take IngestBytes itself, for its refusal.
func (s *Sim) ingestRaw(n *node, raw []byte) crdt.BatchResult {
	if s.cfg.decodeEach {
		return n.store.IngestBytes([][]byte{raw})
	}
	r, ok := s.decoded[string(raw)]
	if !ok {
		var err error
		if r, err = crdt.DecodeRecord(raw); err != nil {
			return n.store.IngestBytes([][]byte{raw})
		}
		s.decoded[string(raw)] = r
	}
	return n.store.Ingest([]*crdt.Record{r})
}

// queue is mesh.QueueRecord at n, the message of a record that fits a
// packet shared by every node that queues it.
func (s *Sim) queue(n *node, r *crdt.Record) {
	if r.Size() > s.cfg.InlineLimit || s.cfg.decodeEach {
		mesh.QueueRecord(n.queue, r, s.cfg.InlineLimit, n.name)
	} else {
		msg, ok := s.messages[r.Hash()]
		if !ok {
			msg = mesh.RecordMessage(r, s.cfg.InlineLimit, n.name)
			s.messages[r.Hash()] = msg
		}
		mesh.QueueMessage(n.queue, msg, r.Hash())
	}
	s.queued(n)
}

// newQueue is the mesh's gossip queue, newMLQueue memberlist's for its
// own broadcasts.
func (s *Sim) newQueue() *mesh.Queue {
	return &mesh.Queue{RetransmitMult: s.cfg.RetransmitMult, NumNodes: s.numMembers}
}

func (s *Sim) newMLQueue() *memberlist.TransmitLimitedQueue {
	return &memberlist.TransmitLimitedQueue{RetransmitMult: s.cfg.RetransmitMult, NumNodes: s.numMembers}
}

func (s *Sim) hostRecord(i int) *crdt.Record {
	k := nodeKey(s.cfg.Seed, "node", i)
	addr := netip.AddrFrom16([16]byte{0xfd, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
	r, err := crdt.SignHost(crdt.Host{Network: s.id, Node: k.Public(), Heartbeat: Epoch.Add(-time.Minute),
		Addresses: []netip.Addr{addr}, GossipPort: mesh.DefaultGossipPort, HTTPPort: mesh.DefaultHTTPPort}, k)
	if err != nil {
		panic(err)
	}
	return r
}

// numMembers is what memberlist's NumMembers says at a node (all nodes
// see the same lists in this model, the halves of a split apart): the
// retransmit limit follows it.
func (s *Sim) numMembers() int {
	if s.split {
		return max(s.counted[0], s.counted[1])
	}
	return s.counted[0] + s.counted[1]
}

// member reports whether j is in i's member list.
func (s *Sim) member(i, j int) bool {
	return i != j && s.nodes[j].counted && (!s.split || i%2 == j%2)
}

// gossipTarget reports whether memberlist at i may gossip to j: members,
// and nodes dead for less than GossipToTheDeadTime.
func (s *Sim) gossipTarget(i, j int) bool {
	n := s.nodes[j]
	if i == j || (s.split && i%2 != j%2) {
		return false
	}
	return n.counted || s.now-n.deadAt < s.cfg.GossipToTheDead
}

// reachable reports whether a message from i gets to j at all.
func (s *Sim) reachable(i, j int) bool {
	return s.nodes[i].up && s.nodes[j].up && (!s.cut || i%2 == j%2)
}

// randomPeer picks a node at random among those ok accepts, or -1.
func (s *Sim) randomPeer(i int, ok func(i, j int) bool) int {
	n := len(s.nodes)
	for range 64 {
		if j := s.rng.IntN(n); ok(i, j) {
			return j
		}
	}
	var cands []int
	for j := range n {
		if ok(i, j) {
			cands = append(cands, j)
		}
	}
	if len(cands) == 0 {
		return -1
	}
	return cands[s.rng.IntN(len(cands))]
}

func (s *Sim) latency() time.Duration {
	d := s.cfg.Latency
	if s.cfg.Jitter > 0 {
		d += time.Duration(s.rng.Int64N(int64(s.cfg.Jitter)))
	}
	return d
}

// sent counts a message and folds it into the trace.
func (s *Sim) sent(cat, from, to, size int) {
	s.bytes[cat] += int64(size)
	var b [28]byte
	binary.BigEndian.PutUint64(b[0:], uint64(s.now))
	binary.BigEndian.PutUint32(b[8:], uint32(cat))
	binary.BigEndian.PutUint32(b[12:], uint32(from))
	binary.BigEndian.PutUint32(b[16:], uint32(to))
	binary.BigEndian.PutUint64(b[20:], uint64(size))
	s.trace.Write(b[:])
}

// packet sends a UDP packet: lost with probability Loss, or when j cannot
// be reached; otherwise delivered after the latency, if j is still up.
func (s *Sim) packet(cat, i, j, size int, deliver func()) bool {
	s.sent(cat, i, j, size)
	if !s.reachable(i, j) || (s.cfg.Loss > 0 && s.rng.Float64() < s.cfg.Loss) {
		return false
	}
	ep := s.nodes[j].epoch
	s.after(s.latency(), func() {
		if s.nodes[j].up && s.nodes[j].epoch == ep {
			deliver()
		}
	})
	return true
}

// leg sends one HTTP request or answer from i to j. Unreachable, the
// sender learns it after RequestTimeout (a silent peer on a tunnel); lost
// segments delay it by the RTO.
func (s *Sim) leg(cat, i, j, size int, deliver, fail func()) {
	s.sent(cat, i, j, size)
	if !s.reachable(i, j) {
		s.after(s.cfg.RequestTimeout, fail)
		return
	}
	d := s.latency()
	if s.cfg.Loss > 0 && s.rng.Float64() < s.cfg.Loss {
		d += s.cfg.RTO
	}
	epi, epj := s.nodes[i].epoch, s.nodes[j].epoch
	s.after(d, func() {
		if !s.nodes[j].up || s.nodes[j].epoch != epj || !s.nodes[i].up || s.nodes[i].epoch != epi {
			s.after(s.cfg.RequestTimeout-d, fail)
			return
		}
		deliver()
	})
}

// added runs after every change of every store: the invariant that no
// forged record is ever accepted by an honest node, and the arrivals.
func (s *Sim) added(n *node, recs []*crdt.Record) {
	for _, r := range recs {
		h := r.Hash()
		if s.forged[h] && !n.hostile {
			s.violation("node %d accepted forged record %s at %v", n.i, h.Short(), s.now)
		}
		if w := s.watches[h]; w != nil && w.at[n.i] < 0 {
			w.at[n.i] = s.now
			w.count++
		}
	}
}

func (s *Sim) violation(format string, args ...any) {
	if len(s.r.Violations) < 20 {
		s.r.Violations = append(s.r.Violations, fmt.Sprintf(format, args...))
	}
}

// Gossip: memberlist's gossip timer, every GossipInterval at each node's
// own phase, sends to GossipNodes random members what the queue gives,
// and stops at the first that gets nothing. A node whose queue is empty
// sends nothing, so its timer is only run while there is something queued
// (at the times it would fire).

func (s *Sim) queued(n *node) {
	if n.gossipPending || !n.up {
		return
	}
	n.gossipPending = true
	iv := s.cfg.GossipInterval
	next := n.gossipPhase + (s.now-n.gossipPhase)/iv*iv
	for next <= s.now {
		next += iv
	}
	ep := n.epoch
	s.at(next, func() {
		if n.epoch == ep {
			s.gossip(n)
		}
	})
}

func (s *Sim) gossip(n *node) {
	n.gossipPending = false
	if !n.up || n.queue.NumQueued()+n.ml.q.NumQueued() == 0 {
		return
	}
	var picked []int
	for range s.cfg.GossipNodes {
		j := s.randomPeer(n.i, func(i, j int) bool { return s.gossipTarget(i, j) && !slices.Contains(picked, j) })
		if j < 0 {
			break
		}
		picked = append(picked, j)
	}
	avail := s.cfg.UDPBufferSize - compoundHeaderOverhead
	for _, j := range picked {
		ml, msgs := s.broadcasts(n, avail)
		if len(ml)+len(msgs) == 0 {
			break
		}
		if n.ml.owner == nil && n.drives() {
			n.ml.last = ml
		}
		size := s.pack.packet(0, 0, ml, msgs, true)
		to, heard := s.nodes[j], n.drives()
		s.packet(catGossip, n.i, j, size, func() { s.receive(to, ml, msgs, heard) })
	}
	s.ownPackets(n)
	if n.queue.NumQueued()+n.ml.q.NumQueued() > 0 {
		s.queued(n)
	}
	// A shared agent's other nodes gossip what it sends too.
	if n.ml.owner == nil && n.drives() && n.ml.q.NumQueued() > 0 {
		for _, o := range n.ml.group {
			s.queued(o)
		}
	}
}

// ownPackets is the mesh's crowdLoop (mesh/crowding.go), run on the gossip
// timer's ticks: crowded out with records queued, the mesh sends batches
// of its own to GossipNodes random members.
func (s *Sim) ownPackets(n *node) {
	if s.cfg.WaitBehind || n.queue.NumQueued() == 0 || !n.crowd.CrowdedOut(s.wall(), s.cfg.GossipInterval) {
		return
	}
	var picked []int
	for range s.cfg.GossipNodes {
		j := s.randomPeer(n.i, func(i, j int) bool { return s.member(i, j) && !slices.Contains(picked, j) })
		if j < 0 {
			break
		}
		picked = append(picked, j)
		b := mesh.Batch(n.queue, mesh.BatchLimit(s.cfg.UDPBufferSize))
		if b == nil {
			break
		}
		msgs, _ := mesh.SplitBatch(b[1:])
		to := s.nodes[j]
		s.packet(catGossip, n.i, j, s.pack.batch(msgs), func() { s.receive(to, nil, msgs, false) })
	}
}

// broadcasts is memberlist's getBroadcasts: its own messages first, then
// the mesh's in the room left.
func (s *Sim) broadcasts(n *node, limit int) (ml, user [][]byte) {
	ml = s.mlTake(n, limit)
	used := 0
	for _, m := range ml {
		used += len(m) + compoundOverhead
	}
	if avail := limit - used; avail > compoundOverhead+userMsgOverhead {
		user = n.crowd.Offer(n.queue, compoundOverhead+userMsgOverhead, avail, s.wall())
	}
	return ml, user
}

// mlTake is what memberlist's queue gives n for a packet of limit bytes:
// its agent's queue if n drives it, else what the driver took last, as
// much as fits, while the agent has something queued.
func (s *Sim) mlTake(n *node, limit int) [][]byte {
	a := n.ml
	if n.drives() {
		return a.q.GetBroadcasts(compoundOverhead, limit)
	}
	if a.q.NumQueued() == 0 {
		return nil
	}
	var out [][]byte
	used := 0
	for _, m := range a.last {
		if used+compoundOverhead+len(m) > limit {
			break
		}
		used += compoundOverhead + len(m)
		out = append(out, m)
	}
	return out
}

// receive handles the mesh's gossip messages at n, as Node.receive does:
// a record is ingested and, if new, queued onwards; an announcement starts
// a fetch. memberlist's own messages are heard if heard (their sender
// drives its agent).
//
// memberlist hands the parts of a packet to its handler through a queue
// it takes from the back (net.go, getNextMessage): the last part is
// handled first. The mesh's queue puts the largest message of a tier
// first, so a claim's attestation (172 bytes) rides ahead of its claim
// (140) and, handled in order, would be refused for want of its claim.
func (s *Sim) receive(n *node, ml, msgs [][]byte, heard bool) {
	for _, m := range slices.Backward(msgs) {
		g, ok := mesh.ParseGossip(m)
		if !ok {
			continue
		}
		if g.Record != nil {
			res := s.ingestRaw(n, g.Record)
			s.r.Rejected += int64(len(res.Rejected))
			for _, r := range res.AddedRecords {
				s.queue(n, r)
			}
			continue
		}
		s.announced(n, g)
	}
	if !heard {
		return
	}
	for _, m := range slices.Backward(ml) {
		if mm, ok := s.mlMsgs[string(m)]; ok {
			s.heard(n, mm)
		}
	}
}

// Probes: memberlist probes one member every ProbeInterval with a ping,
// which carries what the queue gives (sendMsg piggybacks), and the target
// answers with an ack that does the same. A probe that gets no ack sends
// IndirectChecks ping requests, whose helpers ping the target and answer
// with an ack or a nack.

func (s *Sim) probeTick(n *node, ep int) {
	if n.epoch != ep || !n.up {
		return
	}
	s.after(s.cfg.ProbeInterval, func() { s.probeTick(n, ep) })
	j := s.randomPeer(n.i, s.member)
	if j < 0 {
		return
	}
	ml, msgs := s.broadcasts(n, s.cfg.UDPBufferSize-s.probe.pingRaw-compoundHeaderOverhead)
	size := s.pack.packet(s.probe.pingRaw, s.probe.ping, ml, msgs, false)
	acked := false
	target := s.nodes[j]
	heard := n.drives()
	s.packet(catProbe, n.i, j, size, func() {
		s.receive(target, ml, msgs, heard)
		bml, back := s.broadcasts(target, s.cfg.UDPBufferSize-s.probe.ackRaw-compoundHeaderOverhead)
		size := s.pack.packet(s.probe.ackRaw, s.probe.ack, bml, back, false)
		heard := target.drives()
		s.packet(catProbe, j, n.i, size, func() {
			acked = true
			s.receive(n, bml, back, heard)
		})
	})
	s.after(s.cfg.ProbeTimeout, func() {
		if acked || !n.up || n.epoch != ep {
			return
		}
		reached := false
		for range s.cfg.IndirectChecks {
			h := s.randomPeer(n.i, func(i, k int) bool { return s.member(i, k) && k != j })
			if h < 0 {
				break
			}
			s.sent(catProbe, n.i, h, s.probe.indirect)
			s.sent(catProbe, h, j, s.probe.ping)
			if s.reachable(h, j) {
				reached = true
				s.sent(catProbe, j, h, s.probe.ack)
				s.sent(catProbe, h, n.i, s.probe.ack)
			} else {
				s.sent(catProbe, h, n.i, s.probe.nack)
			}
		}
		// A target that is down is suspected (a cut is modelled by the
		// member lists splitting, see partition), at the probe's
		// deadline: memberlist's ack handler gives up a probe interval
		// after the ping was sent (probeNode waits on its channel until
		// then), not at the probe timeout, when the indirect pings go.
		s.after(s.cfg.ProbeInterval-s.cfg.ProbeTimeout, func() {
			if !reached && !target.up && n.up && n.epoch == ep {
				k, _ := s.knows(n.ml, j)
				s.suspect(n.ml, j, n.i, k.inc, true)
			}
		})
	})
}

// Anti-entropy: every SyncInterval at its own phase, a node with fewer
// than mesh.RoundsInFlight rounds running starts one with a random member:
// the real Asker and Answer, their bodies carried as HTTP legs.

func (s *Sim) syncTick(n *node, ep int) {
	if n.epoch != ep || !n.up {
		return
	}
	s.after(s.cfg.SyncInterval, func() { s.syncTick(n, ep) })
	s.startRound(n)
}

func (s *Sim) startRound(n *node) {
	if len(n.syncWith) >= mesh.RoundsInFlight || !n.up {
		return
	}
	// As mesh's syncLoop: never two rounds with one peer, and peers whose
	// last round failed only when there is no other.
	idle := func(i, j int) bool { return s.member(i, j) && !n.syncWith[j] }
	j := s.randomPeer(n.i, func(i, j int) bool {
		at, failed := n.failedAt[j]
		return idle(i, j) && !(failed && s.now-at < mesh.FailedPeerPause)
	})
	if j < 0 {
		j = s.randomPeer(n.i, idle)
	}
	if j < 0 {
		return
	}
	if n.syncWith == nil {
		n.syncWith, n.failedAt = map[int]bool{}, map[int]time.Duration{}
	}
	n.syncWith[j] = true
	s.r.SyncRounds++
	a := mesh.NewAsker(n.store, mesh.AskOptions{Version: s.cfg.WireVersion, OnPulled: func(got crdt.BatchResult) {
		s.r.Rejected += int64(len(got.Rejected))
		s.syncRecords += int64(got.Added)
	}})
	peer := s.nodes[j]
	var send func(req []byte)
	ep := n.epoch
	ended := func() {
		if n.epoch != ep {
			return // the node crashed since, and forgot its rounds
		}
		delete(n.syncWith, j)
		res := a.Result()
		if res.Fallback > 0 {
			s.r.Fallbacks++
		}
		s.r.SyncRequests += int64(res.Requests)
	}
	done := func() {
		ended()
		delete(n.failedAt, j)
	}
	failed := func() {
		ended()
		if n.epoch == ep {
			n.failedAt[j] = s.now
		}
	}
	send = func(req []byte) {
		s.leg(catSync, n.i, j, httpSyncRequest(peer.host, len(req)), func() {
			out, pushed, err := mesh.Answer(peer.store, req, mesh.AnswerOptions{Version: s.cfg.WireVersion})
			s.r.Rejected += int64(len(pushed.Rejected))
			s.syncRecords += int64(pushed.Added)
			if err != nil {
				s.violation("node %d could not answer node %d: %v", j, n.i, err)
				done()
				return
			}
			s.leg(catSync, j, n.i, httpSyncAnswer(len(out), mesh.InStepAnswer(out)), func() {
				next, err := a.Next(out)
				if err != nil {
					s.violation("node %d could not take node %d's answer: %v", n.i, j, err)
				}
				if next == nil || err != nil {
					done()
					return
				}
				send(next)
			}, failed)
		}, failed)
	}
	send(a.Start())
}

// Fetching announced records (mesh/fetch.go): from the announcers in
// turn, on mesh.FetchRetry's schedule, until it comes or the fetcher gives
// up and leaves it to anti-entropy.

func (s *Sim) announced(n *node, g mesh.Gossip) {
	held := false
	n.store.Read(func(st *crdt.State) { held = st.Lookup(g.Network, g.Hash) != nil })
	if held {
		return
	}
	j := n.fetches[g.Hash]
	if j == nil {
		if len(n.fetches) >= 4096 {
			return
		}
		j = &fetchJob{network: g.Network, hash: g.Hash}
		n.fetches[g.Hash] = j
		defer s.fetch(n, j, n.epoch)
	}
	if !slices.Contains(j.from, g.Announcer) && len(j.from) < 16 {
		j.from = append(j.from, g.Announcer)
	}
}

func (s *Sim) fetch(n *node, j *fetchJob, ep int) {
	if n.epoch != ep || !n.up || n.fetches[j.hash] != j {
		return
	}
	held := false
	n.store.Read(func(st *crdt.State) { held = st.Lookup(j.network, j.hash) != nil })
	if held {
		delete(n.fetches, j.hash)
		return
	}
	fail := func() {
		if n.epoch != ep {
			return
		}
		j.tries++
		wait, ok := mesh.FetchRetry(j.tries)
		if !ok {
			delete(n.fetches, j.hash)
			return
		}
		s.after(wait, func() { s.fetch(n, j, ep) })
	}
	a, ok := s.byName[j.from[j.tries%len(j.from)]]
	if !ok || !s.member(n.i, a) {
		fail()
		return
	}
	from := s.nodes[a]
	path := mesh.RecordPath(j.network, j.hash)
	s.r.Fetches++
	s.leg(catFetch, n.i, a, httpGet(path, from.host), func() {
		var raw []byte
		from.store.Read(func(st *crdt.State) {
			if r := st.Lookup(j.network, j.hash); r != nil {
				raw = r.Bytes()
			}
		})
		if raw == nil {
			s.leg(catFetch, a, n.i, httpRecordAnswer(len("no such record\n")), fail, fail)
			return
		}
		s.leg(catFetch, a, n.i, httpRecordAnswer(len(raw)), func() {
			if sha256.Sum256(raw) != j.hash {
				fail()
				return
			}
			delete(n.fetches, j.hash)
			res := s.ingestRaw(n, raw)
			s.r.Rejected += int64(len(res.Rejected))
			for _, r := range res.AddedRecords {
				s.queue(n, r)
			}
		}, fail)
	}, fail)
}

// Faults.

func (s *Sim) crash(n *node) {
	if !n.up {
		return
	}
	n.up = false
	n.downAt = s.now
	n.epoch++
	n.gossipPending, n.syncWith, n.failedAt = false, nil, nil
	n.fetches = map[crdt.Hash]*fetchJob{}
	// memberlist's queues and knowledge die with the process (the
	// knowledge by the epoch, failure.go's knows); the others find out
	// by probing it. A shared agent lives on, driven by another node of
	// its group.
	n.queue = s.newQueue()
	if n.ml.owner != nil {
		n.ml = &agent{col: n.i, q: s.newMLQueue(), owner: n}
	} else if n.ml.driver == n {
		n.ml.driver = nil
		for _, o := range n.ml.group {
			if o.up {
				n.ml.driver = o
				s.queued(o)
				break
			}
		}
	}
	n.crowd = mesh.NewCrowding(s.cfg.UDPBufferSize, s.wall())
}

// restart brings n back with its state. If the others had declared it
// dead, it joins again and runs a round at once (its NotifyJoin, not
// synced yet, calls SyncNow). With KickOnJoin, as before, every node that
// sees it join runs one too, spread over the alive message's spread.
func (s *Sim) restart(n *node) {
	if n.up {
		return
	}
	n.up = true
	n.epoch++
	if n.ml.owner == nil && n.ml.driver == nil {
		n.ml.driver = n
	}
	s.startTimers(n)
	s.refute(n)
	if n.counted {
		return
	}
	n.counted = true
	s.counted[n.i%2]++
	if s.cfg.KickOnJoin {
		spread := s.spread()
		for _, o := range s.nodes {
			if o != n && o.up && s.member(o.i, n.i) {
				s.after(time.Duration(s.rng.Int64N(int64(spread)+1)), func() { s.startRound(o) })
			}
		}
	}
	s.startRound(n)
}

func (s *Sim) startTimers(n *node) {
	ep := n.epoch
	n.gossipPhase = time.Duration(s.rng.Int64N(int64(s.cfg.GossipInterval)))
	s.after(time.Duration(s.rng.Int64N(int64(s.cfg.ProbeInterval))), func() { s.probeTick(n, ep) })
	s.after(time.Duration(s.rng.Int64N(int64(s.cfg.SyncInterval))), func() { s.syncTick(n, ep) })
	if n.queue.NumQueued()+n.ml.q.NumQueued() > 0 {
		s.queued(n)
	}
}

func (s *Sim) partition() {
	s.cut = true
	s.after(s.detect, func() {
		if s.cut {
			s.split = true
		}
	})
}

// heal joins the halves again: the network at once, the member lists at
// the first reconnection (Node's joinLoop, every ReconnectInterval at each
// node stretched by mesh.ReconnectScale for the members of its half: the
// first of N timers fires within about that interval/N) and
// the alive messages' spread; the node that reconnected runs a round (and
// with KickOnJoin every node that sees a member join).
func (s *Sim) heal() {
	s.cut = false
	if !s.split {
		return
	}
	every := mesh.ReconnectScale(s.cfg.ReconnectInterval, len(s.nodes)/2)
	first := time.Duration(s.rng.Int64N(int64(every)/int64(len(s.nodes)) + 1))
	spread := s.spread()
	s.after(first, func() { s.startRound(s.randomHonest()) })
	s.after(first+spread, func() {
		s.split = false
		if !s.cfg.KickOnJoin {
			return
		}
		for _, o := range s.nodes {
			if o.up {
				s.after(time.Duration(s.rng.Int64N(int64(spread)+1)), func() { s.startRound(o) })
			}
		}
	})
}

// forge makes hostile node n inject forged records: it gossips them, and
// pushes them to a random member as an anti-entropy stage-3 request.
func (s *Sim) forge(n *node) {
	if !n.up {
		return
	}
	victim := s.nodes[s.rng.IntN(len(s.nodes))]
	if victim == n {
		victim = s.nodes[(n.i+1)%len(s.nodes)] // its own key would make the record genuine
	}
	// A host record for the victim, signed by n's key: sign one for n,
	// then put the victim's key in its node field.
	h, err := crdt.SignHost(crdt.Host{Network: s.id, Node: n.key.Public(), Heartbeat: s.wall(),
		Addresses: []netip.Addr{netip.MustParseAddr("fd66::66")}}, n.key)
	if err != nil {
		panic(err)
	}
	hostRaw := bytes.Clone(h.Bytes())
	vk := victim.key.Public()
	i := bytes.Index(hostRaw, func() []byte { k := n.key.Public(); return k[:] }())
	copy(hostRaw[i:], vk[:])
	// A claim of n's, its signature broken.
	cl, err := crdt.SignClaim(crdt.Claim{Network: s.id, Node: n.key.Public(), Name: fmt.Sprintf("forged%d", s.r.Forged), Created: s.wall()}, n.key)
	if err != nil {
		panic(err)
	}
	claimRaw := bytes.Clone(cl.Bytes())
	claimRaw[len(claimRaw)-1] ^= 1
	for _, raw := range [][]byte{hostRaw, claimRaw} {
		s.forged[sha256.Sum256(raw)] = true
		s.r.Forged++
		if r, err := crdt.DecodeRecord(raw); err == nil {
			s.queue(n, r)
		}
	}
	j := s.randomPeer(n.i, s.member)
	if j < 0 {
		return
	}
	// Version 2, stage 3: one network, the records, no wants.
	body := []byte{2, 3, 1}
	body = append(body, s.id[:]...)
	body = binary.AppendUvarint(body, 2)
	for _, raw := range [][]byte{hostRaw, claimRaw} {
		body = binary.AppendUvarint(body, uint64(len(raw)))
		body = append(body, raw...)
	}
	body = append(body, 0)
	peer := s.nodes[j]
	s.leg(catSync, n.i, j, httpSyncRequest(peer.host, len(body)), func() {
		out, pushed, err := mesh.Answer(peer.store, body, mesh.AnswerOptions{})
		if err != nil {
			s.violation("a forged push was not read: %v", err)
			return
		}
		s.r.Rejected += int64(len(pushed.Rejected))
		s.leg(catSync, j, n.i, httpSyncAnswer(len(out), false), func() {}, func() {})
	}, func() {})
}

// publish makes node n publish recs, as Node.Publish does.
func (s *Sim) publish(n *node, recs ...*crdt.Record) {
	res := n.store.Ingest(recs)
	for _, r := range res.AddedRecords {
		s.queue(n, r)
	}
	if len(res.Rejected) > 0 {
		s.violation("node %d could not publish: %v", n.i, res.Rejected[0])
	}
}

func (s *Sim) watch(recs ...*crdt.Record) {
	for _, r := range recs {
		w := &watch{at: make([]time.Duration, len(s.nodes))}
		for i := range w.at {
			w.at[i] = -1
		}
		s.watches[r.Hash()] = w
	}
}

// honestLive lists the honest nodes that are up.
func (s *Sim) honestLive() []*node {
	var out []*node
	for _, n := range s.nodes {
		if n.up && !n.hostile {
			out = append(out, n)
		}
	}
	return out
}

// everywhere reports whether every honest live node holds every record.
func (s *Sim) everywhere(recs []*crdt.Record) bool {
	for _, r := range recs {
		w := s.watches[r.Hash()]
		for _, n := range s.nodes {
			if n.up && !n.hostile && w.at[n.i] < 0 {
				return false
			}
		}
	}
	return true
}

// inStep reports whether the honest live nodes that can reach each other
// hold identical digests, and if not, how many differ from the first.
func (s *Sim) inStep() (bool, string) {
	var first [2]*crdt.Fingerprint
	differ := 0
	for _, n := range s.honestLive() {
		g := 0
		if s.cut {
			g = n.i % 2
		}
		var f crdt.Fingerprint
		n.store.Read(func(st *crdt.State) { f = st.Fingerprint(s.id) })
		if first[g] == nil {
			first[g] = &f
		} else if *first[g] != f {
			differ++
		}
	}
	if differ > 0 {
		return false, fmt.Sprintf("%d honest live nodes differ from the first", differ)
	}
	return true, ""
}

func (s *Sim) claim(n *node, name string) []*crdt.Record {
	cl, err := crdt.SignClaim(crdt.Claim{Network: s.id, Node: n.key.Public(), Name: name, Created: s.wall()}, n.key)
	if err != nil {
		panic(err)
	}
	att, err := crdt.WitnessClaim(s.id, cl.Hash(), s.wall(), s.witness)
	if err != nil {
		panic(err)
	}
	return []*crdt.Record{cl, att}
}

// large is a settings update too large for a gossip packet: it is
// announced, and fetched.
func (s *Sim) large(k int) *crdt.Record {
	set := crdt.Settings{Network: s.id, Updated: s.wall(), Domain: "sim", HostTTL: 24 * time.Hour,
		Witnesses: []crdt.PublicKey{s.witness.Public()}}
	for i := range 40 {
		set.Extra = append(set.Extra, crdt.ExtraRecord{Name: fmt.Sprintf("txt%d-%d", k, i), Type: crdt.TypeTXT, Data: strings.Repeat("x", 60)})
	}
	r, err := crdt.SignSettings(set, s.admin)
	if err != nil {
		panic(err)
	}
	return r
}

func (s *Sim) randomHonest() *node {
	live := s.honestLive()
	return live[s.rng.IntN(len(live))]
}
