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

// knows is n's knowledge of subject, and the suspecters it heard.
func (s *Sim) knows(n *node, subject int) (*knowledge, []int32) {
	h := s.health[subject]
	if h == nil {
		h = &subjectHealth{k: make([]knowledge, len(s.nodes)), froms: make([]int32, len(s.nodes)*s.keep())}
		s.health[subject] = h
	}
	k := &h.k[n.i]
	if ep := uint32(n.epoch) + 1; k.ep != ep {
		*k = knowledge{inc: s.nodes[subject].inc, ep: ep}
	}
	return k, h.froms[n.i*s.keep():][:s.keep()]
}

func (s *Sim) broadcastML(n *node, m mlMessage) {
	n.mlq.QueueBroadcast(&mlBroadcast{subject: m.subject, name: s.nodes[m.subject].name, msg: s.mlBytes(m)})
	s.queued(n)
}

// suspect is n's suspicion of subject, from from (n itself after a failed
// probe, or the message it heard).
func (s *Sim) suspect(n *node, subject, from int, inc uint32) {
	k, froms := s.knows(n, subject)
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
	s.broadcastML(n, mlMessage{kind: suspectMsg, subject: subject, from: from, inc: inc})
	if from != n.i || k.nfrom > 1 {
		return
	}
	// The first suspecter declares it dead at the suspicion timeout,
	// unless it was refuted meanwhile or crashed (its timer dies with
	// it); the member lists drop it then.
	target := s.nodes[subject]
	ep := n.epoch
	s.after(suspicionTimeout(s.cfg.SuspicionMult, s.numMembers(), s.cfg.ProbeInterval), func() {
		if !n.up || n.epoch != ep {
			return
		}
		if k, _ := s.knows(n, subject); k.dead || k.inc != inc || target.up && target.inc > inc {
			return
		}
		s.declareDead(n, subject, n.i, inc)
	})
}

func (s *Sim) declareDead(n *node, subject, from int, inc uint32) {
	k, _ := s.knows(n, subject)
	if k.dead || inc < k.inc {
		return
	}
	k.inc, k.dead = inc, true
	s.broadcastML(n, mlMessage{kind: deadMsg, subject: subject, from: from, inc: inc})
	t := s.nodes[subject]
	if t.counted && !(t.up && t.inc > inc) {
		t.counted = false
		t.deadAt = s.now
		s.counted[t.i%2]--
	}
}

// refute is a node that came back announcing itself alive.
func (s *Sim) refute(n *node) {
	n.inc++
	k, _ := s.knows(n, n.i)
	k.inc, k.nfrom, k.dead = n.inc, 0, false
	s.broadcastML(n, mlMessage{kind: aliveMsg, subject: n.i, inc: n.inc})
}

// heard handles one of memberlist's own messages at n.
func (s *Sim) heard(n *node, m mlMessage) {
	switch m.kind {
	case suspectMsg:
		if m.subject == n.i {
			if n.up {
				s.refute(n) // memberlist refutes a suspicion of itself
			}
			return
		}
		s.suspect(n, m.subject, m.from, m.inc)
	case deadMsg:
		if m.subject == n.i {
			if n.up {
				s.refute(n)
			}
			return
		}
		s.declareDead(n, m.subject, m.from, m.inc)
	case aliveMsg:
		k, _ := s.knows(n, m.subject)
		if m.inc <= k.inc {
			return
		}
		k.inc, k.nfrom, k.dead = m.inc, 0, false
		delete(n.failedAt, m.subject) // as mesh's memberUp
		s.broadcastML(n, m)
	}
}

// failureDetectionTime is the model's expected time from a crash to the
// member lists dropping the node: the first probe (within a probe
// interval), the probe timeout, the suspicion timeout, the dead message's
// spread.
func (s *Sim) failureDetectionTime() time.Duration {
	floor := time.Duration(gossipFloor(s.cfg.Nodes, s.cfg.GossipNodes) * float64(s.cfg.GossipInterval))
	return s.cfg.ProbeInterval + s.cfg.ProbeTimeout + suspicionTimeout(s.cfg.SuspicionMult, s.cfg.Nodes, s.cfg.ProbeInterval) + floor
}
