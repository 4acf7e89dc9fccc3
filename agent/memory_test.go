package agent

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// startBoundHeap runs BoundHeap until the test ends (the process's limit
// restored then) and returns the first limit it set.
func startBoundHeap(t *testing.T, interval time.Duration) int64 {
	old := debug.SetMemoryLimit(-1)
	debug.SetMemoryLimit(math.MaxInt64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; debug.SetMemoryLimit(old) })
	runtime.GC()
	go func() { defer close(done); BoundHeap(ctx, interval) }()
	var first int64
	eventually(t, 10*time.Second, "a first limit", func() bool {
		first = debug.SetMemoryLimit(-1)
		return first != math.MaxInt64
	})
	return first
}

// BoundHeap sets its limit at once, from what the last collection found
// live, with room for the work after start-up; then it keeps it closer,
// and follows the live heap up when it grows.
func TestBoundHeapFollowsTheLiveHeap(t *testing.T) {
	first := startBoundHeap(t, 200*time.Millisecond)
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

	// 96 MiB more live: the limit rises to 1.15 times it (at least) once
	// collections have seen it.
	hold := make([][]byte, 96)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
		hold[i][0] = 1
	}
	// The lower of the last two collections counts: it follows once two
	// have seen the heap.
	eventually(t, 10*time.Second, "the limit to follow the live heap", func() bool {
		runtime.GC()
		return debug.SetMemoryLimit(-1) > max(steady, 96<<20*23/20)
	})
	runtime.KeepAlive(hold)
}

// The limit follows the live heap at the collections, not at the next
// interval: a state that grows (a new node's bootstrap) is never held
// under a limit it has outgrown, where the runtime would collect without
// pause.
func TestBoundHeapFollowsEachCollection(t *testing.T) {
	startBoundHeap(t, time.Hour)
	// 160 MiB more live, well within the hour's interval: 1.25 times it
	// is above the first limit's 128 MiB floor.
	hold := make([][]byte, 160)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
		hold[i][0] = 1
	}
	eventually(t, 10*time.Second, "the limit to follow the collections", func() bool {
		runtime.GC()
		return debug.SetMemoryLimit(-1) > 160<<20*5/4
	})
	runtime.KeepAlive(hold)
}

// The bound at rest is 1.15 times the live heap; while it grows, 1.25
// times (room to grow); a collection that caught a passing peak does not
// raise it: the lower of the last two collections counts.
func TestBoundForRestGrowthAndPeaks(t *testing.T) {
	const mb = 1 << 20
	steady, restNum, restDen := int64(200*mb), int64(23), int64(20)
	if got, want := boundFor(steady, steady, restNum, restDen), steady*23/20+8*mb; got != want {
		t.Fatalf("at rest: %d MiB, want %d MiB", got/mb, want/mb)
	}
	if got, want := boundFor(steady, 0, restNum, restDen), steady*23/20+8*mb; got != want {
		t.Fatalf("first collection: %d MiB, want %d MiB", got/mb, want/mb)
	}
	// A peak of 10%: the bound stays the last collection's, with room.
	if got, want := boundFor(steady*11/10, steady, restNum, restDen), steady*5/4+8*mb; got != want {
		t.Fatalf("growing: %d MiB, want %d MiB", got/mb, want/mb)
	}
	// Growth confirmed by the next collection raises it.
	if got, want := boundFor(steady*12/10, steady*11/10, restNum, restDen), steady*11/10*5/4+8*mb; got != want {
		t.Fatalf("still growing: %d MiB, want %d MiB", got/mb, want/mb)
	}
	// Back to rest after a peak: the lower, at the rest factor.
	if got, want := boundFor(steady, steady*11/10, restNum, restDen), steady*23/20+8*mb; got != want {
		t.Fatalf("after a peak: %d MiB, want %d MiB", got/mb, want/mb)
	}
	// A factor looser than growth's (1.4) stays.
	if got, want := boundFor(steady*12/10, steady, 7, 5), steady*7/5+8*mb; got != want {
		t.Fatalf("growing at 1.4: %d MiB, want %d MiB", got/mb, want/mb)
	}
}
