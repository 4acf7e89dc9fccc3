package mesh

import (
	"bytes"
	"compress/lzw"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// packetKinds tallies the packets a transport sends (delivered or not: a
// crashed node's, cut off by a partition, count too) by memberlist message
// kind (and the mesh's user messages by their own type), so that
// TestScale can say whose bytes an idle window carries. It reads
// memberlist's wire format (net.go of memberlist v0.7): an optional CRC
// header, compound packets of length-prefixed parts, LZW-compressed
// payloads; alive, suspect and dead messages are decoded to count the
// distinct (member, incarnation) pairs behind them: retransmissions of one
// rumour, or rumours new each time.
type packetKinds struct {
	bytes, msgs [256]atomic.Int64
	compressed  atomic.Int64 // LZW payloads read
	mu          sync.Mutex
	rumours     map[string]map[string]bool // by kind: "member/incarnation"
}

// memberlist's message types (unexported there).
const (
	mlPing, mlIndirectPing, mlAck, mlSuspect, mlAlive, mlDead, mlPushPull, mlCompound, mlUser, mlCompress = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
	mlNack, mlCRC                                                                                         = 11, 12
)

var mlKindName = map[byte]string{mlPing: "ping", mlIndirectPing: "indirect-ping", mlAck: "ack", mlSuspect: "suspect",
	mlAlive: "alive", mlDead: "dead", mlPushPull: "push-pull", mlNack: "nack"}

// kindKey spreads the mesh's user messages over keys of their own.
func kindKey(b []byte) (byte, string) {
	if b[0] == mlUser && len(b) > 1 {
		return 128 + b[1], fmt.Sprintf("mesh-%c", b[1])
	}
	if n, ok := mlKindName[b[0]]; ok {
		return b[0], n
	}
	return b[0], fmt.Sprint("kind-", b[0])
}

func (k *packetKinds) packet(b []byte) { k.part(b, len(b), 0) }

// part tallies one message of size bytes on the wire (its share of the
// packet), at nesting depth.
func (k *packetKinds) part(b []byte, size, depth int) {
	if len(b) == 0 || depth > 3 {
		return
	}
	switch b[0] {
	case mlCRC:
		if len(b) > 5 {
			k.part(b[5:], size, depth+1)
		}
		return
	case mlCompress:
		var c struct {
			Algo int
			Buf  []byte
		}
		if codec.NewDecoderBytes(b[1:], &codec.MsgpackHandle{}).Decode(&c) != nil {
			break
		}
		raw, err := io.ReadAll(io.LimitReader(lzw.NewReader(bytes.NewReader(c.Buf), lzw.LSB, 8), 1<<20))
		if err != nil {
			break
		}
		k.compressed.Add(1)
		k.part(raw, size, depth+1)
		return
	case mlCompound:
		if len(b) < 2 {
			break
		}
		n := int(b[1])
		if len(b) < 2+2*n {
			break
		}
		lens, rest := b[2:2+2*n], b[2+2*n:]
		total := len(rest)
		for i := range n {
			l := int(binary.BigEndian.Uint16(lens[2*i:]))
			if l > len(rest) || total == 0 {
				break
			}
			k.part(rest[:l], size*l/total, depth+1)
			rest = rest[l:]
		}
		return
	case mlAlive, mlSuspect, mlDead:
		var m struct {
			Incarnation uint32
			Node        string
		}
		if codec.NewDecoderBytes(b[1:], &codec.MsgpackHandle{}).Decode(&m) == nil {
			k.rumour(b[0], fmt.Sprintf("%s/%d", m.Node, m.Incarnation))
		}
	}
	key, _ := kindKey(b)
	k.bytes[key].Add(int64(size))
	k.msgs[key].Add(1)
}

func (k *packetKinds) rumour(kind byte, id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.rumours == nil {
		k.rumours = map[string]map[string]bool{}
	}
	name := mlKindName[kind]
	if k.rumours[name] == nil {
		k.rumours[name] = map[string]bool{}
	}
	k.rumours[name][id] = true
}

// kindSnapshot is a tally at one instant.
type kindSnapshot struct {
	bytes, msgs [256]int64
	rumours     map[string]int
}

func (k *packetKinds) snapshot() kindSnapshot {
	var s kindSnapshot
	for i := range s.bytes {
		s.bytes[i], s.msgs[i] = k.bytes[i].Load(), k.msgs[i].Load()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	s.rumours = map[string]int{}
	for name, ids := range k.rumours {
		s.rumours[name] = len(ids)
	}
	return s
}

// since describes what was sent between s0 and s, per node per second,
// the largest kinds first, and how many distinct rumours the alive,
// suspect and dead messages carried (counted since the start).
func (s kindSnapshot) since(s0 kindSnapshot, nodes int, secs float64) string {
	type row struct {
		name        string
		bytes, msgs int64
	}
	var rows []row
	for i := range s.bytes {
		if d := s.bytes[i] - s0.bytes[i]; d > 0 {
			name, ok := mlKindName[byte(i)]
			switch {
			case i >= 128:
				name = fmt.Sprintf("mesh-%c", byte(i-128))
			case !ok:
				name = fmt.Sprint("kind-", i)
			}
			rows = append(rows, row{name, d, s.msgs[i] - s0.msgs[i]})
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return int(b.bytes - a.bytes) })
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s %.0f B (%.2f msgs)", r.name, float64(r.bytes)/float64(nodes)/secs, float64(r.msgs)/float64(nodes)/secs))
	}
	var rs []string
	for _, name := range []string{"alive", "suspect", "dead"} {
		rs = append(rs, fmt.Sprintf("%s %d→%d", name, s0.rumours[name], s.rumours[name]))
	}
	return strings.Join(out, ", ") + "; distinct rumours " + strings.Join(rs, ", ")
}

// rumourMsgs counts the alive, suspect and dead messages sent so far.
func (k *packetKinds) rumourMsgs() int64 {
	return k.msgs[mlAlive].Load() + k.msgs[mlSuspect].Load() + k.msgs[mlDead].Load()
}

// rumoursSettled waits, up to bound, for a window in which no alive,
// suspect or dead message was sent: memberlist's broadcasts retransmit
// each rumour RetransmitMult × ceil(log10(N+1)) times from every node, and
// those of a forming cluster outlast the mesh's forming (at 128 nodes, 12
// transmissions of 128 join rumours: 26.9 alive messages per node per
// second, none of them new, for the 20 s after the mesh had formed,
// 2026-12-02). It returns how long it waited,
// and false if the rumours never stopped.
func (k *packetKinds) rumoursSettled(window, bound time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < bound {
		m0 := k.rumourMsgs()
		time.Sleep(window) // a measurement window
		if k.rumourMsgs() == m0 {
			return time.Since(start), true
		}
	}
	return time.Since(start), false
}

// TestPacketKindsReadMemberlist: the tally TestScale reads its idle
// windows with understands what memberlist v0.7 really sends, compressed
// and compound packets included.
func TestPacketKindsReadMemberlist(t *testing.T) {
	mem := NewMemNetwork()
	var kinds packetKinds
	var mls []*memberlist.Memberlist
	for i, host := range []string{"fe00::1", "fe00::2", "fe00::3"} {
		mc := memberlist.DefaultLANConfig()
		mc.Name = host
		mc.EnableCompression = i != 2
		mc.ProbeInterval = 50 * time.Millisecond
		mc.GossipInterval = 20 * time.Millisecond
		mc.Transport = &lossyTransport{NodeAwareTransport: mem.Transport(host, 7946), loss: new(atomic.Uint64), kinds: &kinds}
		mc.Logger = log.New(io.Discard, "", 0)
		ml := must(memberlist.Create(mc))
		t.Cleanup(func() { ml.Shutdown() })
		if i > 0 {
			must(ml.Join([]string{"[fe00::1]:7946"}))
		}
		mls = append(mls, ml)
	}
	eventually(t, 30*time.Second, "pings, acks and every join rumour counted", func() bool {
		s := kinds.snapshot()
		return s.msgs[mlPing] > 0 && s.msgs[mlAck] > 0 && s.msgs[mlAlive] > 0 && s.rumours["alive"] == 3
	})
	s := kinds.snapshot()
	if s.rumours["suspect"] != 0 || s.rumours["dead"] != 0 {
		t.Errorf("rumours of failure in a healthy cluster: %v", s.rumours)
	}
	if kinds.compressed.Load() == 0 {
		t.Error("no compressed payload read (two of the three nodes compress)")
	}
	if got := s.since(kindSnapshot{}, 3, 1); got == "" {
		t.Error("no description")
	}
	m0 := kinds.rumourMsgs()
	mls[2].Shutdown()
	eventually(t, 30*time.Second, "the crashed member suspected", func() bool {
		return kinds.snapshot().rumours["suspect"] > 0 && kinds.rumourMsgs() > m0
	})
}
