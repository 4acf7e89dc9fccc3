package riblt

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// nextIndexSlow is nextIndex by binary search in big integers: the largest
// n in [i+1, 2^31] with n(n+1)·u ≤ (i+1)(i+2)·2^63, u = r>>1 + 1.
func nextIndexSlow(i uint32, r uint64) uint32 {
	if i >= maxIndex {
		return endIndex
	}
	u := new(big.Int).SetUint64(r>>1 + 1)
	bound := new(big.Int).SetUint64((uint64(i) + 1) * (uint64(i) + 2))
	bound.Lsh(bound, 63)
	fits := func(n uint64) bool {
		v := new(big.Int).SetUint64(n)
		v.Mul(v, new(big.Int).SetUint64(n+1))
		v.Mul(v, u)
		return v.Cmp(bound) <= 0
	}
	lo, hi := uint64(i)+1, uint64(maxIndex)+1 // fits(lo) always holds
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo > maxIndex {
		return endIndex
	}
	return uint32(lo)
}

func TestNextIndexIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	rs := []uint64{0, 1, 2, 3, 1 << 20, 1<<63 - 1, 1 << 63, math.MaxUint64 - 1, math.MaxUint64}
	is := []uint32{0, 1, 2, 3, 1000, 1 << 20, 1<<30 + 7, maxIndex - 2, maxIndex - 1, maxIndex}
	for range 3000 {
		rs = append(rs, rng.Uint64(), rng.Uint64()>>rng.IntN(64))
		is = append(is, uint32(rng.IntN(1<<rng.IntN(32))))
	}
	for n, i := range is {
		for _, r := range []uint64{rs[n%len(rs)], rs[(n*7+3)%len(rs)], rs[n%9]} {
			if got, want := nextIndex(i, r), nextIndexSlow(i, r); got != want {
				t.Fatalf("nextIndex(%d, %#x) = %d, want %d", i, r, got, want)
			}
		}
	}
}

// Each index k ≥ 1 holds an item with probability 2/(k+2), and index 0
// holds every item.
func TestMappingDensity(t *testing.T) {
	const items, m = 200000, 64
	h := newHasher(DeriveKey([]byte("density")))
	var hits [m]int
	rng := rand.New(rand.NewPCG(1, 1))
	for range items {
		var x Item
		for j := 0; j < 32; j += 8 {
			v := rng.Uint64()
			for b := range 8 {
				x[j+b] = byte(v >> (8 * b))
			}
		}
		c := start(h.seedOf(&x))
		for c.next < m {
			hits[c.next]++
			c.advance()
		}
	}
	if hits[0] != items {
		t.Fatalf("symbol 0 holds %d of %d items", hits[0], items)
	}
	for k := 1; k < m; k++ {
		p := 2 / float64(k+2)
		mean, sd := items*p, math.Sqrt(items*p*(1-p))
		if z := (float64(hits[k]) - mean) / sd; math.Abs(z) > 5 {
			t.Errorf("symbol %d holds %d items, expected %.0f ± %.0f", k, hits[k], mean, sd)
		}
	}
}

// The mapping must be the same on every machine and in every version that
// speaks WireVersion 1: these values were computed once and must not change.
func TestMappingGolden(t *testing.T) {
	h := newHasher(DeriveKey([]byte("golden")))
	var x Item
	for i := range x {
		x[i] = byte(i * 7)
	}
	c := start(h.seedOf(&x))
	var seq []uint32
	for range 12 {
		seq = append(seq, c.next)
		c.advance()
	}
	got := fmt.Sprintf("checksum %#016x indices %v", h.checksum(&x), seq)
	const want = "checksum 0xd35b87104a6e031a indices [0 2 3 13 21 23 26 140 241 672 694 716]"
	if got != want {
		t.Errorf("mapping changed:\n got %s\nwant %s", got, want)
	}
}
