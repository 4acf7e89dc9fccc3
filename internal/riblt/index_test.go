package riblt

import (
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
