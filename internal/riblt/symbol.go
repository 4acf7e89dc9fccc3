package riblt

import "encoding/binary"

// Item is one element of a reconciled set: in data-mesher, the SHA-256 hash
// of a record's canonical bytes.
type Item [32]byte

// Symbol is one coded symbol: a summary of the items mapped to its index.
// The symbols of a set are linear in it, so a node's symbols subtracted from a
// peer's are the symbols of the difference between their sets.
type Symbol struct {
	Sum      Item   // XOR of the items mapped here
	Checksum uint64 // XOR of their keyed checksums
	Count    int64  // how many items are mapped here; in a difference, the peer's minus this node's
}

// IsZero reports whether s summarizes no items (or, in a difference, items
// that cancelled).
func (s *Symbol) IsZero() bool { return s.Count == 0 && s.Checksum == 0 && s.Sum == Item{} }

// apply adds (delta = 1) or removes (delta = -1) item x, whose checksum is
// sum.
func (s *Symbol) apply(x *Item, sum uint64, delta int64) {
	xor32(&s.Sum, x)
	s.Checksum ^= sum
	s.Count += delta
}

// subtract makes s the difference s - o.
func (s *Symbol) subtract(o *Symbol) {
	xor32(&s.Sum, &o.Sum)
	s.Checksum ^= o.Checksum
	s.Count -= o.Count
}

func xor32(dst, src *Item) {
	le := binary.LittleEndian
	for i := 0; i < 32; i += 8 {
		le.PutUint64(dst[i:], le.Uint64(dst[i:])^le.Uint64(src[i:]))
	}
}
