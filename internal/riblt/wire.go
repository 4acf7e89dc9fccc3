package riblt

import (
	"encoding/binary"
	"fmt"
)

// Run is a stretch of consecutive coded symbols of one peer's set, as sent
// over the wire.
type Run struct {
	Start   int      // index of Symbols[0]
	Symbols []Symbol // the symbols [Start, Start+len(Symbols))

	// Generation names the sender's set these symbols were produced from
	// (Encoder.Generation); the receiver echoes it when asking for more.
	Generation uint64

	// A run that continues earlier ones (Start > 0) carries the changes to
	// the sender's set since the generation the receiver echoed, and the
	// sender's symbol 0 as it is now. The receiver applies the changes to the
	// symbols it holds and checks that its copy of symbol 0 then matches
	// Head, which catches a sender that restarted or lists wrong changes.
	Changes []Change
	Head    Symbol
}

// The encoding, version 1:
//
//	run     = version:u8 start:uvarint generation:uvarint n:uvarint symbol×n
//	          [ head:symbol m:uvarint change×m ]   (only when start > 0)
//	symbol  = sum:32 checksum:u64be count:varint
//	change  = added:u8 (0 or 1) item:32
//
// Counts shrink to one or two bytes: in a run, a symbol's count is written
// as its difference from a prediction made from the previous symbol's count
// (an item is in symbol k with probability 2/(k+2), so counts fall by
// (k+1)/(k+2) from one index to the next). The first symbol of a run, and
// Head, are predicted as 0. Any count, including a hostile one, round-trips
// exactly: the arithmetic wraps the same way both ways.

// WireVersion is the version byte of the encoding.
const WireVersion = 1

const (
	minSymbolBytes = 32 + 8 + 1
	changeBytes    = 1 + 32
)

// SymbolBytes is the most a symbol can take on the wire (a count far from
// its prediction takes up to 10 bytes; usually it takes 1 or 2).
const SymbolBytes = 32 + 8 + binary.MaxVarintLen64

// Limits bounds what DecodeRun accepts, so that hostile bytes cannot make it
// allocate more than the caller is prepared to hold.
type Limits struct {
	MaxSymbols int // symbols in one run; 0 means MaxSymbols
	MaxChanges int // changes in one run; 0 means ChangeLogLen
}

func (l Limits) withDefaults() Limits {
	if l.MaxSymbols <= 0 || l.MaxSymbols > MaxSymbols {
		l.MaxSymbols = MaxSymbols
	}
	if l.MaxChanges <= 0 {
		l.MaxChanges = ChangeLogLen
	}
	return l
}

func predict(prev int64, k int) int64 { return prev - prev/int64(k+2) }

// AppendBinary appends the encoding of r to b. It fails with ErrRange if
// the run reaches beyond MaxSymbols.
func (r Run) AppendBinary(b []byte) ([]byte, error) {
	if err := checkRange(r.Start, r.Start+len(r.Symbols)); err != nil {
		return b, fmt.Errorf("encoding run: %w", err)
	}
	b = append(b, WireVersion)
	b = binary.AppendUvarint(b, uint64(r.Start))
	b = binary.AppendUvarint(b, r.Generation)
	b = binary.AppendUvarint(b, uint64(len(r.Symbols)))
	var prev int64
	for i := range r.Symbols {
		s := &r.Symbols[i]
		var p int64
		if i > 0 {
			p = predict(prev, r.Start+i)
		}
		b = appendSymbol(b, s, p)
		prev = s.Count
	}
	if r.Start > 0 {
		b = appendSymbol(b, &r.Head, 0)
		b = binary.AppendUvarint(b, uint64(len(r.Changes)))
		for _, c := range r.Changes {
			if c.Added {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
			b = append(b, c.Item[:]...)
		}
	}
	return b, nil
}

// MarshalBinary returns the encoding of r.
func (r Run) MarshalBinary() ([]byte, error) { return r.AppendBinary(nil) }

func appendSymbol(b []byte, s *Symbol, predicted int64) []byte {
	b = append(b, s.Sum[:]...)
	b = binary.BigEndian.AppendUint64(b, s.Checksum)
	return binary.AppendVarint(b, s.Count-predicted)
}

// DecodeRun decodes an encoded run within lim. Any error wraps ErrMalformed.
// It never allocates more than the symbols and changes lim allows and b
// could hold.
func DecodeRun(b []byte, lim Limits) (Run, error) {
	lim = lim.withDefaults()
	d := runReader{b: b}
	if v := d.u8(); d.err == nil && v != WireVersion {
		return Run{}, fmt.Errorf("%w: version %d, this node speaks %d", ErrMalformed, v, WireVersion)
	}
	var r Run
	startU := d.uvarint()
	r.Generation = d.uvarint()
	n := d.count(lim.MaxSymbols, minSymbolBytes)
	if d.err == nil && startU > MaxSymbols-uint64(n) {
		d.fail("symbols [%d, %d+%d) reach beyond %d", startU, startU, n, MaxSymbols)
	}
	if d.err != nil {
		return Run{}, d.err
	}
	r.Start = int(startU)
	if n > 0 {
		r.Symbols = make([]Symbol, n)
	}
	var prev int64
	for i := range r.Symbols {
		var p int64
		if i > 0 {
			p = predict(prev, r.Start+i)
		}
		d.symbol(&r.Symbols[i], p)
		prev = r.Symbols[i].Count
	}
	if r.Start > 0 {
		d.symbol(&r.Head, 0)
		m := d.count(lim.MaxChanges, changeBytes)
		if m > 0 && d.err == nil {
			r.Changes = make([]Change, m)
		}
		for i := range r.Changes {
			switch f := d.u8(); f {
			case 0, 1:
				r.Changes[i].Added = f == 1
			default:
				d.fail("change flag %d", f)
			}
			copy(r.Changes[i].Item[:], d.take(32))
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Run{}, d.err
	}
	return r, nil
}

type runReader struct {
	b   []byte
	err error
}

func (d *runReader) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
}

func (d *runReader) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *runReader) u8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *runReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad unsigned varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a list length, refusing more than max, or more than the bytes
// left could hold at min bytes an entry.
func (d *runReader) count(max, min int) int {
	v := d.uvarint()
	if d.err != nil {
		return 0
	}
	if v > uint64(max) || v > uint64(len(d.b)/min) {
		d.fail("%d entries do not fit", v)
		return 0
	}
	return int(v)
}

func (d *runReader) symbol(s *Symbol, predicted int64) {
	copy(s.Sum[:], d.take(32))
	if v := d.take(8); v != nil {
		s.Checksum = binary.BigEndian.Uint64(v)
	}
	if d.err != nil {
		return
	}
	delta, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad count")
		return
	}
	d.b = d.b[n:]
	s.Count = predicted + delta
}
