package sim

import (
	"net"
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
// newer message about a node replaces an older one, as in memberlist.
type mlBroadcast struct {
	subject int
	msg     []byte
}

func (b *mlBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*mlBroadcast)
	return ok && ob.subject == b.subject
}
func (b *mlBroadcast) Message() []byte { return b.msg }
func (b *mlBroadcast) Finished()       {}

// knowledge is what a node knows of another's health.
type knowledge struct {
	inc   uint32
	froms []int // who suspects it, at this incarnation
	dead  bool
}

// metaSize is the size of a member proof (mesh/member.go) for one network.
const metaSize = 12 + 32 + 64

func (s *Sim) mlBytes(m mlMessage) []byte {
	var b []byte
	switch m.kind {
	case aliveMsg:
		b = mlEncode(aliveMsg, &mlAlive{Incarnation: m.inc, Node: s.nodes[m.subject].name, Addr: net.ParseIP("fd00::1:2").To16(),
			Port: 7946, Meta: make([]byte, metaSize), Vsn: []uint8{1, 5, 2, 0, 0, 0}})
	default:
		b = mlEncode(m.kind, &mlSuspect{Incarnation: m.inc, Node: s.nodes[m.subject].name, From: s.nodes[m.from].name})
	}
	s.mlMsgs[string(b)] = m
	return b
}

func (s *Sim) knows(n *node, subject int) *knowledge {
	if n.health == nil {
		n.health = map[int]*knowledge{}
	}
	k := n.health[subject]
	if k == nil {
		k = &knowledge{inc: s.nodes[subject].inc}
		n.health[subject] = k
	}
	return k
}

func (s *Sim) broadcastML(n *node, m mlMessage) {
	n.mlq.QueueBroadcast(&mlBroadcast{subject: m.subject, msg: s.mlBytes(m)})
	s.queued(n)
}

// suspect is n's suspicion of subject, from from (n itself after a failed
// probe, or the message it heard).
func (s *Sim) suspect(n *node, subject, from int, inc uint32) {
	k := s.knows(n, subject)
	if k.dead || inc < k.inc {
		return
	}
	if inc > k.inc {
		k.inc, k.froms = inc, nil
	}
	for _, f := range k.froms {
		if f == from {
			return
		}
	}
	confirmations := max(0, s.cfg.SuspicionMult-2)
	k.froms = append(k.froms, from)
	if len(k.froms) > 1+confirmations {
		return // memberlist stops rebroadcasting past k confirmations
	}
	s.broadcastML(n, mlMessage{kind: suspectMsg, subject: subject, from: from, inc: inc})
	if from != n.i || len(k.froms) > 1 {
		return
	}
	// The first suspecter declares it dead at the suspicion timeout,
	// unless it was refuted meanwhile; the member lists drop it then.
	target := s.nodes[subject]
	s.after(suspicionTimeout(s.cfg.SuspicionMult, s.numMembers(), s.cfg.ProbeInterval), func() {
		if !n.up || k.dead || k.inc != inc || target.up && target.inc > inc {
			return
		}
		s.declareDead(n, subject, n.i, inc)
	})
}

func (s *Sim) declareDead(n *node, subject, from int, inc uint32) {
	k := s.knows(n, subject)
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
	k := s.knows(n, n.i)
	k.inc, k.froms, k.dead = n.inc, nil, false
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
		k := s.knows(n, m.subject)
		if m.inc <= k.inc {
			return
		}
		k.inc, k.froms, k.dead = m.inc, nil, false
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
