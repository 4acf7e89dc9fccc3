package mesh

import (
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// The parts of gossip and fetching that the simulator (package sim) runs
// as they are, on its own clock and network: the message that spreads a
// record, the queue it waits in, its parsing, and the fetch schedule.

// QueueRecord queues the gossip message that spreads r from the node named
// self (RecordMessage), replacing an earlier message for the same record,
// and keeps the queue within maxQueued (the oldest go; anti-entropy covers
// them).
func QueueRecord(q *Queue, r *crdt.Record, inlineLimit int, self string) {
	QueueMessage(q, RecordMessage(r, inlineLimit, self), r.Hash())
}

// RecordMessage is the gossip message that spreads r from the node named
// self: "R" with the record when it fits inlineLimit (the same bytes from
// every node), "H" announcing it otherwise.
func RecordMessage(r *crdt.Record, inlineLimit int, self string) []byte {
	if r.Size() <= inlineLimit {
		return append(append(make([]byte, 0, 1+r.Size()), msgRecord), r.Bytes()...)
	}
	net, h := r.Network(), r.Hash()
	return append(append(append([]byte{msgHave}, net[:]...), h[:]...), self...)
}

// QueueMessage queues msg, the gossip message of the record id, as
// QueueRecord does; msg is not copied (it may be shared: the simulator
// queues one message per record at every node).
func QueueMessage(q *Queue, msg []byte, id crdt.Hash) {
	q.Queue(msg, id)
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
