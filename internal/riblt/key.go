package riblt

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// Key selects the keyed hash that maps an item to its checksum and to its
// sequence of symbol indices. Two coded-symbol streams can only be subtracted
// if they were produced under the same Key, so both ends of an exchange must
// derive it the same way: use DeriveKey.
//
// A Key is not a secret. See the package documentation (section "Hostile
// input") for what it does and does not protect against.
type Key [32]byte

// keyDomain separates these keys from every other use of SHA-256 in the
// project, and lets a later version of the mapping choose new ones.
const keyDomain = "data-mesher riblt v1"

// DeriveKey returns the key for a context, typically a network's public key,
// optionally followed by a per-exchange nonce. The parts are length-prefixed,
// so ("ab", "c") and ("a", "bc") give different keys.
func DeriveKey(parts ...[]byte) Key {
	h := sha256.New()
	h.Write([]byte(keyDomain))
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write(p)
	}
	var k Key
	h.Sum(k[:0])
	return k
}

// hasher holds a Key split into the two SipHash keys it stands for: one for
// the checksum, one for the seed of the index sequence. Independent keys make
// the two 64-bit values independent functions of the item.
type hasher struct {
	sum, seed [2]uint64
}

func newHasher(k Key) hasher {
	le := binary.LittleEndian
	return hasher{
		sum:  [2]uint64{le.Uint64(k[0:]), le.Uint64(k[8:])},
		seed: [2]uint64{le.Uint64(k[16:]), le.Uint64(k[24:])},
	}
}

// checksum is the keyed 64-bit checksum of x, used to recognise a symbol
// that holds exactly one item.
func (h *hasher) checksum(x *Item) uint64 { return sip32(h.sum, x) }

// seed starts x's index sequence.
func (h *hasher) seedOf(x *Item) uint64 { return sip32(h.seed, x) }

// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
// 2012): a keyed 64-bit PRF, which is what is wanted here. The standard
// library has none that takes a chosen key (hash/maphash seeds are random per
// process, so they cannot agree across machines).

func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

func sipInit(k [2]uint64) (uint64, uint64, uint64, uint64) {
	return k[0] ^ 0x736f6d6570736575, k[1] ^ 0x646f72616e646f6d,
		k[0] ^ 0x6c7967656e657261, k[1] ^ 0x7465646279746573
}

func sipFinish(v0, v1, v2, v3 uint64) uint64 {
	v2 ^= 0xff
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// sip32 is SipHash-2-4 of a 32-byte message (four words, then the
// length block). key_test.go checks it against the general function and the
// reference vectors.
func sip32(k [2]uint64, x *Item) uint64 {
	v0, v1, v2, v3 := sipInit(k)
	for i := 0; i < 32; i += 8 {
		m := binary.LittleEndian.Uint64(x[i:])
		v3 ^= m
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0 ^= m
	}
	const last = 32 << 56
	v3 ^= last
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= last
	return sipFinish(v0, v1, v2, v3)
}
