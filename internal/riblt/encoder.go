package riblt

import (
	"fmt"
	"slices"
)

// MaxSymbols bounds the symbols an Encoder builds and a Decoder accepts:
// 2^18 symbols of 48 bytes are 12 MiB, and decode differences of about
// 180,000 items. Callers should set a far lower bound of their own on what a
// peer may ask for (see DESIGN.md), and fall back to listing hashes when the
// difference is that large: a listing is cheaper by then.
const MaxSymbols = 1 << 18

// Encoder maintains the coded symbols of a set of items: the symbols
// [0, Built()) are kept up to date as items are added and removed, and more
// are built on demand. Building the first m symbols of N items costs
// O(N log m) symbol updates; adding or removing an item costs O(log m) plus a
// queue operation.
//
// An Encoder is not safe for concurrent use; the caller serializes it (in
// data-mesher, under the store's lock, beside the digest index it mirrors).
// A Decoder reads the Encoder it was made with, under the same lock.
type Encoder struct {
	h     hasher
	syms  []Symbol // the symbols built so far
	slots []slot
	free  []uint32 // slots to reuse
	idx   index    // the slot of each live item
	// queue holds every live item whose next index is at or beyond
	// len(syms), and dead slots not yet popped (dead counts them).
	queue queue
	dead  int
	log   changeLog
}

// slot is an item and where it stands: 48 bytes. Its cursor's fields are
// laid out here, not as a cursor (which would pad the slot by 8 bytes), and
// its checksum is not kept but computed again where an update needs it
// (about 15 ns each: 8 bytes less per item held, 24 per host).
type slot struct {
	item Item
	rng  uint64 // the cursor at the item's first index ≥ len(syms)
	next uint32
	live bool
}

func (s *slot) cursor() cursor { return cursor{rng: s.rng, next: s.next} }

func (s *slot) advance() {
	c := s.cursor()
	c.advance()
	s.rng, s.next = c.rng, c.next
}

// NewEncoder returns an encoder of the empty set under key k.
func NewEncoder(k Key) *Encoder {
	return &Encoder{h: newHasher(k), idx: newIndex()}
}

// Grow makes room for n more items, so that a set built at once takes
// what it needs and no more.
func (e *Encoder) Grow(n int) {
	e.slots = slices.Grow(e.slots, n)
	e.queue = slices.Grow(e.queue, n)
	e.idx.resize(e.idx.n+n, e.slots)
}

// Len is the number of items in the set.
func (e *Encoder) Len() int { return e.idx.n }

// Has reports whether x is in the set.
func (e *Encoder) Has(x Item) bool {
	_, _, ok := e.idx.find(&x, e.slots)
	return ok
}

// Built is the number of symbols kept up to date. It only grows, as far as
// the largest range asked for.
func (e *Encoder) Built() int { return len(e.syms) }

// Generation counts the changes made to the set since the encoder was
// created. It names the set a run of symbols was produced from, so that a
// later run can carry the changes since (see Run).
func (e *Encoder) Generation() uint64 { return e.log.gen }

// Add adds x to the set; it reports false, and does nothing, if x is
// already there.
func (e *Encoder) Add(x Item) bool {
	if e.Has(x) {
		return false
	}
	var s uint32
	if n := len(e.free); n > 0 {
		s = e.free[n-1]
		e.free = e.free[:n-1]
	} else {
		s = uint32(len(e.slots))
		e.slots = append(e.slots, slot{})
	}
	sum := e.h.checksum(&x)
	cur := e.walk(&x, sum, 1)
	e.slots[s] = slot{item: x, rng: cur.rng, next: cur.next, live: true}
	if cur.next != endIndex {
		e.queue.push(cur.next, s)
	}
	e.idx.insert(s, e.slots)
	e.log.record(x, true)
	return true
}

// Remove removes x from the set; it reports false, and does nothing, if x
// is not there.
func (e *Encoder) Remove(x Item) bool {
	pos, s, ok := e.idx.find(&x, e.slots)
	if !ok {
		return false
	}
	e.idx.remove(pos, e.slots)
	sl := &e.slots[s]
	e.walk(&sl.item, e.h.checksum(&sl.item), -1)
	sl.live = false
	if sl.next == endIndex {
		e.release(s) // not queued
	} else {
		e.dead++
		e.compact()
	}
	e.log.record(x, false)
	return true
}

// walk adds item x (delta 1) to, or removes it (delta -1) from, the built
// symbols, and returns its cursor at the first index beyond them.
func (e *Encoder) walk(x *Item, sum uint64, delta int64) cursor {
	c := start(e.h.seedOf(x))
	for int64(c.next) < int64(len(e.syms)) {
		e.syms[c.next].apply(x, sum, delta)
		c.advance()
	}
	return c
}

func (e *Encoder) release(s uint32) {
	e.slots[s] = slot{}
	e.free = append(e.free, s)
}

// compact drops dead slots from the queue once they are half of it, so
// that a set with much churn does not keep the queue entries of every item
// it ever held.
func (e *Encoder) compact() {
	if e.dead < 1024 || 2*e.dead < len(e.queue) {
		return
	}
	q := e.queue[:0]
	for _, en := range e.queue {
		if s := uint32(en); e.slots[s].live {
			q = append(q, en)
		} else {
			e.release(s)
		}
	}
	e.queue = q
	e.queue.heapify()
	e.dead = 0
}

// build extends the built symbols to [0, end).
func (e *Encoder) build(end int) {
	if end <= len(e.syms) {
		return
	}
	e.syms = append(e.syms, make([]Symbol, end-len(e.syms))...)
	for len(e.queue) > 0 {
		k, s := e.queue.top()
		if int64(k) >= int64(end) {
			break
		}
		sl := &e.slots[s]
		if !sl.live {
			e.queue.pop()
			e.release(s)
			e.dead--
			continue
		}
		e.syms[k].apply(&sl.item, e.h.checksum(&sl.item), 1)
		sl.advance()
		if sl.next == endIndex {
			e.queue.pop()
		} else {
			e.queue.replaceTop(sl.next, s)
		}
	}
}

func checkRange(start, end int) error {
	if start < 0 || end < start || end > MaxSymbols {
		return fmt.Errorf("%w: [%d, %d) (at most %d symbols)", ErrRange, start, end, MaxSymbols)
	}
	return nil
}

// Symbols returns a copy of the coded symbols [start, end), building them
// if needed.
func (e *Encoder) Symbols(start, end int) ([]Symbol, error) {
	if err := checkRange(start, end); err != nil {
		return nil, err
	}
	e.build(end)
	return append([]Symbol(nil), e.syms[start:end]...), nil
}

// Run returns the symbols [start, end) ready to send to a peer. A run that
// continues earlier ones (start > 0) also carries the set's symbol 0 as it
// is now and the changes since generation base, the Generation of the
// previous run the peer holds from this encoder: with them the peer brings
// the symbols it already has up to date. It fails with ErrStale if the
// change log no longer reaches back to base.
func (e *Encoder) Run(start, end int, base uint64) (Run, error) {
	syms, err := e.Symbols(start, end)
	if err != nil {
		return Run{}, err
	}
	r := Run{Start: start, Symbols: syms, Generation: e.log.gen}
	if start > 0 {
		if r.Changes, err = e.log.since(base); err != nil {
			return Run{}, fmt.Errorf("symbols [%d, %d) since generation %d: %w", start, end, base, err)
		}
		r.Head = e.syms[0]
	}
	return r, nil
}

// ChangesSince returns the changes to the set after generation g, oldest
// first, or ErrStale if more than ChangeLogLen happened since (or g is in
// the future).
func (e *Encoder) ChangesSince(g uint64) ([]Change, error) { return e.log.since(g) }
