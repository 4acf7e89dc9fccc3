package mesh

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Crowded-out gossip. memberlist fills each gossip packet with its own
// broadcasts first and offers the mesh only the room left
// (memberlist.getBroadcasts). When many members fail at once, its queue of
// suspect and dead messages fills whole packets for tens of seconds, and a
// new record waits behind them: in the simulator, 1,000 nodes with 10% down
// took 12–16 s to reach every node, 3 s with none down. So when the mesh
// has had no room for two gossip intervals while it has records queued, it
// sends packets of its own, one gossip interval apart, to as many random
// members as memberlist gossips to, until memberlist leaves room again.
//
// Its packet is one memberlist user message of type 'B': the gossip
// messages it carries, each after its length (two bytes, big-endian).
// They come from the same queue, so each still counts against its
// retransmit limit.
const msgBatch = 'B'

// batchPartOverhead is the length before each message of a batch.
const batchPartOverhead = 2

// roomyShare: an offer of at least this share of a packet is room enough.
const roomyShare = 2

// Crowding tracks the room memberlist leaves the mesh's broadcasts.
type Crowding struct {
	packet int          // UDPBufferSize
	roomy  atomic.Int64 // unix nanos of the last roomy offer
}

// NewCrowding starts a tracker for packets of packet bytes, as if it had
// been offered room at now.
func NewCrowding(packet int, now time.Time) *Crowding {
	c := &Crowding{packet: packet}
	c.roomy.Store(now.UnixNano())
	return c
}

// Offered notes that memberlist offered limit bytes for the mesh's
// broadcasts at now.
func (c *Crowding) Offered(limit int, now time.Time) {
	if limit*roomyShare >= c.packet {
		c.roomy.Store(now.UnixNano())
	}
}

// CrowdedOut reports whether memberlist has offered no room for two gossip
// intervals.
func (c *Crowding) CrowdedOut(now time.Time, interval time.Duration) bool {
	return now.UnixNano()-c.roomy.Load() > 2*int64(interval)
}

// BatchLimit is the room for the messages of one batch in a packet of
// packet bytes: less memberlist's user message type, its CRC and a label.
func BatchLimit(packet int) int { return packet - 1 - 5 - 16 - 1 }

// Batch takes from q the messages that fit a batch of limit bytes (its
// type byte included), counting one transmission of each, and frames them;
// nil if q gives none.
func Batch(q *memberlist.TransmitLimitedQueue, limit int) []byte {
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
