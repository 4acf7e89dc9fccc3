package riblt

import (
	"bytes"
	"fmt"
	"slices"
)

// Decoder reconciles this node's set, held by an Encoder, with a peer's. It
// takes the peer's coded symbols in runs, subtracts its own, and peels: a
// symbol of the difference that holds exactly one item (count ±1 and a
// checksum that matches its sum) yields that item, which is then removed from
// every other symbol it maps to, which may expose more. When every symbol
// received is zero, the difference is known: Decoded reports true, and
// RemoteOnly and LocalOnly list it. Until then, ask the peer for more.
//
// The sets may change while a reconciliation runs. Before each run the
// decoder brings the symbols it holds up to date with the changes to its
// encoder's set since the last one, and with the changes to the peer's set
// the run carries (Run.Changes). Results are relative to both sets as they
// were at the last call.
//
// Every item peeled is checked against the local set (an item only the peer
// has must be absent here, one only this node has must be present), and the
// number of items peeled is bounded by what honest symbols could yield; a
// violation makes the decoder fail for good with ErrInconsistent. So a
// decoder that reports Decoded has found sets that are consistent with every
// symbol received: this node's set minus LocalOnly plus RemoteOnly encodes to
// exactly the peer's symbols. An honest but truncated or corrupted stream
// cannot yield a wrong answer except through a 64-bit checksum collision;
// a hostile peer can only claim a set it does not hold, which the caller
// must treat as a claim (fetched records are checked against their hashes).
//
// A Decoder reads its Encoder and must be used under the same lock.
type Decoder struct {
	local *Encoder
	res   []Symbol // the residual difference, symbols [0, len(res))
	// nonzero counts the residual symbols that are not zero.
	nonzero int
	// pending lists residual symbols changed since they were last examined.
	pending []uint32
	// allowance bounds the peels still possible: each symbol received, and
	// each item a change adds to a symbol, can make one symbol pure once.
	allowance int

	found map[Item]uint32 // recovered items, by slot in rec
	rec   []recovered
	// queue holds every recovered item whose next index lies beyond
	// len(res), to take out of the symbols that arrive later.
	queue queue

	localGen  uint64 // local generation the residual reflects
	remote0   Symbol // the peer's symbol 0, kept up to date with its changes
	remoteGen uint64
	err       error
	pairTried bool // SolvePair has scanned the local set
}

type recovered struct {
	item Item
	sum  uint64
	cur  cursor // at the first index ≥ len(res)
	sign int64  // +1: only the peer has it; -1: only this node has it
	live bool
}

// NewDecoder returns a decoder that reconciles local's set with a peer's
// set encoded under the same key.
func NewDecoder(local *Encoder) *Decoder {
	return &Decoder{local: local, found: map[Item]uint32{}}
}

// Len is the number of the peer's symbols received.
func (d *Decoder) Len() int { return len(d.res) }

// Err returns the error that stopped the decoder for good, if any
// (ErrStale or ErrInconsistent).
func (d *Decoder) Err() error { return d.err }

// Decoded reports whether the difference is fully known.
func (d *Decoder) Decoded() bool { return d.err == nil && len(d.res) > 0 && d.nonzero == 0 }

// RemoteGeneration is the Generation of the last run received: send it back
// when asking the peer for the next one.
func (d *Decoder) RemoteGeneration() uint64 { return d.remoteGen }

// RemoteOnly returns, sorted, the items recovered so far that the peer has
// and this node lacks.
func (d *Decoder) RemoteOnly() []Item { return d.items(1) }

// LocalOnly returns, sorted, the items recovered so far that this node has
// and the peer lacks.
func (d *Decoder) LocalOnly() []Item { return d.items(-1) }

func (d *Decoder) items(sign int64) []Item {
	var out []Item
	for x, i := range d.found {
		if d.rec[i].sign == sign {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b Item) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// AddSymbols adds the peer's symbols that continue those received, for a
// peer whose set has not changed since its earlier symbols.
func (d *Decoder) AddSymbols(syms []Symbol) error {
	return d.AddRun(Run{Start: len(d.res), Symbols: syms, Generation: d.remoteGen, Head: d.remote0})
}

// Refresh brings the result up to date with changes to the local set since
// the last call.
func (d *Decoder) Refresh() error {
	if d.err == nil {
		d.catchUp()
		d.peel()
	}
	return d.err
}

// AddRun adds a run of the peer's symbols, which must start where those
// received end (ErrOutOfOrder otherwise, leaving the decoder as it was), and
// peels what it can. It fails for good, returning ErrStale or
// ErrInconsistent, when the run cannot be reconciled with what the decoder
// holds; then start over or fall back to another way of reconciling.
func (d *Decoder) AddRun(r Run) error {
	if d.err != nil {
		return d.err
	}
	if r.Start != len(d.res) {
		return fmt.Errorf("%w: run starts at %d, %d symbols held", ErrOutOfOrder, r.Start, len(d.res))
	}
	end := r.Start + len(r.Symbols)
	if err := checkRange(r.Start, end); err != nil {
		return fmt.Errorf("adding peer's symbols: %w", err)
	}
	if r.Start == 0 && len(r.Changes) > 0 {
		return fmt.Errorf("%w: a first run carries changes", ErrOutOfOrder)
	}
	d.catchUp()
	if r.Start > 0 && d.err == nil {
		d.applyRemote(r)
	}
	if d.err != nil {
		return d.err
	}
	if r.Start == 0 && len(r.Symbols) > 0 {
		d.remote0 = r.Symbols[0]
	}
	d.remoteGen = r.Generation

	d.local.build(end)
	d.res = append(d.res, r.Symbols...)
	for k := r.Start; k < end; k++ {
		d.res[k].subtract(&d.local.syms[k])
	}
	// Take the items recovered so far out of the new symbols.
	for len(d.queue) > 0 {
		k, i := d.queue.top()
		if int64(k) >= int64(end) {
			break
		}
		rc := &d.rec[i]
		if !rc.live {
			d.queue.pop()
			continue
		}
		d.res[k].apply(&rc.item, rc.sum, -rc.sign)
		rc.cur.advance()
		if rc.cur.next == endIndex {
			d.queue.pop()
		} else {
			d.queue.replaceTop(rc.cur.next, i)
		}
	}
	for k := r.Start; k < end; k++ {
		if !d.res[k].IsZero() {
			d.nonzero++
			d.pending = append(d.pending, uint32(k))
		}
	}
	d.allowance += len(r.Symbols)
	d.peel()
	return d.err
}

// catchUp applies the local changes since the residual was last brought up
// to date: an item added here leaves the difference with sign -1, one
// removed with sign +1.
func (d *Decoder) catchUp() {
	gen := d.local.Generation()
	if gen == d.localGen {
		return
	}
	if len(d.res) == 0 {
		d.localGen = gen
		return
	}
	cs, err := d.local.ChangesSince(d.localGen)
	if err != nil {
		d.err = fmt.Errorf("catching up with the local set: %w", err)
		return
	}
	for _, c := range cs {
		sign := int64(1)
		if c.Added {
			sign = -1
		}
		d.change(&c.Item, sign)
		if d.err != nil {
			return
		}
	}
	d.localGen = gen
}

// applyRemote applies the changes a continuing run carries and checks the
// peer's symbol 0 against them.
func (d *Decoder) applyRemote(r Run) {
	head := d.remote0
	h := &d.local.h
	for _, c := range r.Changes {
		sign := int64(-1)
		if c.Added {
			sign = 1
		}
		head.apply(&c.Item, h.checksum(&c.Item), sign)
		d.change(&c.Item, sign)
		if d.err != nil {
			return
		}
	}
	if head != r.Head {
		d.err = fmt.Errorf("%w: the peer's symbol 0 does not match its earlier symbols and changes", ErrStale)
		return
	}
	d.remote0 = head
}

// change adds item x with sign to the difference the residual stands for.
// The caller peels once all changes are in: an item changed back and forth
// cancels out, and must not be peeled in between and checked against a
// local set that no longer has it.
func (d *Decoder) change(x *Item, sign int64) {
	if i, ok := d.found[*x]; ok {
		rc := &d.rec[i]
		if rc.sign == sign {
			d.err = fmt.Errorf("%w: item %x changes twice the same way", ErrInconsistent, x[:8])
			return
		}
		// It was recovered with the opposite sign: now both sides hold it,
		// or neither does, and the residual already leaves it out.
		rc.live = false
		delete(d.found, *x)
		return
	}
	sum := d.local.h.checksum(x)
	c := start(d.local.h.seedOf(x))
	for int64(c.next) < int64(len(d.res)) {
		d.applyAt(c.next, x, sum, sign)
		d.allowance++
		c.advance()
	}
}

// applyAt adds x with sign to residual symbol k.
func (d *Decoder) applyAt(k uint32, x *Item, sum uint64, sign int64) {
	s := &d.res[k]
	was := s.IsZero()
	s.apply(x, sum, sign)
	switch now := s.IsZero(); {
	case was && !now:
		d.nonzero++
	case !was && now:
		d.nonzero--
	}
	d.pending = append(d.pending, k)
}

func (d *Decoder) peel() {
	h := &d.local.h
	for len(d.pending) > 0 && d.err == nil {
		k := d.pending[len(d.pending)-1]
		d.pending = d.pending[:len(d.pending)-1]
		s := &d.res[k]
		if s.Count != 1 && s.Count != -1 {
			continue
		}
		if h.checksum(&s.Sum) != s.Checksum {
			continue
		}
		x, sign, sum := s.Sum, s.Count, s.Checksum
		if _, dup := d.found[x]; dup || d.local.Has(x) != (sign < 0) || d.allowance <= 0 {
			d.err = fmt.Errorf("%w: symbol %d yields item %x (count %d)", ErrInconsistent, k, x[:8], sign)
			return
		}
		d.allowance--
		d.recover(x, sum, sign)
	}
}

// recover records item x of the difference (sign +1: only the peer has it;
// -1: only this node has it) and takes it out of every residual symbol.
func (d *Decoder) recover(x Item, sum uint64, sign int64) {
	c := start(d.local.h.seedOf(&x))
	for int64(c.next) < int64(len(d.res)) {
		d.applyAt(c.next, &x, sum, -sign)
		c.advance()
	}
	i := uint32(len(d.rec))
	d.rec = append(d.rec, recovered{item: x, sum: sum, cur: c, sign: sign, live: true})
	d.found[x] = i
	if c.next != endIndex {
		d.queue.push(c.next, i)
	}
}

// SolvePair finishes a reconciliation whose remaining difference is one
// item on each side, the commonest difference there is (a record replaced
// by a newer one), when the symbols received do not separate the two: with
// d = 2, 2% of differences need more than 8 symbols and 0.1% more than 16
// (DESIGN.md), each batch a request more. The residual symbol 0 then holds
// x ⊕ y, for x the local item and y the peer's; SolvePair tries every live
// local item as x, and takes the pair only if the checksums agree and
// removing both leaves every residual symbol zero, so it is exactly as sure
// as peeling is. It costs two checksums per local item (the encoder keeps
// none: 6.4 ms for 100,000 in BenchmarkSolvePair, 3.5 ms when it kept
// them), so it runs at most once per Decoder (later calls
// return false), and only when every residual symbol that is not zero
// equals symbol 0, as they do when the pair is all that is left. It reports
// whether the difference is now decoded. (The two items it adds are outside
// the peeling allowance: running once, it cannot be made to add more.)
func (d *Decoder) SolvePair() bool {
	if d.err != nil || d.pairTried || len(d.res) == 0 || d.nonzero == 0 {
		return false
	}
	r0 := d.res[0]
	if r0.Count != 0 || r0.Sum == (Item{}) {
		return false
	}
	d.pairTried = true
	// Symbols that do not separate x and y each hold both or neither: any
	// other residual symbol means another difference, and saves the scan.
	for k := range d.res {
		if s := &d.res[k]; !s.IsZero() && *s != r0 {
			return false
		}
	}
	h := &d.local.h
	for i := range d.local.slots {
		sl := &d.local.slots[i]
		if !sl.live {
			continue
		}
		x := sl.item
		y := r0.Sum
		xor32(&y, &x)
		sum := h.checksum(&x)
		if sum^h.checksum(&y) != r0.Checksum || d.local.Has(y) || d.isFound(x) || d.isFound(y) {
			continue
		}
		if !d.clearsResidual(x, sum, y) {
			continue
		}
		d.recover(x, sum, -1)
		d.recover(y, h.checksum(&y), 1)
		d.peel()
		return d.Decoded()
	}
	return false
}

// clearsResidual reports whether taking local item x and the peer's item y
// out of the residual leaves every symbol zero.
func (d *Decoder) clearsResidual(x Item, xsum uint64, y Item) bool {
	touched := map[uint32]Symbol{}
	take := func(it *Item, sum uint64, sign int64) {
		c := start(d.local.h.seedOf(it))
		for int64(c.next) < int64(len(d.res)) {
			s, ok := touched[c.next]
			if !ok {
				s = d.res[c.next]
			}
			s.apply(it, sum, -sign)
			touched[c.next] = s
			c.advance()
		}
	}
	take(&x, xsum, -1)
	take(&y, d.local.h.checksum(&y), 1)
	cleared := 0
	for k, s := range touched {
		if !s.IsZero() {
			return false
		}
		if !d.res[k].IsZero() {
			cleared++
		}
	}
	return cleared == d.nonzero
}

func (d *Decoder) isFound(x Item) bool {
	_, ok := d.found[x]
	return ok
}
