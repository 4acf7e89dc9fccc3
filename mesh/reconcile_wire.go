package mesh

import (
	"encoding/binary"
	"fmt"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/internal/riblt"
)

// Version 2 of the anti-entropy exchange, over the same POST /v1/sync:
// rateless IBLT symbols (internal/riblt) instead of bucket fingerprints,
// so that a round costs the difference between the two nodes whatever the
// number of records they hold. Version 1 (wire.go) stays: it is what older
// peers speak, and the fallback when symbols do not settle a network.
//
//	stage 1  → per joined network: id, run [0, 1) of the asker's set (its
//	           symbol 0: count, XOR and checksum of every hash)
//	         ← per network whose symbol 0 differs (in step: nothing):
//	             kind 1, decoded: records the asker lacks, hashes the
//	               answerer lacks
//	             kind 2, not decoded from symbol 0: a run [0, s) of the
//	               answerer's set, for the asker to decode
//	             kind 3: fall back to version 1 for this network
//	stage 2  → per network still decoding: id, the answerer's generation
//	           echoed, [start, end)
//	         ← per network: kind 2 and the run [start, end) with the
//	           answerer's changes since that generation, or kind 3
//	           (repeated, the total doubling, until decoded or the cap)
//	stage 3  → per network: records the answerer lacks, hashes the asker
//	           lacks
//	         ← per network: those records
//
// The encoding:
//
//	msg      = version:u8 (2) stage:u8 n:uvarint net×n
//	net      = id:32 body
//	stage 1  → run          ← kind:u8 [records wants | run | -]
//	stage 2  → base:uvarint start:uvarint end:uvarint
//	         ← kind:u8 [run | -]
//	stage 3  → records wants ← records
//	run      = len:uvarint riblt.Run encoding
//	records  = n:uvarint (len:uvarint bytes)×n
//	wants    = n:uvarint hash:32×n
const (
	wireVersion2 = 2

	kindDecoded  = 1
	kindSymbols  = 2
	kindFallback = 3

	// maxRunSymbols bounds the symbols of one run, asked or sent (about
	// 170 KB on the wire).
	maxRunSymbols = 4096
	// maxWireWants bounds the hashes wanted in one message.
	maxWireWants = 1 << 18
	// maxRunBytes bounds an encoded run: its symbols, its head and the
	// changes it may carry, with room for its header.
	maxRunBytes = (maxRunSymbols+1)*riblt.SymbolBytes + riblt.ChangeLogLen*(1+32) + 64
)

type wire2Net struct {
	id      crdt.PublicKey
	kind    uint8       // answers of stages 1 and 2
	run     riblt.Run   // stage 1 request; kind 2 answers
	base    uint64      // stage 2 request
	start   int         // stage 2 request
	end     int         // stage 2 request
	records [][]byte    // kind 1 answers; stage 3
	wants   []crdt.Hash // kind 1 answers; stage 3 request
}

type wire2Msg struct {
	stage  uint8
	answer bool
	nets   []wire2Net
}

func appendRecords(b []byte, recs [][]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

func appendHashes(b []byte, hs []crdt.Hash) []byte {
	b = binary.AppendUvarint(b, uint64(len(hs)))
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

func appendRun(b []byte, r riblt.Run) ([]byte, error) {
	rb, err := r.MarshalBinary()
	if err != nil {
		return b, err
	}
	b = binary.AppendUvarint(b, uint64(len(rb)))
	return append(b, rb...), nil
}

func (m *wire2Msg) encode() ([]byte, error) {
	b := []byte{wireVersion2, m.stage}
	b = binary.AppendUvarint(b, uint64(len(m.nets)))
	var err error
	for _, n := range m.nets {
		b = append(b, n.id[:]...)
		switch {
		case m.stage == 1 && !m.answer:
			b, err = appendRun(b, n.run)
		case m.stage == 2 && !m.answer:
			b = binary.AppendUvarint(b, n.base)
			b = binary.AppendUvarint(b, uint64(n.start))
			b = binary.AppendUvarint(b, uint64(n.end))
		case m.stage == 3 && m.answer:
			b = appendRecords(b, n.records)
		case m.stage == 3:
			b = appendRecords(b, n.records)
			b = appendHashes(b, n.wants)
		default: // answers of stages 1 and 2
			b = append(b, n.kind)
			switch n.kind {
			case kindDecoded:
				if m.stage != 1 {
					return nil, fmt.Errorf("%w: kind %d in stage %d", errWire, n.kind, m.stage)
				}
				b = appendRecords(b, n.records)
				b = appendHashes(b, n.wants)
			case kindSymbols:
				b, err = appendRun(b, n.run)
			case kindFallback:
			default:
				return nil, fmt.Errorf("%w: kind %d", errWire, n.kind)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (r *wireReader) run() riblt.Run {
	l := r.count(maxRunBytes, 1)
	raw := r.take(l)
	if r.err != nil {
		return riblt.Run{}
	}
	run, err := riblt.DecodeRun(raw, riblt.Limits{MaxSymbols: maxRunSymbols})
	if err != nil {
		r.fail("%v", err)
	}
	return run
}

func (r *wireReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) records() [][]byte {
	nr := r.count(maxWireRecords, 1)
	var out [][]byte
	for range nr {
		l := r.count(crdt.MaxRecordSize, 1)
		if rec := r.take(l); rec != nil {
			out = append(out, rec)
		}
	}
	return out
}

func (r *wireReader) hashes() []crdt.Hash {
	n := r.count(maxWireWants, 32)
	if n == 0 {
		return nil
	}
	out := make([]crdt.Hash, n)
	for i := range out {
		copy(out[i][:], r.take(32))
	}
	return out
}

func decodeWire2(b []byte, answer bool) (*wire2Msg, error) {
	r := &wireReader{b: b}
	if v := r.u8(); r.err == nil && v != wireVersion2 {
		return nil, fmt.Errorf("%w: version %d, not %d", errWire, v, wireVersion2)
	}
	m := &wire2Msg{stage: r.u8(), answer: answer}
	if r.err == nil && (m.stage < 1 || m.stage > 3) {
		return nil, fmt.Errorf("%w: stage %d", errWire, m.stage)
	}
	nn := r.count(maxWireNets, 32)
	for range nn {
		var n wire2Net
		copy(n.id[:], r.take(32))
		switch {
		case m.stage == 1 && !answer:
			n.run = r.run()
		case m.stage == 2 && !answer:
			n.base = r.uvarint()
			start, end := r.uvarint(), r.uvarint()
			if r.err == nil && (end < start || end > riblt.MaxSymbols) {
				r.fail("symbols [%d, %d)", start, end)
			}
			n.start, n.end = int(start), int(end)
		case m.stage == 3 && answer:
			n.records = r.records()
		case m.stage == 3:
			n.records = r.records()
			n.wants = r.hashes()
		default:
			n.kind = r.u8()
			switch {
			case n.kind == kindDecoded && m.stage == 1:
				n.records = r.records()
				n.wants = r.hashes()
			case n.kind == kindSymbols:
				n.run = r.run()
			case n.kind == kindFallback:
			default:
				r.fail("kind %d in stage %d", n.kind, m.stage)
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
