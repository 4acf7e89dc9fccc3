package mesh

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"pgregory.net/rapid"
)

// noRoom is a delegate to which memberlist leaves only 40 bytes of each
// packet, too little for a record: as when its own broadcasts fill them.
// allRoom is one offered nearly whole packets, whatever memberlist's own
// broadcasts take.
type noRoom struct{ memberlist.Delegate }
type allRoom struct{ memberlist.Delegate }

func (d noRoom) GetBroadcasts(overhead, _ int) [][]byte {
	return d.Delegate.GetBroadcasts(overhead, 40)
}

func (d allRoom) GetBroadcasts(overhead, _ int) [][]byte {
	return d.Delegate.GetBroadcasts(overhead, 1300)
}

// A node whose gossip memberlist crowds out sends its records in packets
// of its own; the others, always offered room, send none. Anti-entropy is off
// after the first rounds, so only gossip can deliver.
func TestCrowdedOutGossipSendsItsOwnPackets(t *testing.T) {
	crowded := clusterAddr(0)
	c := newCluster(t, 4, func(cfg *Config) {
		cfg.SyncInterval = time.Hour
		if cfg.BindAddr == crowded {
			cfg.TuneMemberlist = func(mc *memberlist.Config) { mc.Delegate = noRoom{mc.Delegate} }
		} else {
			cfg.TuneMemberlist = func(mc *memberlist.Config) { mc.Delegate = allRoom{mc.Delegate} }
		}
	})
	c.waitMembership(t, 3)
	src := c.nodes[0]
	cl, w := c.claim(src, "crowded")
	eventually(t, 60*time.Second, "the claim and its attestation on every node", func() bool {
		for _, tn := range c.nodes {
			if !tn.holds(c.id, cl.Hash()) || !tn.holds(c.id, w.Hash()) {
				return false
			}
		}
		return true
	})
	if got := src.node.Stats().GossipBatches.Load(); got == 0 {
		t.Fatal("the crowded node sent no packets of its own")
	}
	for _, tn := range c.nodes[1:] {
		if got := tn.node.Stats().GossipBatches.Load(); got != 0 {
			t.Errorf("%s, offered room, sent %d packets of its own", tn.host, got)
		}
	}
}

func TestCrowdingNeedsTwoIntervalsOfScraps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	iv := 200 * time.Millisecond
	q := &Queue{NumNodes: func() int { return 10 }, RetransmitMult: 10}
	q.Queue(make([]byte, 140), sha([]byte{1}))
	c := NewCrowding(1400, t0)
	if c.CrowdedOut(t0.Add(5*iv), iv) {
		t.Fatal("crowded out with no offer at all (late timers, not crowding)")
	}
	if got := c.Offer(q, 2, 699, t0.Add(5*iv)); len(got) != 1 { // less than half a packet: scraps
		t.Fatalf("an offer of 699 bytes took %d messages of 140", len(got))
	}
	if !c.CrowdedOut(t0.Add(5*iv), iv) {
		t.Fatal("not crowded out after scraps only, for more than two intervals")
	}
	if c.CrowdedOut(t0.Add(7*iv+1), iv) {
		t.Fatal("still crowded out more than two intervals after the last offer")
	}
	c.Offer(q, 2, 700, t0.Add(8*iv))
	c.Offer(q, 2, 40, t0.Add(9*iv))
	if c.CrowdedOut(t0.Add(10*iv), iv) {
		t.Fatal("crowded out two intervals after room exactly")
	}
	if !c.CrowdedOut(t0.Add(10*iv+1), iv) {
		t.Fatal("not crowded out more than two intervals after room, with scraps since")
	}
}

// Batch takes what fits, each message once per transmission, and
// SplitBatch gives back exactly those messages; SplitBatch refuses any
// framing that does not add up.
func TestBatchRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		q := &Queue{NumNodes: func() int { return 10 }, RetransmitMult: 1}
		msgs := rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 1, 300), 0, 40).Draw(t, "msgs")
		for i, m := range msgs {
			m[0] = 'R' // never a batch inside a batch
			q.Queue(m, sha([]byte(fmt.Sprint(i))))
		}
		limit := rapid.IntRange(1, 1400).Draw(t, "limit")
		b := Batch(q, limit)
		if b == nil {
			for _, m := range msgs {
				if 1+batchPartOverhead+len(m) <= limit {
					t.Fatalf("nothing batched, but a message of %d bytes fits %d", len(m), limit)
				}
			}
			return
		}
		if len(b) > limit || b[0] != msgBatch {
			t.Fatalf("batch of %d bytes (type %q) for a limit of %d", len(b), b[0], limit)
		}
		parts, ok := SplitBatch(b[1:])
		if !ok {
			t.Fatal("a batch does not split")
		}
		for _, p := range parts {
			found := false
			for _, m := range msgs {
				found = found || bytes.Equal(p, m)
			}
			if !found {
				t.Fatalf("part %x is none of the queued messages", p)
			}
		}
		cut := rapid.IntRange(0, len(b)-2).Draw(t, "cut")
		if got, ok := SplitBatch(b[1 : 1+cut]); ok && cut > 0 {
			// A prefix splits only if it ends at a message's end.
			n := 0
			for _, p := range got {
				n += batchPartOverhead + len(p)
			}
			if n != cut {
				t.Fatalf("a prefix of %d bytes split into %d bytes of messages", cut, n)
			}
		}
	})
}

func TestSplitBatchRefuses(t *testing.T) {
	for _, b := range [][]byte{
		{},                     // no message
		{0},                    // half a length
		{0, 0},                 // an empty message
		{0, 3, 'R', 1},         // shorter than its length
		{0, 2, 'B', 0},         // a batch in a batch
		{0, 1, 'R', 0, 5, 'R'}, // the second message cut
	} {
		if _, ok := SplitBatch(b); ok {
			t.Errorf("SplitBatch(%x) accepted", b)
		}
	}
}

func FuzzSplitBatch(f *testing.F) {
	f.Add([]byte{0, 1, 'R', 0, 2, 'H', 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, ok := SplitBatch(b)
		if !ok {
			return
		}
		n := 0
		for _, p := range parts {
			if len(p) == 0 || p[0] == msgBatch {
				t.Fatalf("part %x", p)
			}
			n += batchPartOverhead + len(p)
		}
		if n != len(b) {
			t.Fatalf("parts of %d bytes from %d", n, len(b))
		}
	})
}
