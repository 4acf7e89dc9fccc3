package mesh

import (
	"encoding/binary"
	"sync/atomic"
	"time"
)

// Crowded-out gossip. memberlist fills each gossip packet with its own
// broadcasts first and offers the mesh only the room left
// (memberlist.getBroadcasts). When many members fail at once, its queue of
// suspect and dead messages fills whole packets for tens of seconds, and a
// new record waits behind them: in the simulator, 1,000 nodes with 10%
// down took 12.8–21.0 s to reach every node, 0.9 s with none down. So when
// memberlist has offered the mesh only scraps (less than half a packet)
// for two gossip intervals while it has records queued, the mesh sends
// packets of its own, one gossip interval apart, to as many random members
// as memberlist gossips to, until memberlist leaves room again. No offer
// at all is not crowding: memberlist's timers are late (a starved
// process), and packets of the mesh's own would add to the load.
//
// Its packet is one memberlist user message of type 'B': the gossip
// messages it carries, each after its length (two bytes, big-endian).
// They come from the same queue, so each still counts against its
// retransmit limit.
const msgBatch = 'B'

// batchPartOverhead is the length before each message of a batch.
const batchPartOverhead = 2

// roomyShare: an offer of at least 1/roomyShare of a packet is room.
const roomyShare = 2

// Crowding tracks the room memberlist offers the mesh's broadcasts.
type Crowding struct {
	packet int          // UDPBufferSize
	roomy  atomic.Int64 // unix nanos of the last offer of room
	scraps atomic.Int64 // unix nanos of the last offer too small to be room
}

// NewCrowding starts a tracker for packets of packet bytes, as if room had
// been offered at now.
func NewCrowding(packet int, now time.Time) *Crowding {
	c := &Crowding{packet: packet}
	c.roomy.Store(now.UnixNano())
	return c
}

// Offer is memberlist's offer of limit bytes (each message costing
// overhead more) to the messages of q, at now: what q gives, the offer
// noted.
func (c *Crowding) Offer(q *Queue, overhead, limit int, now time.Time) [][]byte {
	if limit*roomyShare >= c.packet {
		c.roomy.Store(now.UnixNano())
	} else {
		c.scraps.Store(now.UnixNano())
	}
	return q.GetBroadcasts(overhead, limit)
}

// CrowdedOut reports whether memberlist has offered only scraps for two
// gossip intervals, the last of them within the last two.
func (c *Crowding) CrowdedOut(now time.Time, interval time.Duration) bool {
	t, span := now.UnixNano(), 2*int64(interval)
	return t-c.roomy.Load() > span && t-c.scraps.Load() <= span
}

// BatchLimit is the room for a batch in a packet of packet bytes: less
// memberlist's user message type (1 byte) and CRC (5), and 17 to spare
// (the mesh sets no label; one of up to 15 bytes would fit).
func BatchLimit(packet int) int { return packet - 1 - 5 - 17 }

// Batch takes from q the messages that fit a batch of limit bytes (its
// type byte included), counting one transmission of each, and frames them;
// nil if q gives none.
func Batch(q *Queue, limit int) []byte {
	msgs := q.GetBroadcasts(batchPartOverhead, limit-1)
	if len(msgs) == 0 {
		return nil
	}
	size := 1
	for _, m := range msgs {
		size += batchPartOverhead + len(m)
	}
	b := make([]byte, 1, size)
	b[0] = msgBatch
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		b = append(b, m...)
	}
	return b
}

// SplitBatch returns the messages of a batch (without its type byte); ok is
// false if the lengths do not add up, or a message is empty or a batch.
func SplitBatch(b []byte) (msgs [][]byte, ok bool) {
	for len(b) > 0 {
		if len(b) < batchPartOverhead {
			return nil, false
		}
		l := int(binary.BigEndian.Uint16(b))
		b = b[batchPartOverhead:]
		if l == 0 || l > len(b) || b[0] == msgBatch {
			return nil, false
		}
		msgs = append(msgs, b[:l:l])
		b = b[l:]
	}
	return msgs, len(msgs) > 0
}
