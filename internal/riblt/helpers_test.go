package riblt

import (
	"bytes"
	"math/rand/v2"
	"slices"
)

var testKey = DeriveKey([]byte("test network"))

// items returns n pseudo-random items drawn from seed.
func items(seed uint64, n int) []Item {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	out := make([]Item, n)
	for i := range out {
		for j := 0; j < 32; j += 8 {
			v := rng.Uint64()
			for b := range 8 {
				out[i][j+b] = byte(v >> (8 * b))
			}
		}
	}
	return out
}

func encoderOf(k Key, xs ...[]Item) *Encoder {
	e := NewEncoder(k)
	for _, s := range xs {
		for _, x := range s {
			e.Add(x)
		}
	}
	return e
}

// naiveSymbols encodes set from scratch, item by item: what an Encoder's
// built symbols must always equal.
func naiveSymbols(k Key, set map[Item]bool, m int) []Symbol {
	h := newHasher(k)
	out := make([]Symbol, m)
	for x := range set {
		sum := h.checksum(&x)
		c := start(h.seedOf(&x))
		for int(c.next) < m && c.next != endIndex {
			out[c.next].apply(&x, sum, 1)
			c.advance()
		}
	}
	return out
}

func sorted(xs []Item) []Item {
	xs = slices.Clone(xs)
	slices.SortFunc(xs, func(a, b Item) int { return bytes.Compare(a[:], b[:]) })
	if xs == nil {
		xs = []Item{}
	}
	return xs
}

func sameItems(a, b []Item) bool { return slices.Equal(sorted(a), sorted(b)) }

// doubling is the batch schedule that asks for as many symbols again as
// are held (at least 4).
func doubling(have int) int { return max(have, 4) }
