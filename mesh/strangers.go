package mesh

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Strangers: hosts alive now that gossip never told this node of.
//
// memberlist spreads a join once, as a rumour, and the mesh turns its
// periodic push/pulls off (anti-entropy syncs the records): a node that
// the rumour of a join missed does not list the new member until its
// next rejoin of an absent host, a minute or more apart in a mesh of 50
// (ReconnectScale). Seen in the scale test: of 50 nodes started together,
// two that did not list each other for 60 s. Yet the new member's host
// record, signed as it started, reaches every node by the mesh's own
// gossip and anti-entropy. A host whose record arrives at most
// strangerFresh after it was signed, and that memberlist still does not
// list a grace period after the record arrived, is met at once: one join
// with it, a push/pull of the member lists both ways. A crashed host signs
// no new record, so the members that died are not tried again and again,
// and the old records a bootstrap brings are no news of a join.

const (
	// strangerFresh is how young a record must be to tell of a host alive
	// now: nodes started together hold records signed seconds before
	// their own start.
	strangerFresh = 2 * time.Minute
	// strangerGrace lets gossip bring the join first: the rumour and the
	// record travel in the same packets, and a false alarm costs a
	// push/pull of the whole member list.
	strangerGrace = 10 * time.Second
	// maxStrangers bounds the hosts waiting (beyond them the periodic
	// rejoin of absent hosts still finds the others), and strangerTries
	// the joins of one turn of the join loop.
	maxStrangers  = 32
	strangerTries = 3
)

type strangers struct {
	mu     sync.Mutex
	self   crdt.PublicKey
	routed func(netip.Addr) bool // nil: every address
	due    map[crdt.PublicKey]stranger
}

type stranger struct {
	at    time.Time // due from then on
	addrs []string  // its gossip addresses
}

// newStrangers: routed says which addresses WireGuard routes (a host at
// none of them would be refused as a member: it is not tried).
func newStrangers(self crdt.PublicKey, routed func(netip.Addr) bool) *strangers {
	return &strangers{self: self, routed: routed, due: map[crdt.PublicKey]stranger{}}
}

// note looks at the host records just added, at now by the wall clock and
// at signed by the clock records are judged by (the store's); isMember says
// whether gossip lists a node. It reports whether the first stranger of
// the batch began an empty wait (the join loop should look at its clock
// again).
func (s *strangers) note(added []*crdt.Record, now, signed time.Time, isMember func(crdt.PublicKey) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	wasEmpty := len(s.due) == 0
	for _, r := range added {
		if r.Kind() != crdt.KindHost {
			continue
		}
		h := r.Host()
		if h.Node == s.self || signed.Sub(h.Heartbeat) > strangerFresh || len(h.Addresses) == 0 || h.GossipPort == 0 {
			continue
		}
		if _, waiting := s.due[h.Node]; waiting || len(s.due) >= maxStrangers || isMember(h.Node) {
			continue
		}
		var addrs []string
		for _, a := range h.Addresses {
			if s.routed == nil || s.routed(a.Unmap()) {
				addrs = append(addrs, gossipAddr(a, h.GossipPort))
			}
		}
		if len(addrs) > 0 {
			s.due[h.Node] = stranger{at: now.Add(strangerGrace), addrs: addrs}
		}
	}
	return wasEmpty && len(s.due) > 0
}

// take removes and returns the strangers due at now that gossip still does
// not list, up to limit; those listed meanwhile are forgotten.
func (s *strangers) take(now time.Time, limit int, isMember func(crdt.PublicKey) bool) [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]string
	for k, st := range s.due {
		switch {
		case isMember(k):
			delete(s.due, k)
		case !st.at.After(now) && len(out) < limit:
			delete(s.due, k)
			out = append(out, st.addrs)
		}
	}
	return out
}

// next is how long until the first stranger is due; ok is false if none
// waits.
func (s *strangers) next(now time.Time) (d time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.due {
		if w := max(0, st.at.Sub(now)); !ok || w < d {
			d, ok = w, true
		}
	}
	return d, ok
}

// meetStrangers joins the strangers due now, each at the first of its
// addresses that answers, and says whether it met any.
func (n *Node) meetStrangers() bool {
	isMember := func(k crdt.PublicKey) bool {
		_, ok := n.member(k.String())
		return ok
	}
	met := false
	for _, addrs := range n.strangers.take(time.Now(), strangerTries, isMember) {
		if c, err := n.joinOneOf(addrs, len(addrs)); err == nil {
			n.log.Info("met a host that gossip had not listed", "addr", c)
			met = true
		} else {
			n.log.Debug("a host gossip had not listed did not answer", "addrs", addrs, "err", err)
		}
	}
	return met
}

func gossipAddr(a netip.Addr, port uint16) string {
	return net.JoinHostPort(a.String(), strconv.Itoa(int(port)))
}
