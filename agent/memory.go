package agent

import (
	"context"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// BoundHeap keeps a soft memory limit a little above what is live: 1.25
// times the live heap plus 8 MiB (at least 32 MiB), measured every
// interval, so the agent's memory follows its state instead of doubling it.
// A mesh that grows raises the limit at the next measurement; the runtime
// never spends more than half the CPU on collection to honour it.
func BoundHeap(ctx context.Context, interval time.Duration) {
	sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	for {
		// The first measurement waits: start-up decodes the whole state
		// file and must not be squeezed by a limit taken before it.
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		rtmetrics.Read(sample)
		if sample[0].Value.Kind() == rtmetrics.KindUint64 {
			live := int64(sample[0].Value.Uint64())
			debug.SetMemoryLimit(max(32<<20, live*5/4+8<<20))
		}
	}
}
