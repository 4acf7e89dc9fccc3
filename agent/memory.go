package agent

import (
	"context"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync/atomic"
	"time"
)

// BoundHeap keeps a soft memory limit a little above what is live, so
// that the agent's memory follows its state instead of doubling it. Call
// it once the state is built (at the first answer). Until the first
// interval has passed, it allows 1.25 times the live heap plus 8 MiB (at
// least 128 MiB, for a new node's first sync) for the work that follows
// start-up (the DNS fast path's table, dns.json, the mesh's start, a first
// state write). Then it collects once and gives back what is free (the
// last collection of an idle agent may be from before the mesh started,
// and count what its start replaced), and from then on keeps the limit at
// 1.15 times the live heap plus 8 MiB (at least 32 MiB), or 1.25 times
// while the heap grows.
//
// The limit is set after every collection. Set every 10 s, it stayed
// below a heap that grew faster (a new node bootstrapping 100,000 hosts:
// 200 MB in half a minute), and the runtime collected without pause. Two
// rules keep it close: the live heap it is taken from is the lower of the
// last two collections' (a collection that caught a passing peak, two
// views at once, does not raise the limit until the next one finds the
// same), and the looser factor applies only while the live heap grows by
// more than 5% a collection. At 100,000 hosts with a peer, 1.25 times at
// rest kept 265-278 MB of RSS; these rules keep 238-241 MB, for a new
// node's bootstrap 1.2-1.45 times as long (40-42 s against 29-36).
// Start-up's window at 1.4 times peaked at 254-258 MB; at 1.25, 243-245
// MB, the first answer as soon (1.24-1.43 s against 1.20-1.56).
func BoundHeap(ctx context.Context, interval time.Duration) {
	type bound struct{ num, den, floor int64 }
	var cur atomic.Pointer[bound]
	var prev atomic.Int64 // what the last collection found live
	limit := func() {
		sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
		rtmetrics.Read(sample)
		if sample[0].Value.Kind() != rtmetrics.KindUint64 {
			return
		}
		live := int64(sample[0].Value.Uint64())
		b := cur.Load()
		debug.SetMemoryLimit(max(b.floor, boundFor(live, prev.Swap(live), b.num, b.den)))
	}
	// The last collection was start-up's: what it found live is the state.
	cur.Store(&bound{5, 4, 128 << 20})
	limit()
	afterEachGC(func() bool {
		if ctx.Err() != nil {
			return false
		}
		limit()
		return true
	})
	select {
	case <-ctx.Done():
		return
	case <-time.After(interval):
	}
	cur.Store(&bound{23, 20, 32 << 20})
	prev.Store(0) // FreeOSMemory's collection sets the base at once
	debug.FreeOSMemory()
	limit()
}

// boundFor is the limit for a heap found live after a collection that
// found prev (0: none known) at rest factor num/den: at least 1.25 times
// while the heap grows, and taken from the lower of the two.
func boundFor(live, prev, num, den int64) int64 {
	if prev > 0 {
		if live > prev+prev/20 {
			num, den = max(num*4, den*5), den*4
		}
		live = min(live, prev)
	}
	return live*num/den + 8<<20
}

// afterEachGC calls f after each collection (in the runtime's cleanup
// goroutine: f must be quick) until f returns false.
func afterEachGC(f func() bool) {
	type sentinel struct{ _ [32]byte } // not a tiny allocation, which may outlive a cycle
	var arm func()
	arm = func() {
		runtime.AddCleanup(new(sentinel), func(struct{}) {
			if f() {
				arm()
			}
		}, struct{}{})
	}
	arm()
}
