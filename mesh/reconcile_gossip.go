package mesh

import (
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/hashicorp/memberlist"
)

// The parts of gossip and fetching that the simulator (package sim) runs
// as they are, on its own clock and network: the message that spreads a
// record, the queue it waits in, its parsing, and the fetch schedule.

// QueueRecord queues the gossip message that spreads r from the node named
// self ("R" with the record when it fits inlineLimit, "H" announcing it
// otherwise), replacing an earlier message for the same record, and keeps
// the queue within maxQueued (the oldest go; anti-entropy covers them).
func QueueRecord(q *memberlist.TransmitLimitedQueue, r *crdt.Record, inlineLimit int, self string) {
	var msg []byte
	if r.Size() <= inlineLimit {
		msg = append(append(make([]byte, 0, 1+r.Size()), msgRecord), r.Bytes()...)
	} else {
		net, h := r.Network(), r.Hash()
		msg = append(append(append([]byte{msgHave}, net[:]...), h[:]...), self...)
	}
	q.QueueBroadcast(&broadcast{msg: msg, id: r.Hash()})
	if q.NumQueued() > maxQueued {
		q.Prune(maxQueued)
	}
}

// Gossip is a gossip message, parsed: a whole record (Record set), or an
// announcement of one too large for a packet, to fetch from Announcer.
type Gossip struct {
	Record    []byte
	Network   crdt.PublicKey
	Hash      crdt.Hash
	Announcer string
}

// ParseGossip parses a gossip message as the receiver does; ok is false
// for a message it ignores.
func ParseGossip(msg []byte) (g Gossip, ok bool) {
	if len(msg) == 0 {
		return g, false
	}
	switch msg[0] {
	case msgRecord:
		return Gossip{Record: msg[1:]}, true
	case msgHave:
		net, h, from, ok := haveMsg(msg[1:])
		return Gossip{Network: net, Hash: h, Announcer: from}, ok
	}
	return g, false
}

// FetchRetry is the wait before fetching an announced record again after
// tries failed attempts, and false once the fetcher gives up on it (and
// leaves it to anti-entropy).
func FetchRetry(tries int) (time.Duration, bool) {
	if tries >= fetchGiveUp {
		return 0, false
	}
	return min(fetchFirstRetry<<(max(tries, 1)-1), fetchMaxRetry), true
}

// RecordPath is the peer endpoint's path of one record (PathRecord filled).
func RecordPath(network crdt.PublicKey, h crdt.Hash) string { return recordPath(network, h) }
