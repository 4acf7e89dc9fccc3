package agent

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// BoundHeap sets its limit at once, from what the last collection found
// live, with room for the work after start-up; then it keeps it closer,
// and follows the live heap up when it grows.
func TestBoundHeapFollowsTheLiveHeap(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	debug.SetMemoryLimit(math.MaxInt64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() { cancel(); <-done }()

	runtime.GC()
	go func() { defer close(done); BoundHeap(ctx, 200*time.Millisecond) }()
	var first int64
	eventually(t, 10*time.Second, "a first limit", func() bool {
		first = debug.SetMemoryLimit(-1)
		return first != math.MaxInt64
	})
	if first < 128<<20 {
		t.Fatalf("first limit %d MiB, below the 128 MiB floor of the first interval", first>>20)
	}
	// This test's heap is a few MiB: the steady limit is far below the
	// first one.
	var steady int64
	eventually(t, 10*time.Second, "the steady limit", func() bool {
		steady = debug.SetMemoryLimit(-1)
		return steady < first
	})
	if steady < 32<<20 {
		t.Fatalf("steady limit %d MiB, below the 32 MiB floor", steady>>20)
	}

	// 96 MiB more live: the limit rises above it once a collection has
	// seen it.
	hold := make([][]byte, 96)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
		hold[i][0] = 1
	}
	runtime.GC()
	eventually(t, 10*time.Second, "the limit to follow the live heap", func() bool {
		return debug.SetMemoryLimit(-1) > steady+90<<20
	})
	runtime.KeepAlive(hold)
}

// The limit follows the live heap at each collection, not at the next
// interval: a state that grows (a new node's bootstrap) is never held
// under a limit it has outgrown, where the runtime would collect without
// pause.
func TestBoundHeapFollowsEachCollection(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	debug.SetMemoryLimit(math.MaxInt64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() { cancel(); <-done }()

	runtime.GC()
	go func() { defer close(done); BoundHeap(ctx, time.Hour) }()
	var first int64
	eventually(t, 10*time.Second, "a first limit", func() bool {
		first = debug.SetMemoryLimit(-1)
		return first != math.MaxInt64
	})
	// 160 MiB more live, well within the hour's interval: 1.4 times it
	// is above the first limit's 128 MiB floor.
	hold := make([][]byte, 160)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
		hold[i][0] = 1
	}
	runtime.GC()
	eventually(t, 10*time.Second, "the limit to follow the collection", func() bool {
		return debug.SetMemoryLimit(-1) > 160<<20*7/5
	})
	runtime.KeepAlive(hold)
}
