package riblt

import (
	"math"
	"math/bits"
)

// The mapping from an item to the coded symbols it is added into.
//
// Item x is added into symbol 0 and into each later symbol k independently
// with probability ρ(k) = 2/(k+2) (the paper's 1/(1+αk) with α = 1/2). Of
// the first m symbols an item therefore touches about 1 + 2·ln(m/2), which is
// what makes encoding m symbols of N items cost O(N log m).
//
// The indices are drawn in increasing order, each from the previous one. If
// the item is at index i, the chance it skips every index up to n-1 is
//
//	P(next ≥ n) = ∏_{k=i+1}^{n-1} k/(k+2) = (i+1)(i+2) / (n(n+1)),
//
// which telescopes, so the next index can be sampled exactly by inverting
// it: with u uniform in (0, 1], next is the largest n with
// n(n+1)·u ≤ (i+1)(i+2). The hazard at k, P(next = k | next ≥ k), is then
// 1 - k/(k+2) = 2/(k+2) whatever i was, so each index is indeed included
// independently with probability ρ(k).
//
// Every machine must compute the same indices. Go may fuse floating-point
// multiplies and adds on some architectures, so floating point only gives a
// first guess here; the answer is settled by exact 128-bit integer
// comparisons.

// maxIndex is the largest symbol index of the mapping. Items map to no symbol
// beyond it.
const maxIndex = 1<<31 - 1

// endIndex marks an item that maps to no further symbol.
const endIndex = math.MaxUint32

// nextIndex returns the index that follows i in a sequence, given a fresh
// 64-bit random value r, or endIndex.
func nextIndex(i uint32, r uint64) uint32 {
	if i >= maxIndex {
		return endIndex
	}
	u := r>>1 + 1                          // u / 2^63 is uniform in (0, 1]
	a := (uint64(i) + 1) * (uint64(i) + 2) // < 2^63 since i < 2^31-1
	bHi, bLo := a>>1, a<<63                // a · 2^63 as 128 bits
	// fits(n): n(n+1)·u ≤ a·2^63, for n ≤ 2^31 (so n(n+1) < 2^63).
	fits := func(n uint64) bool {
		hi, lo := bits.Mul64(n*(n+1), u)
		return hi < bHi || hi == bHi && lo <= bLo
	}
	const limit = maxIndex + 1
	c := float64(a) * (0x1p63 / float64(u))
	n := uint64(limit)
	if c < 0x1p64 {
		if est := (math.Sqrt(1+4*c) - 1) / 2; est < limit {
			n = max(uint64(est), uint64(i)+1)
		}
	}
	for n > uint64(i)+1 && !fits(n) {
		n--
	}
	for n < limit && fits(n+1) {
		n++
	}
	if n >= limit {
		return endIndex
	}
	return uint32(n)
}

// splitmix64 steps the 64-bit generator that draws an item's indices
// (Steele, Lea and Flood's SplitMix; its state is seeded by the keyed hash).
func splitmix64(s *uint64) uint64 {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// cursor walks one item's index sequence.
type cursor struct {
	rng  uint64 // generator state
	next uint32 // the next index the item maps to, or endIndex
}

// start returns the cursor of an item whose sequence seed is seed: at 0,
// where every item maps.
func start(seed uint64) cursor { return cursor{rng: seed, next: 0} }

// advance moves the cursor past its current index.
func (c *cursor) advance() {
	c.next = nextIndex(c.next, splitmix64(&c.rng))
}
