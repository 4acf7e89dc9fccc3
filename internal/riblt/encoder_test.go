package riblt

import (
	"errors"
	"testing"

	"pgregory.net/rapid"
)

// Whatever the order of adds, removes and requests for symbols, the symbols
// an encoder gives are those of its current set encoded from scratch.
func TestEncoderMatchesFromScratch(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pool := items(rapid.Uint64().Draw(t, "seed"), rapid.IntRange(1, 300).Draw(t, "pool"))
		e := NewEncoder(testKey)
		model := map[Item]bool{}
		steps := rapid.IntRange(1, 200).Draw(t, "steps")
		for range steps {
			x := pool[rapid.IntRange(0, len(pool)-1).Draw(t, "item")]
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 0, 1, 2, 3:
				if got, want := e.Add(x), !model[x]; got != want {
					t.Fatalf("Add = %v, want %v", got, want)
				}
				model[x] = true
			case 4, 5, 6:
				if got, want := e.Remove(x), model[x]; got != want {
					t.Fatalf("Remove = %v, want %v", got, want)
				}
				delete(model, x)
			default:
				end := rapid.IntRange(0, 400).Draw(t, "end")
				st := rapid.IntRange(0, end).Draw(t, "start")
				got, err := e.Symbols(st, end)
				if err != nil {
					t.Fatal(err)
				}
				want := naiveSymbols(testKey, model, end)[st:]
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("symbol %d differs from the set encoded from scratch", st+i)
					}
				}
			}
			if e.Len() != len(model) || e.Has(x) != model[x] {
				t.Fatalf("Len %d Has %v, model %d %v", e.Len(), e.Has(x), len(model), model[x])
			}
		}
		got, _ := e.Symbols(0, e.Built())
		want := naiveSymbols(testKey, model, e.Built())
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("built symbol %d differs from the set encoded from scratch", i)
			}
		}
	})
}

// Heavy churn after symbols are built exercises the queue's compaction and
// the reuse of slots.
func TestEncoderChurn(t *testing.T) {
	pool := items(3, 6000)
	e := NewEncoder(testKey)
	model := map[Item]bool{}
	for _, x := range pool[:3000] {
		e.Add(x)
		model[x] = true
	}
	if _, err := e.Symbols(0, 50); err != nil {
		t.Fatal(err)
	}
	for round := range 4 {
		for i, x := range pool {
			if (i+round)%3 == 0 {
				if e.Remove(x) {
					delete(model, x)
				}
			} else if e.Add(x) {
				model[x] = true
			}
		}
		end := 50 << round
		got, _ := e.Symbols(0, end)
		want := naiveSymbols(testKey, model, end)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("round %d: symbol %d differs", round, i)
			}
		}
	}
	if len(e.slots) > 2*len(pool) {
		t.Errorf("%d slots for a pool of %d items: dead slots are not reused", len(e.slots), len(pool))
	}
}

// Removing most of a set drops the dead items from the queue instead of
// keeping one entry per item ever held.
func TestEncoderCompactsQueue(t *testing.T) {
	xs := items(4, 5000)
	e := encoderOf(testKey, xs)
	e.build(10)
	model := map[Item]bool{}
	for i, x := range xs {
		if i%5 == 0 {
			model[x] = true
		} else {
			e.Remove(x)
		}
	}
	if len(e.queue) >= 4000 {
		t.Errorf("queue holds %d entries for %d items", len(e.queue), e.Len())
	}
	for _, x := range xs[1:400] {
		if e.Add(x) {
			model[x] = true
		}
	}
	got, _ := e.Symbols(0, 300)
	want := naiveSymbols(testKey, model, 300)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("symbol %d differs after compaction", i)
		}
	}
}

func TestEncoderRanges(t *testing.T) {
	e := encoderOf(testKey, items(1, 10))
	for _, r := range [][2]int{{-1, 3}, {5, 4}, {0, MaxSymbols + 1}} {
		if _, err := e.Symbols(r[0], r[1]); !errors.Is(err, ErrRange) {
			t.Errorf("Symbols(%d, %d): %v, want ErrRange", r[0], r[1], err)
		}
	}
	if s, err := e.Symbols(3, 3); err != nil || len(s) != 0 {
		t.Errorf("empty range: %v %v", s, err)
	}
}

func TestChangeLog(t *testing.T) {
	xs := items(2, ChangeLogLen+10)
	e := NewEncoder(testKey)
	e.Add(xs[0])
	g := e.Generation()
	e.Add(xs[1])
	e.Remove(xs[0])
	cs, err := e.ChangesSince(g)
	if err != nil || len(cs) != 2 || cs[0] != (Change{xs[1], true}) || cs[1] != (Change{xs[0], false}) {
		t.Fatalf("ChangesSince = %v, %v", cs, err)
	}
	if _, err := e.ChangesSince(e.Generation() + 1); !errors.Is(err, ErrStale) {
		t.Errorf("a future generation: %v, want ErrStale", err)
	}
	for _, x := range xs[2:] {
		e.Add(x)
	}
	if _, err := e.ChangesSince(g); !errors.Is(err, ErrStale) {
		t.Errorf("%d changes later: %v, want ErrStale", e.Generation()-g, err)
	}
	if cs, err := e.ChangesSince(e.Generation() - ChangeLogLen); err != nil || len(cs) != ChangeLogLen {
		t.Errorf("the oldest generation remembered: %d changes, %v", len(cs), err)
	}
}
