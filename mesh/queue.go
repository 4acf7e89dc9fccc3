package mesh

import (
	"math"
	"sync"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/google/btree"
)

// Queue holds the gossip messages waiting to be sent, one per record. It
// behaves as memberlist's TransmitLimitedQueue, which it replaces for the
// mesh's gossip: each message is sent up to RetransmitMult·ceil(log10(N+1))
// times, those sent fewest times first, among them the largest that fits,
// then the newest; a newer message for a record replaces the older.
//
// It exists because memberlist's queue (v0.7.0) loses messages: it numbers
// them from 1 again whenever it empties, so a message queued later can get
// the number of one still queued, and once the two have been sent as often
// and are as long (all claims are), its tree keeps only one of them
// (hashicorp/memberlist#263, open since 2022; TestQueueKeepsWhatMemberlistLoses).
// Numbers here only grow. The message a new one replaces is found by its
// record, where memberlist's asks every queued message.
type Queue struct {
	// NumNodes is the number of members, for the retransmit limit.
	NumNodes       func() int
	RetransmitMult int

	mu   sync.Mutex
	tree *btree.BTreeG[*queued]
	byID map[crdt.Hash]*queued
	seq  uint64
}

type queued struct {
	transmits int
	size      int
	seq       uint64
	id        crdt.Hash
	msg       []byte
}

// sendsFirst orders the queue: fewest transmissions, then largest, then
// newest.
func sendsFirst(a, b *queued) bool {
	if a.transmits != b.transmits {
		return a.transmits < b.transmits
	}
	if a.size != b.size {
		return a.size > b.size
	}
	return a.seq > b.seq
}

// Queue queues msg, the gossip message of the record id, replacing the
// record's earlier message. msg is not copied.
func (q *Queue) Queue(msg []byte, id crdt.Hash) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.tree == nil {
		q.tree, q.byID = btree.NewG(32, sendsFirst), map[crdt.Hash]*queued{}
	}
	if old := q.byID[id]; old != nil {
		q.tree.Delete(old)
	}
	q.seq++
	m := &queued{size: len(msg), seq: q.seq, id: id, msg: msg}
	q.byID[id] = m
	q.tree.ReplaceOrInsert(m)
}

// NumQueued is the number of messages waiting.
func (q *Queue) NumQueued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.tree == nil {
		return 0
	}
	return q.tree.Len()
}

// Prune keeps the max messages that would be sent first and drops the
// rest (the most sent, then the smallest and oldest).
func (q *Queue) Prune(max int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.tree != nil && q.tree.Len() > max {
		m, _ := q.tree.DeleteMax()
		delete(q.byID, m.id)
	}
}

// GetBroadcasts takes the messages that fit limit bytes, each costing
// overhead more, in the queue's order, and counts one transmission of each;
// a message sent its last time leaves the queue. It is memberlist's
// algorithm: within the tier of the fewest transmissions the largest
// message that fits, again while room is left, then the next tier.
func (q *Queue) GetBroadcasts(overhead, limit int) [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.tree == nil || q.tree.Len() == 0 {
		return nil
	}
	last := retransmitLimit(q.RetransmitMult, q.NumNodes())
	lo, _ := q.tree.Min()
	hi, _ := q.tree.Max()
	var (
		used  int
		out   [][]byte
		again []*queued
	)
	for t := lo.transmits; t <= hi.transmits; {
		free := limit - used - overhead
		if free <= 0 {
			break
		}
		var take *queued
		q.tree.AscendRange(&queued{transmits: t, size: free, seq: math.MaxUint64},
			&queued{transmits: t + 1, size: math.MaxInt, seq: math.MaxUint64},
			func(m *queued) bool { take = m; return false })
		if take == nil {
			t++
			continue
		}
		used += overhead + take.size
		out = append(out, take.msg)
		q.tree.Delete(take)
		if take.transmits+1 >= last {
			delete(q.byID, take.id)
			continue
		}
		take.transmits++
		again = append(again, take)
	}
	for _, m := range again {
		q.tree.ReplaceOrInsert(m)
	}
	return out
}

// retransmitLimit is memberlist's: mult·ceil(log10(n+1)).
func retransmitLimit(mult, n int) int {
	return mult * int(math.Ceil(math.Log10(float64(n+1))))
}
