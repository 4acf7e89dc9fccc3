package agent

import (
	"context"
	"runtime/debug"
	rtmetrics "runtime/metrics"
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
// 1.25 times the live heap plus 8 MiB (at least 32 MiB), measured every
// interval. A mesh that grows raises the limit at the next measurement;
// the runtime never spends more than half the CPU on collection to honour
// it.
func BoundHeap(ctx context.Context, interval time.Duration) {
	sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	limit := func(num, den, floor int64) {
		rtmetrics.Read(sample)
		if sample[0].Value.Kind() == rtmetrics.KindUint64 {
			live := int64(sample[0].Value.Uint64())
			debug.SetMemoryLimit(max(floor, live*num/den+8<<20))
		}
	}
	// The last collection was start-up's: what it found live is the state.
	limit(7, 5, 128<<20)
	for first := true; ; first = false {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		if first {
			debug.FreeOSMemory()
		}
		limit(5, 4, 32<<20)
	}
}
