package riblt

import (
	"runtime"
	"testing"

	"pgregory.net/rapid"
)

// The encoder's index answers as a map would under any mix of adds and
// removes, every item of the pool checked after every step: small pools
// keep the table small, so runs of entries wrap around its end and the
// backward shift of a removal moves entries across it.
func TestIndexMatchesAMap(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pool := items(rapid.Uint64().Draw(t, "seed"), rapid.IntRange(1, 64).Draw(t, "pool"))
		e := NewEncoder(testKey)
		if rapid.Bool().Draw(t, "grown") {
			e.Grow(rapid.IntRange(0, 100).Draw(t, "grow"))
		}
		model := map[Item]bool{}
		for range rapid.IntRange(1, 300).Draw(t, "steps") {
			x := pool[rapid.IntRange(0, len(pool)-1).Draw(t, "item")]
			if rapid.Bool().Draw(t, "add") {
				if got, want := e.Add(x), !model[x]; got != want {
					t.Fatalf("Add = %v, want %v", got, want)
				}
				model[x] = true
			} else {
				if got, want := e.Remove(x), model[x]; got != want {
					t.Fatalf("Remove = %v, want %v", got, want)
				}
				delete(model, x)
			}
			if e.Len() != len(model) {
				t.Fatalf("Len %d, want %d", e.Len(), len(model))
			}
			for _, y := range pool {
				if e.Has(y) != model[y] {
					t.Fatalf("Has = %v, want %v", e.Has(y), model[y])
				}
			}
			if 2*e.idx.n > len(e.idx.table) {
				t.Fatalf("index %d of %d entries full: more than half", e.idx.n, len(e.idx.table))
			}
		}
	})
}

// An encoder of a set built at once holds about 70 bytes per item at
// 300,000 items (the records of 100,000 hosts): a 48-byte slot, its entry in
// the index and in the queue. It held 148 with a map for an index and the
// checksum and a padded cursor in each slot.
func TestEncoderMemoryPerItem(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 300,000 items")
	}
	const n = 300000
	xs := items(1, n)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	e := NewEncoder(testKey)
	e.Grow(n)
	for _, x := range xs {
		e.Add(x)
	}
	if _, err := e.Symbols(0, 64); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	per := float64(m1.HeapAlloc-m0.HeapAlloc) / n
	t.Logf("%d items: %.0f B per item", n, per)
	if per > 80 {
		t.Errorf("%.0f B per item, want at most 80", per)
	}
	runtime.KeepAlive(e)
	runtime.KeepAlive(xs) // weighed in m0 too
}
