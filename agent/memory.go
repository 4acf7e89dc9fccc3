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
// interval has passed, it allows 1.4 times the live heap plus 8 MiB (at
// least 128 MiB, for a new node's first sync) for the work that follows
// start-up (the DNS fast path's table, dns.json, the mesh's start, a first
// state write). Then it collects once and gives back what is free (the
// last collection of an idle agent may be from before the mesh started,
// and count what its start replaced), and from then on keeps the limit at
// 1.25 times the live heap plus 8 MiB (at least 32 MiB).
//
// The limit follows every collection: a heap that grows (a new node
// bootstrapping 100,000 hosts, 200 MB in half a minute) raises it at once.
// Measured every interval instead, the limit stayed where the last
// measurement put it while the state grew past it, and the runtime
// collected without pause, a third of the CPU of such a bootstrap.
func BoundHeap(ctx context.Context, interval time.Duration) {
	type bound struct{ num, den, floor int64 }
	var cur atomic.Pointer[bound]
	limit := func() {
		b := cur.Load()
		sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
		rtmetrics.Read(sample)
		if sample[0].Value.Kind() == rtmetrics.KindUint64 {
			live := int64(sample[0].Value.Uint64())
			debug.SetMemoryLimit(max(b.floor, live*b.num/b.den+8<<20))
		}
	}
	// The last collection was start-up's: what it found live is the state.
	cur.Store(&bound{7, 5, 128 << 20})
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
	cur.Store(&bound{5, 4, 32 << 20})
	debug.FreeOSMemory()
	limit()
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
