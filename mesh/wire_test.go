package mesh

import (
	"bytes"
	"testing"

	"github.com/data-mesher/data-mesher/crdt"
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
