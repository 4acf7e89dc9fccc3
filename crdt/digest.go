package crdt

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/data-mesher/data-mesher/internal/riblt"
)

// The digest index keeps, for each network, every record hash grouped into
// 256 buckets by its first byte, with a running fingerprint per bucket. Two
// nodes compare fingerprints top-down (network, then buckets, then the
// hashes of differing buckets), so the bytes a sync costs grow with the
// difference between them, not with the size of the state.
//
// Beside the buckets, each network can keep a rateless IBLT encoder of its
// hashes (internal/riblt), the set that version 2 of the mesh's exchange
// reconciles: its coded symbols cost the difference, whatever the number
// of records. The encoder is built from the index the first time a peer
// asks for symbols (so loading a state costs nothing more), and from then
// on follows every record added and dropped.

// ErrNotJoined: the state has not joined the network asked about.
var ErrNotJoined = errors.New("network not joined")

// Fingerprint summarizes a set of record hashes: their number and XOR. Equal
// sets have equal fingerprints; the XOR of SHA-256 hashes makes different
// sets of honest records collide with negligible probability.
type Fingerprint struct {
	Count int
	XOR   Hash
}

// Add folds h into the fingerprint (and, being XOR, removes it again).
func (f *Fingerprint) add(h Hash, delta int) {
	f.Count += delta
	for i := range f.XOR {
		f.XOR[i] ^= h[i]
	}
}

// Combine returns the fingerprint of the union of two disjoint sets.
func (f Fingerprint) Combine(o Fingerprint) Fingerprint {
	f.Count += o.Count
	for i := range f.XOR {
		f.XOR[i] ^= o.XOR[i]
	}
	return f
}

// A bucket holds its records sorted by hash, each beside the 8 hash bytes
// after the first (which all share): a binary search compares those in
// place and reads a record only when they are equal. 16 bytes a record; a
// map from hash to record beside sorted hashes took about 90.
type bucket struct {
	fp    Fingerprint
	slots []slot
}

type slot struct {
	key uint64 // bytes 1-8 of the hash, big-endian
	rec *Record
}

func hashSlotKey(h Hash) uint64 { return binary.BigEndian.Uint64(h[1:9]) }

// search returns where h is or would be in b.
func (b *bucket) search(h Hash) (int, bool) {
	k := hashSlotKey(h)
	return slices.BinarySearchFunc(b.slots, h, func(s slot, h Hash) int {
		if s.key != k {
			return cmp.Compare(s.key, k)
		}
		return s.rec.hash.Compare(h)
	})
}

type digestIndex struct {
	count   int
	root    Fingerprint
	buckets [256]bucket
	enc     *riblt.Encoder // nil until first asked for
}

// get returns the record with hash h, or nil.
func (d *digestIndex) get(h Hash) *Record {
	b := &d.buckets[h[0]]
	if i, ok := b.search(h); ok {
		return b.slots[i].rec
	}
	return nil
}

func (d *digestIndex) has(h Hash) bool { return d.get(h) != nil }

func (d *digestIndex) add(r *Record) {
	b := &d.buckets[r.hash[0]]
	i, ok := b.search(r.hash)
	if ok {
		return
	}
	b.slots = slices.Insert(b.slots, i, slot{hashSlotKey(r.hash), r})
	d.count++
	d.root.add(r.hash, 1)
	b.fp.add(r.hash, 1)
	if d.enc != nil {
		d.enc.Add(riblt.Item(r.hash))
	}
}

func (d *digestIndex) remove(h Hash) {
	b := &d.buckets[h[0]]
	i, ok := b.search(h)
	if !ok {
		return
	}
	b.slots = slices.Delete(b.slots, i, i+1)
	d.count--
	d.root.add(h, -1)
	b.fp.add(h, -1)
	if d.enc != nil {
		d.enc.Remove(riblt.Item(h))
	}
}

// all yields every record of the index, in hash order.
func (d *digestIndex) all(yield func(*Record) bool) {
	for i := range d.buckets {
		for _, sl := range d.buckets[i].slots {
			if !yield(sl.rec) {
				return
			}
		}
	}
}

// reserve grows the buckets for about n more records, spread evenly (the
// hashes are uniform), so restoring a large state does not grow each
// bucket step by step.
func (d *digestIndex) reserve(n int) {
	per := n/len(d.buckets) + n/len(d.buckets)/8 + 1
	for i := range d.buckets {
		d.buckets[i].slots = slices.Grow(d.buckets[i].slots, per)
	}
}

// encoder returns the network's riblt encoder, building it on first use.
// Every node derives the same key from the network's public key, so that
// two nodes' symbols subtract.
func (n *netState) encoder() *riblt.Encoder {
	d := &n.index
	if d.enc == nil {
		d.enc = riblt.NewEncoder(riblt.DeriveKey(n.id[:]))
		held := 0
		for i := range d.buckets {
			held += len(d.buckets[i].slots)
		}
		d.enc.Grow(held)
		// Bucket order, not map order: the same state builds the same
		// encoder, slot for slot.
		for i := range d.buckets {
			for _, sl := range d.buckets[i].slots {
				d.enc.Add(riblt.Item(sl.rec.hash))
			}
		}
	}
	return d.enc
}

// SymbolRun returns the coded symbols [start, end) of network id's record
// hashes, with the changes since generation base when start > 0 (see
// riblt.Encoder.Run). It fails with ErrNotJoined (wrapped) if the network is
// not joined, and with riblt's errors (ErrRange, ErrStale) otherwise. The
// encoder keeps the symbols it built, so asking costs the new ones only.
func (s *State) SymbolRun(id PublicKey, start, end int, base uint64) (riblt.Run, error) {
	n := s.nets[id]
	if n == nil {
		return riblt.Run{}, fmt.Errorf("symbols of network %s: %w", id.Short(), ErrNotJoined)
	}
	return n.encoder().Run(start, end, base)
}

// NewReconciler returns a decoder of a peer's symbols against network id's
// record hashes, or nil if the network is not joined. It reads the state:
// use it only while the caller holds the state as it would for any other
// read, and never after the network is left.
func (s *State) NewReconciler(id PublicKey) *riblt.Decoder {
	n := s.nets[id]
	if n == nil {
		return nil
	}
	return riblt.NewDecoder(n.encoder())
}

// SymbolsBuilt is the number of coded symbols network id's encoder keeps
// up to date (0 before a peer first asked): what its reconciliation state
// costs, at 48 bytes a symbol.
func (s *State) SymbolsBuilt(id PublicKey) int {
	if n := s.nets[id]; n != nil && n.index.enc != nil {
		return n.index.enc.Built()
	}
	return 0
}

// Fingerprint summarizes all records of network id.
func (s *State) Fingerprint(id PublicKey) Fingerprint {
	if n := s.nets[id]; n != nil {
		return n.index.root
	}
	return Fingerprint{}
}

// BucketFingerprints summarizes the records of network id by the first byte
// of their hash.
func (s *State) BucketFingerprints(id PublicKey) [256]Fingerprint {
	var out [256]Fingerprint
	if n := s.nets[id]; n != nil {
		for i := range out {
			out[i] = n.index.buckets[i].fp
		}
	}
	return out
}

// BucketHashes lists, sorted, the hashes of network id's records whose
// first byte is b.
func (s *State) BucketHashes(id PublicKey, b byte) []Hash {
	if n := s.nets[id]; n != nil {
		slots := n.index.buckets[b].slots
		out := make([]Hash, len(slots))
		for i, sl := range slots {
			out[i] = sl.rec.hash
		}
		return out
	}
	return nil
}
