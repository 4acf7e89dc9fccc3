package sim

import (
	"net"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberlist's failure detection, as messages: a probe that gets no ack,
// directly or through the helpers, makes the prober suspect the target
// and broadcast a suspect message; every node that hears a new suspicion,
// or a new confirmation of one (from another prober, up to
// SuspicionMult-2 of them), broadcasts it again. After the suspicion
// timeout (memberlist's minimum, which the confirmations bring it to) the
// first suspecter declares the target dead, and every node that hears it
// first broadcasts the dead message. A node that comes back refutes with
// an alive message of a higher incarnation, which everyone rebroadcasts
// once. These messages share packets with the mesh's gossip, and go
// first (memberlist's getBroadcasts).

const (
	suspectMsg = 3
	aliveMsg   = 4
	deadMsg    = 5
)

// mlSuspect and mlDead are memberlist's suspect and dead; mlAlive its
// alive.
type mlSuspect struct {
	Incarnation uint32
	Node        string
	From        string
}

type mlAlive struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Vsn         []uint8
}

// mlMessage is one of memberlist's own broadcasts, as the simulator knows
// it behind its bytes.
type mlMessage struct {
	kind    byte
	subject int
	from    int
	inc     uint32
}

// mlBroadcast is a memberlist broadcast in a node's memberlist queue: a
// newer message about a node replaces an older one, as in memberlist,
// whose own broadcasts are named by their node (a NamedBroadcast, which
// the queue finds by name instead of asking every queued one).
type mlBroadcast struct {
	subject int
	name    string
	msg     []byte
}

func (b *mlBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*mlBroadcast)
	return ok && ob.subject == b.subject
}
func (b *mlBroadcast) Name() string    { return b.name }
func (b *mlBroadcast) Message() []byte { return b.msg }
func (b *mlBroadcast) Finished()       {}

// knowledge is what one node knows of one subject's health.
type knowledge struct {
	inc uint32
	// ep is the node's epoch plus one when it learnt this: knowledge of
	// another epoch died with the process that had it.
	ep    uint32
	nfrom uint8 // suspecters heard at this incarnation, up to keep
	dead  bool
}

// subjectHealth is what every node knows of one subject, by node, and
// the suspecters each heard (memberlist counts up to 1+confirmations of
// them; node i's are froms[i*keep:][:nfrom]). Kept by subject rather than
// by node, in arrays: a thousand crashed nodes known to each of 10,000
// nodes are 10^7 entries, too many for maps.
type subjectHealth struct {
	k     []knowledge
	froms []int32
}

// metaSize is the size of a member proof (mesh/member.go) for one network.
const metaSize = 12 + 32 + 64

// mlBytes is the message m as memberlist encodes it, encoded once per
// message: every node that broadcasts it sends the same bytes.
func (s *Sim) mlBytes(m mlMessage) []byte {
	if b, ok := s.mlEnc[m]; ok {
		return b
	}
	var b []byte
	switch m.kind {
	case aliveMsg:
		b = mlEncode(aliveMsg, &mlAlive{Incarnation: m.inc, Node: s.nodes[m.subject].name, Addr: net.ParseIP("fd00::1:2").To16(),
			Port: 7946, Meta: make([]byte, metaSize), Vsn: []uint8{1, 5, 2, 0, 0, 0}})
	default:
		b = mlEncode(m.kind, &mlSuspect{Incarnation: m.inc, Node: s.nodes[m.subject].name, From: s.nodes[m.from].name})
	}
	s.mlMsgs[string(b)] = m
	s.mlEnc[m] = b
	return b
}

// keep is how many suspecters of one incarnation a node counts.
func (s *Sim) keep() int { return 1 + max(0, s.cfg.SuspicionMult-2) }

// agent is where failure detection lives: memberlist's queue of its own
// broadcasts and a column of the knowledge arrays. Run exactly, every
// node has its own, which dies with it. With Config.Agents, node i shares
// agent i % Agents with the others of its group: the agent's rumours
// spread among the agents as among that many nodes, at the crash rate of
// the whole mesh; one live node of the group (the driver) takes from the
// queue and delivers what it sends, and the others send the same bytes
// (what the driver took last) without delivering them, so that every
// node's packets carry memberlist's traffic as they would.
type agent struct {
	col    int
	q      *memberlist.TransmitLimitedQueue
	owner  *node    // run exactly: the node; shared: nil
	driver *node    // shared: the group's node whose ticks take from q
	last   [][]byte // shared: what the driver's gossip took last
	group  []*node  // shared: the nodes of the group
}

// epoch is what the agent's knowledge is valid for: its node's life, or
// forever.
func (a *agent) epoch() uint32 {
	if a.owner != nil {
		return uint32(a.owner.epoch) + 1
	}
	return 1
}

// represents reports whether subject's failure detection is a's.
func (s *Sim) represents(a *agent, subject int) bool {
	return s.nodes[subject].ml == a
}

// drives reports whether n takes from its agent's queue and delivers what
// it sends (always, run exactly).
func (n *node) drives() bool { return n.ml.owner != nil || n.ml.driver == n }

// knows is a's knowledge of subject, and the suspecters it heard.
func (s *Sim) knows(a *agent, subject int) (*knowledge, []int32) {
	h := s.health[subject]
	if h == nil {
		cols := len(s.nodes)
		if s.cfg.Agents > 0 {
			cols = s.cfg.Agents
		}
		h = &subjectHealth{k: make([]knowledge, cols), froms: make([]int32, cols*s.keep())}
		s.health[subject] = h
	}
	k := &h.k[a.col]
	if ep := a.epoch(); k.ep != ep {
		*k = knowledge{inc: s.nodes[subject].inc, ep: ep}
	}
	return k, h.froms[a.col*s.keep():][:s.keep()]
}

func (s *Sim) broadcastML(a *agent, m mlMessage) {
	a.q.QueueBroadcast(&mlBroadcast{subject: m.subject, name: s.nodes[m.subject].name, msg: s.mlBytes(m)})
	if a.owner != nil {
		s.queued(a.owner)
	} else if a.driver != nil {
		s.queued(a.driver)
	}
}

// suspect is a's suspicion of subject, from from: the node whose probe
// failed (origin, which then declares it dead in time) or the message
// heard.
func (s *Sim) suspect(a *agent, subject, from int, inc uint32, origin bool) {
	k, froms := s.knows(a, subject)
	if k.dead || inc < k.inc {
		return
	}
	if inc > k.inc {
		k.inc, k.nfrom = inc, 0
	}
	if slices.Contains(froms[:k.nfrom], int32(from)) {
		return
	}
	if int(k.nfrom) == len(froms) {
		return // memberlist stops rebroadcasting past k confirmations
	}
	froms[k.nfrom] = int32(from)
	k.nfrom++
	s.broadcastML(a, mlMessage{kind: suspectMsg, subject: subject, from: from, inc: inc})
	if !origin || k.nfrom > 1 {
		return
	}
	// The first suspecter declares it dead at the suspicion timeout,
	// unless it was refuted meanwhile; the member lists drop it then.
	// Every node that heard the suspicion runs a timer of its own in
	// memberlist; the model runs the first, and if its node has crashed
	// meanwhile, the next: a node that heard it, a gossip floor later.
	target := s.nodes[subject]
	ep := a.epoch()
	s.after(suspicionTimeout(s.cfg.SuspicionMult, s.numMembers(), s.cfg.ProbeInterval), func() {
		if a.owner != nil && (!a.owner.up || a.epoch() != ep) {
			s.after(s.spread(), func() { s.declareByAnother(subject, inc) })
			return
		}
		if k, _ := s.knows(a, subject); k.dead || k.inc != inc || target.up && target.inc > inc {
			return
		}
		s.declareDead(a, subject, from, inc)
	})
}

// spread is a gossip floor: how much later than the first the last nodes
// hear a rumour.
func (s *Sim) spread() time.Duration {
	return time.Duration(gossipFloor(s.cfg.Nodes, s.cfg.GossipNodes) * float64(s.cfg.GossipInterval))
}

// declareByAnother is the timer of a live node that suspects subject at
// inc, when the first suspecter's died with it: the lowest such node
// declares it dead (none: the suspicion died out, or was refuted).
func (s *Sim) declareByAnother(subject int, inc uint32) {
	h, t := s.health[subject], s.nodes[subject]
	if h == nil || t.up && t.inc > inc {
		return
	}
	for _, n := range s.nodes {
		if !n.up || n.ml.owner != n {
			continue
		}
		k := &h.k[n.ml.col]
		if k.ep != n.ml.epoch() || k.dead || k.inc != inc || k.nfrom == 0 {
			continue
		}
		s.declareDead(n.ml, subject, n.i, inc)
		return
	}
}

func (s *Sim) declareDead(a *agent, subject, from int, inc uint32) {
	k, _ := s.knows(a, subject)
	if k.dead || inc < k.inc {
		return
	}
	k.inc, k.dead = inc, true
	s.broadcastML(a, mlMessage{kind: deadMsg, subject: subject, from: from, inc: inc})
	t := s.nodes[subject]
	if t.counted && !(t.up && t.inc > inc) {
		t.counted = false
		t.deadAt = s.now
		s.counted[t.i%2]--
	}
}

// refute is a node that came back, or heard itself suspected, announcing
// itself alive.
func (s *Sim) refute(n *node) {
	n.inc++
	k, _ := s.knows(n.ml, n.i)
	k.inc, k.nfrom, k.dead = n.inc, 0, false
	s.broadcastML(n.ml, mlMessage{kind: aliveMsg, subject: n.i, inc: n.inc})
}

// heard handles one of memberlist's own messages that n received, at its
// agent.
func (s *Sim) heard(n *node, m mlMessage) {
	a := n.ml
	switch m.kind {
	case suspectMsg, deadMsg:
		// memberlist refutes a suspicion of itself (a shared agent goes
		// on spreading those of its crashed nodes, as their live group
		// would)
		if t := s.nodes[m.subject]; s.represents(a, m.subject) && t.up {
			s.refute(t)
			return
		}
		if m.kind == suspectMsg {
			s.suspect(a, m.subject, m.from, m.inc, a.owner != nil && m.from == n.i)
		} else {
			s.declareDead(a, m.subject, m.from, m.inc)
		}
	case aliveMsg:
		k, _ := s.knows(a, m.subject)
		if m.inc <= k.inc {
			return
		}
		k.inc, k.nfrom, k.dead = m.inc, 0, false
		delete(n.failedAt, m.subject) // as mesh's memberUp
		s.broadcastML(a, m)
	}
}

// failureDetectionTime is the model's expected time from a crash to the
// member lists dropping the node: the first probe (within a probe
// interval), its deadline (a probe interval), the suspicion timeout, the
// dead message's spread.
func (s *Sim) failureDetectionTime() time.Duration {
	return 2*s.cfg.ProbeInterval + suspicionTimeout(s.cfg.SuspicionMult, s.cfg.Nodes, s.cfg.ProbeInterval) + s.spread()
}
