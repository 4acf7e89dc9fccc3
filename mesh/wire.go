package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/data-mesher/data-mesher/crdt"
)

// Version 1 of the anti-entropy exchange, over POST /v1/sync: what older
// nodes speak, and the fallback of version 2 (reconcile_wire.go) when its
// symbols do not settle a network. Each node's records are indexed by the
// first byte of their hash into 256 buckets, 16 groups of 16. A round
// costs the prefixes of the buckets that differ: for one changed record
// among N, N/256 prefixes of 8 bytes (about 3 KB at 100,000).
//
//	stage 1  → per network: count, XOR of all hashes, and 16 group
//	           fingerprints (count + first 8 bytes of the XOR)
//	         ← for networks that differ: the 16 bucket fingerprints of each
//	           differing group
//	stage 2  → for each differing bucket: the 8-byte hash prefixes held
//	         ← the records the asker lacks, and the prefixes it has that the
//	           answerer lacks ("wants")
//	stage 3  → the wanted records
//	         ← ack
//
// Two nodes in step exchange one small request and an empty answer.

const (
	wireVersion   = 1
	groups        = 16
	bucketsPerGrp = 16
	prefixLen     = 8

	maxWireNets     = 64
	maxWirePrefixes = 1 << 20
	maxWireRecords  = 1 << 18
)

var errWire = errors.New("bad sync message")

// fp8 is a short fingerprint: count and the first 8 bytes of the XOR.
type fp8 struct {
	count uint32
	xor   uint64
}

func short(f crdt.Fingerprint) fp8 {
	return fp8{count: uint32(f.Count), xor: binary.BigEndian.Uint64(f.XOR[:8])}
}

type groupDetail struct {
	group   uint8
	buckets [bucketsPerGrp]fp8
}

type bucketPrefixes struct {
	bucket   uint8
	prefixes []uint64
}

type wireNet struct {
	id       crdt.PublicKey
	root     crdt.Fingerprint // stage 1 request
	groups   [groups]fp8      // stage 1 request
	detail   []groupDetail    // stage 1 answer
	prefixes []bucketPrefixes // stage 2 request
	records  [][]byte         // stage 2 answer, stage 3 request
	wants    []uint64         // stage 2 answer
}

type wireMsg struct {
	stage  uint8
	answer bool
	nets   []wireNet
}

func prefixOf(h crdt.Hash) uint64 { return binary.BigEndian.Uint64(h[:prefixLen]) }

func (m *wireMsg) encode() []byte {
	b := []byte{wireVersion, m.stage}
	b = binary.AppendUvarint(b, uint64(len(m.nets)))
	putFP := func(f fp8) {
		b = binary.BigEndian.AppendUint32(b, f.count)
		b = binary.BigEndian.AppendUint64(b, f.xor)
	}
	putPrefixes := func(ps []uint64) {
		b = binary.AppendUvarint(b, uint64(len(ps)))
		for _, p := range ps {
			b = binary.BigEndian.AppendUint64(b, p)
		}
	}
	for _, n := range m.nets {
		b = append(b, n.id[:]...)
		switch {
		case m.stage == 1 && !m.answer:
			b = binary.BigEndian.AppendUint32(b, uint32(n.root.Count))
			b = append(b, n.root.XOR[:]...)
			for _, g := range n.groups {
				putFP(g)
			}
		case m.stage == 1:
			b = binary.AppendUvarint(b, uint64(len(n.detail)))
			for _, d := range n.detail {
				b = append(b, d.group)
				for _, f := range d.buckets {
					putFP(f)
				}
			}
		case m.stage == 2 && !m.answer:
			b = binary.AppendUvarint(b, uint64(len(n.prefixes)))
			for _, bp := range n.prefixes {
				b = append(b, bp.bucket)
				putPrefixes(bp.prefixes)
			}
		case m.stage == 2 || m.stage == 3:
			b = binary.AppendUvarint(b, uint64(len(n.records)))
			for _, r := range n.records {
				b = binary.AppendUvarint(b, uint64(len(r)))
				b = append(b, r...)
			}
			if m.stage == 2 {
				putPrefixes(n.wants)
			}
		}
	}
	return b
}

type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errWire, fmt.Sprintf(format, a...))
	}
}

func (r *wireReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("truncated")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *wireReader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *wireReader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *wireReader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// count reads a list length, refusing more than max or more than the bytes
// left could hold (at least min bytes each).
func (r *wireReader) count(max, min int) int {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad length")
		return 0
	}
	r.b = r.b[n:]
	if v > uint64(max) || v*uint64(min) > uint64(len(r.b)) {
		r.fail("%d entries do not fit", v)
		return 0
	}
	return int(v)
}

func (r *wireReader) fp() fp8 { return fp8{count: r.u32(), xor: r.u64()} }

func (r *wireReader) prefixes() []uint64 {
	n := r.count(maxWirePrefixes, prefixLen)
	if n == 0 {
		return nil
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = r.u64()
	}
	return out
}

func decodeWire(b []byte, answer bool) (*wireMsg, error) {
	r := &wireReader{b: b}
	if v := r.u8(); r.err == nil && v != wireVersion {
		return nil, fmt.Errorf("%w: version %d, this node speaks %d", errWire, v, wireVersion)
	}
	m := &wireMsg{stage: r.u8(), answer: answer}
	if r.err == nil && (m.stage < 1 || m.stage > 3) {
		return nil, fmt.Errorf("%w: stage %d", errWire, m.stage)
	}
	nn := r.count(maxWireNets, 32)
	for range nn {
		var n wireNet
		copy(n.id[:], r.take(32))
		switch {
		case m.stage == 1 && !answer:
			n.root.Count = int(r.u32())
			copy(n.root.XOR[:], r.take(32))
			for i := range n.groups {
				n.groups[i] = r.fp()
			}
		case m.stage == 1:
			nd := r.count(groups, 1+12*bucketsPerGrp)
			for range nd {
				d := groupDetail{group: r.u8()}
				if d.group >= groups {
					r.fail("group %d", d.group)
				}
				for i := range d.buckets {
					d.buckets[i] = r.fp()
				}
				n.detail = append(n.detail, d)
			}
		case m.stage == 2 && !answer:
			nb := r.count(256, 2)
			for range nb {
				n.prefixes = append(n.prefixes, bucketPrefixes{bucket: r.u8(), prefixes: r.prefixes()})
			}
		case m.stage == 2 || m.stage == 3:
			nr := r.count(maxWireRecords, 2)
			for range nr {
				l := r.count(crdt.MaxRecordSize, 1)
				if rec := r.take(l); rec != nil {
					n.records = append(n.records, rec)
				}
			}
			if m.stage == 2 {
				n.wants = r.prefixes()
			}
		}
		m.nets = append(m.nets, n)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}
