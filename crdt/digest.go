package crdt

import "slices"

// The digest index keeps, for each network, every record hash grouped into
// 256 buckets by its first byte, with a running fingerprint per bucket. Two
// nodes compare fingerprints top-down (network, then buckets, then the
// hashes of differing buckets), so the bytes a sync costs grow with the
// difference between them, not with the size of the state.

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

type bucket struct {
	fp     Fingerprint
	hashes []Hash // sorted
}

type digestIndex struct {
	recs    map[Hash]*Record
	count   int
	root    Fingerprint
	buckets [256]bucket
}

func (d *digestIndex) has(h Hash) bool {
	_, ok := d.recs[h]
	return ok
}

func (d *digestIndex) add(r *Record) {
	if d.recs == nil {
		d.recs = map[Hash]*Record{}
	}
	if _, ok := d.recs[r.hash]; ok {
		return
	}
	d.recs[r.hash] = r
	d.count++
	d.root.add(r.hash, 1)
	b := &d.buckets[r.hash[0]]
	b.fp.add(r.hash, 1)
	i, _ := slices.BinarySearchFunc(b.hashes, r.hash, Hash.Compare)
	b.hashes = slices.Insert(b.hashes, i, r.hash)
}

func (d *digestIndex) remove(h Hash) {
	if _, ok := d.recs[h]; !ok {
		return
	}
	delete(d.recs, h)
	d.count--
	d.root.add(h, -1)
	b := &d.buckets[h[0]]
	b.fp.add(h, -1)
	if i, ok := slices.BinarySearchFunc(b.hashes, h, Hash.Compare); ok {
		b.hashes = slices.Delete(b.hashes, i, i+1)
	}
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
		return slices.Clone(n.index.buckets[b].hashes)
	}
	return nil
}
