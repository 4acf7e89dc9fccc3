package riblt

import (
	"encoding/binary"
	"testing"
)

// sipHash is SipHash-2-4 of a message of any length, written from the
// paper's description; sip32 must agree with it on 32-byte messages.
func sipHash(k [2]uint64, msg []byte) uint64 {
	v0, v1, v2, v3 := sipInit(k)
	n := len(msg)
	for len(msg) >= 8 {
		m := binary.LittleEndian.Uint64(msg)
		v3 ^= m
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0 ^= m
		msg = msg[8:]
	}
	last := uint64(n) << 56
	for i, c := range msg {
		last |= uint64(c) << (8 * i)
	}
	v3 ^= last
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= last
	return sipFinish(v0, v1, v2, v3)
}

// The reference vectors of the SipHash paper (appendix A and the authors'
// vectors file): key 00 01 … 0f, message 00 01 … (n-1).
func TestSipHashVectors(t *testing.T) {
	var kb [16]byte
	for i := range kb {
		kb[i] = byte(i)
	}
	k := [2]uint64{binary.LittleEndian.Uint64(kb[:8]), binary.LittleEndian.Uint64(kb[8:])}
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, v := range []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{1, 0x74f839c593dc67fd},
		{15, 0xa129ca6149be45e5},
	} {
		if got := sipHash(k, msg[:v.n]); got != v.want {
			t.Errorf("SipHash-2-4 of %d bytes = %#016x, want %#016x", v.n, got, v.want)
		}
	}
	for off := range 32 {
		x := Item(msg[off : off+32])
		if got, want := sip32(k, &x), sipHash(k, x[:]); got != want {
			t.Fatalf("sip32 = %#x, general SipHash = %#x", got, want)
		}
	}
}

func TestDeriveKeySeparatesParts(t *testing.T) {
	a := DeriveKey([]byte("ab"), []byte("c"))
	b := DeriveKey([]byte("a"), []byte("bc"))
	c := DeriveKey([]byte("abc"))
	if a == b || a == c || b == c {
		t.Fatal("different parts give the same key")
	}
	if DeriveKey([]byte("abc")) != c {
		t.Fatal("DeriveKey is not deterministic")
	}
}
