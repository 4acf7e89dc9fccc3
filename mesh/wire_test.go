package mesh

import (
	"bytes"
	"testing"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/internal/riblt"
)

func sampleMessages() []*wireMsg {
	id := testKey("admin").Public()
	return []*wireMsg{
		{stage: 1, nets: []wireNet{{id: id, root: crdt.Fingerprint{Count: 3, XOR: crdt.Hash{1, 2}}, groups: [groups]fp8{{1, 2}, {3, 4}}}}},
		{stage: 1, answer: true, nets: []wireNet{{id: id, detail: []groupDetail{{group: 3, buckets: [bucketsPerGrp]fp8{{5, 6}}}}}}},
		{stage: 2, nets: []wireNet{{id: id, prefixes: []bucketPrefixes{{bucket: 7, prefixes: []uint64{0x0700000000000001}}}}}},
		{stage: 2, answer: true, nets: []wireNet{{id: id, records: [][]byte{{1, 2, 3}}, wants: []uint64{9}}}},
		{stage: 3, nets: []wireNet{{id: id, records: [][]byte{{4, 5}}}}},
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b := m.encode()
		got, err := decodeWire(b, m.answer)
		if err != nil {
			t.Fatalf("stage %d: %v", m.stage, err)
		}
		if !bytes.Equal(got.encode(), b) {
			t.Fatalf("stage %d does not round-trip", m.stage)
		}
	}
	for name, b := range map[string][]byte{
		"empty": nil, "version": {9, 1, 0}, "stage": {1, 7, 0},
		"too many nets": {1, 1, 0xff, 0xff, 0x03}, "trailing": append((&wireMsg{stage: 3}).encode(), 0),
	} {
		if _, err := decodeWire(b, false); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzDecodeWire: a peer's sync message must never crash the node or make
// it allocate beyond the bytes it sent.
func FuzzDecodeWire(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(m.encode(), m.answer)
	}
	f.Fuzz(func(t *testing.T, b []byte, answer bool) {
		m, err := decodeWire(b, answer)
		if err != nil {
			return
		}
		if again, err := decodeWire(m.encode(), answer); err != nil || !bytes.Equal(again.encode(), m.encode()) {
			t.Fatalf("a decoded message does not round-trip: %v", err)
		}
	})
}

func sampleMessages2() []*wire2Msg {
	id := testKey("admin").Public()
	sym := func(c int64) riblt.Symbol {
		return riblt.Symbol{Sum: riblt.Item{byte(c)}, Checksum: uint64(c) * 77, Count: c}
	}
	run0 := riblt.Run{Symbols: []riblt.Symbol{sym(5)}, Generation: 9}
	run8 := riblt.Run{Start: 8, Symbols: []riblt.Symbol{sym(2), sym(1)}, Generation: 12, Head: sym(6), Changes: []riblt.Change{{Item: riblt.Item{3}, Added: true}}}
	return []*wire2Msg{
		{stage: 1, nets: []wire2Net{{id: id, run: run0}}},
		{stage: 1, answer: true},
		{stage: 1, answer: true, nets: []wire2Net{{id: id, kind: kindDecoded, records: [][]byte{{1, 2, 3}}, wants: []crdt.Hash{{4}}}, {id: id, kind: kindSymbols, run: run0}, {id: id, kind: kindFallback}}},
		{stage: 2, nets: []wire2Net{{id: id, base: 12, start: 8, end: 16}}},
		{stage: 2, answer: true, nets: []wire2Net{{id: id, kind: kindSymbols, run: run8}, {id: id, kind: kindFallback}}},
		{stage: 3, nets: []wire2Net{{id: id, records: [][]byte{{4, 5}}, wants: []crdt.Hash{{6}, {7}}}}},
		{stage: 3, answer: true, nets: []wire2Net{{id: id, records: [][]byte{{8}}}}},
	}
}

func TestWire2RoundTrip(t *testing.T) {
	for _, m := range sampleMessages2() {
		b := must(m.encode())
		got, err := decodeWire2(b, m.answer)
		if err != nil {
			t.Fatalf("stage %d: %v", m.stage, err)
		}
		if !bytes.Equal(must(got.encode()), b) {
			t.Fatalf("stage %d does not round-trip", m.stage)
		}
	}
	if !InStepAnswer(must((&wire2Msg{stage: 1, answer: true}).encode())) {
		t.Fatal("the empty first answer is not the in-step answer")
	}
	for name, b := range map[string][]byte{
		"empty": nil, "version": {1, 1, 0}, "stage": {2, 7, 0}, "kind": append([]byte{2, 2, 1}, make([]byte, 33)...),
		"trailing": append(must((&wire2Msg{stage: 3}).encode()), 0),
	} {
		if _, err := decodeWire2(b, true); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzDecodeWire2: the same for version 2.
func FuzzDecodeWire2(f *testing.F) {
	for _, m := range sampleMessages2() {
		f.Add(must(m.encode()), m.answer)
	}
	f.Fuzz(func(t *testing.T, b []byte, answer bool) {
		m, err := decodeWire2(b, answer)
		if err != nil {
			return
		}
		enc, err := m.encode()
		if err != nil {
			return // a decoded run that cannot be encoded again is refused when sent
		}
		if again, err := decodeWire2(enc, answer); err != nil || !bytes.Equal(must(again.encode()), enc) {
			t.Fatalf("a decoded message does not round-trip: %v", err)
		}
	})
}
