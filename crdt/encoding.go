package crdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// The canonical binary encoding is deliberately plain: fixed-width big-endian
// integers, uvarint lengths and counts, fields always in the same order, lists
// in a defined sort order without duplicates. Decoding re-encodes and demands
// the same bytes, so there is exactly one encoding of each record and its
// SHA-256 is its identity on every machine. FORMAT.md documents the layout.

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed record")

type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) i64(v int64)  { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }
func (e *encoder) uvarint(v uint64) {
	e.b = binary.AppendUvarint(e.b, v)
}
func (e *encoder) bytes(v []byte) {
	e.uvarint(uint64(len(v)))
	e.b = append(e.b, v...)
}
func (e *encoder) str(v string) {
	e.uvarint(uint64(len(v)))
	e.b = append(e.b, v...)
}
func (e *encoder) key(k PublicKey) { e.b = append(e.b, k[:]...) }
func (e *encoder) hash(h Hash)     { e.b = append(e.b, h[:]...) }
func (e *encoder) time(t time.Time) {
	e.i64(t.UnixNano())
}
func (e *encoder) addr(a netip.Addr) {
	b := a.AsSlice()
	e.u8(uint8(len(b)))
	e.b = append(e.b, b...)
}
func (e *encoder) boolean(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// decoder reads the canonical encoding. The first error sticks: later reads
// return zero values, so callers check err once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("%s: need %d bytes, %d left", what, n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(what string) uint8 {
	b := d.take(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) u16(what string) uint16 {
	b := d.take(2, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (d *decoder) u32(what string) uint32 {
	b := d.take(4, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (d *decoder) i64(what string) int64 {
	b := d.take(8, what)
	if b == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("%s: bad length", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a list length and refuses more than max entries, so hostile
// input cannot make the decoder allocate without bound.
func (d *decoder) count(max int, what string) int {
	v := d.uvarint(what)
	if d.err == nil && v > uint64(max) {
		d.fail("%s: %d entries, at most %d allowed", what, v, max)
		return 0
	}
	return int(v)
}

func (d *decoder) bytes(max int, what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.fail("%s: %d bytes, at most %d allowed", what, n, max)
		return nil
	}
	return d.take(int(n), what)
}

// ownBytes is bytes copied out of the input: records keep no reference to
// the buffer they were decoded from.
func (d *decoder) ownBytes(max int, what string) []byte {
	if b := d.bytes(max, what); b != nil {
		return bytes.Clone(b)
	}
	return nil
}

func (d *decoder) str(max int, what string) string { return string(d.bytes(max, what)) }

func (d *decoder) key(what string) PublicKey {
	var k PublicKey
	copy(k[:], d.take(len(k), what))
	return k
}

func (d *decoder) hash(what string) Hash {
	var h Hash
	copy(h[:], d.take(len(h), what))
	return h
}

func (d *decoder) time(what string) time.Time { return unixNano(d.i64(what)) }

func (d *decoder) addr(what string) netip.Addr {
	n := d.u8(what)
	if d.err != nil {
		return netip.Addr{}
	}
	if n != 4 && n != 16 {
		d.fail("%s: address of %d bytes", what, n)
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(d.take(int(n), what))
	return a
}

func (d *decoder) boolean(what string) bool {
	switch v := d.u8(what); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("%s: boolean %d", what, v)
		return false
	}
}

func (d *decoder) end(what string) {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%s: %d trailing bytes", what, len(d.b))
	}
}

// unixNano turns a canonical timestamp back into a time.Time in UTC, so that
// decoded records compare equal to freshly built ones.
func unixNano(n int64) time.Time { return time.Unix(0, n).UTC() }

// canonicalTime drops the monotonic reading and location, keeping the instant.
func canonicalTime(t time.Time) time.Time { return unixNano(t.UnixNano()) }
