package riblt

import (
	"errors"
	"testing"

	"pgregory.net/rapid"
)

// drawDiff draws a difference size: often small, sometimes thousands.
func drawDiff(t *rapid.T, label string) int {
	switch rapid.IntRange(0, 3).Draw(t, label+" scale") {
	case 0:
		return rapid.IntRange(0, 3).Draw(t, label)
	case 1:
		return rapid.IntRange(0, 40).Draw(t, label)
	case 2:
		return rapid.IntRange(0, 400).Draw(t, label)
	default:
		return rapid.IntRange(0, 3000).Draw(t, label)
	}
}

// drawBatch draws how a reconciliation asks for symbols: one at a time,
// doubling, or in random steps.
func drawBatch(t *rapid.T) func(int) int {
	switch rapid.IntRange(0, 2).Draw(t, "batching") {
	case 0:
		return func(int) int { return 1 }
	case 1:
		return doubling
	default:
		step := rapid.IntRange(1, 300).Draw(t, "step")
		return func(int) int { return step }
	}
}

// Random sets with random differences: both sides' extra items are
// recovered exactly, and before that, nothing wrong is ever reported.
func TestDecodeRecoversBothSides(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		common := items(seed, rapid.IntRange(0, 3000).Draw(t, "common"))
		onlyLocal := items(seed+1, drawDiff(t, "local only"))
		onlyRemote := items(seed+2, drawDiff(t, "remote only"))
		local := encoderOf(testKey, common, onlyLocal)
		remote := encoderOf(testKey, common, onlyRemote)
		d := NewDecoder(local)
		next := drawBatch(t)
		diff := len(onlyLocal) + len(onlyRemote)
		limit := 4*diff + 64
		inRemote, inLocal := setOf(onlyRemote), setOf(onlyLocal)
		for runs := 0; !d.Decoded() && d.Len() < limit; runs++ {
			r, err := remote.Run(d.Len(), min(limit, d.Len()+next(d.Len())), d.RemoteGeneration())
			if err != nil {
				t.Fatal(err)
			}
			if err := d.AddRun(r); err != nil {
				t.Fatal(err)
			}
			if runs%16 == 0 {
				assertSubset(t, d.RemoteOnly(), inRemote, "remote only")
				assertSubset(t, d.LocalOnly(), inLocal, "local only")
			}
		}
		if !d.Decoded() {
			t.Fatalf("difference of %d not decoded in %d symbols", diff, d.Len())
		}
		if !sameItems(d.RemoteOnly(), onlyRemote) || !sameItems(d.LocalOnly(), onlyLocal) {
			t.Fatalf("decoded %d+%d items, want %d+%d", len(d.RemoteOnly()), len(d.LocalOnly()), len(onlyRemote), len(onlyLocal))
		}
	})
}

func setOf(xs []Item) map[Item]bool {
	in := map[Item]bool{}
	for _, x := range xs {
		in[x] = true
	}
	return in
}

func assertSubset(t *rapid.T, got []Item, in map[Item]bool, what string) {
	for _, x := range got {
		if !in[x] {
			t.Fatalf("%s: reported %x, which is not in the difference", what, x[:8])
		}
	}
}

// Both sets change while the reconciliation runs: the decoder follows the
// local set through its encoder and the peer's through the changes each
// run carries, and ends with the difference of the sets as they are.
func TestDecodeFollowsChanges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		pool := items(seed, 400)
		common := items(seed+1, rapid.IntRange(0, 500).Draw(t, "common"))
		local := encoderOf(testKey, common)
		remote := encoderOf(testKey, common)
		for _, x := range pool {
			switch rapid.IntRange(0, 3).Draw(t, "start") {
			case 1:
				local.Add(x)
			case 2:
				remote.Add(x)
			case 3:
				local.Add(x)
				remote.Add(x)
			}
		}
		d := NewDecoder(local)
		rounds := rapid.IntRange(1, 12).Draw(t, "rounds")
		for range rounds {
			churn := rapid.IntRange(0, 8).Draw(t, "churn")
			for range churn {
				x := pool[rapid.IntRange(0, len(pool)-1).Draw(t, "item")]
				side := local
				if rapid.Bool().Draw(t, "remote side") {
					side = remote
				}
				if !side.Add(x) {
					side.Remove(x)
				}
			}
			r, err := remote.Run(d.Len(), d.Len()+rapid.IntRange(1, 200).Draw(t, "batch"), d.RemoteGeneration())
			if err != nil {
				t.Fatal(err)
			}
			if err := d.AddRun(r); err != nil {
				t.Fatal(err)
			}
		}
		for !d.Decoded() && d.Len() < 4000 {
			r, _ := remote.Run(d.Len(), d.Len()+doubling(d.Len()), d.RemoteGeneration())
			if err := d.AddRun(r); err != nil {
				t.Fatal(err)
			}
		}
		var wantRemote, wantLocal []Item
		for _, x := range pool {
			switch l, r := local.Has(x), remote.Has(x); {
			case r && !l:
				wantRemote = append(wantRemote, x)
			case l && !r:
				wantLocal = append(wantLocal, x)
			}
		}
		if !d.Decoded() || !sameItems(d.RemoteOnly(), wantRemote) || !sameItems(d.LocalOnly(), wantLocal) {
			t.Fatalf("decoded %v: %d+%d items, want %d+%d", d.Decoded(), len(d.RemoteOnly()), len(d.LocalOnly()), len(wantRemote), len(wantLocal))
		}
		// A local change after decoding is folded in by Refresh.
		x := pool[0]
		if !local.Add(x) {
			local.Remove(x)
		}
		if err := d.Refresh(); err != nil {
			t.Fatal(err)
		}
		if l, r := local.Has(x), remote.Has(x); d.Decoded() && l != r && !contains(d.RemoteOnly(), x) && !contains(d.LocalOnly(), x) {
			t.Fatal("a local change after decoding is missing from the result")
		}
	})
}

func contains(xs []Item, x Item) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestDecodeInStep(t *testing.T) {
	xs := items(9, 1000)
	d := NewDecoder(encoderOf(testKey, xs))
	if d.Decoded() {
		t.Fatal("decoded before any symbol")
	}
	s, _ := encoderOf(testKey, xs).Symbols(0, 1)
	if err := d.AddSymbols(s); err != nil || !d.Decoded() || len(d.RemoteOnly())+len(d.LocalOnly()) != 0 {
		t.Fatalf("identical sets: decoded %v, %v", d.Decoded(), err)
	}
}

// Too few symbols: the decoder says so, and what it has found is right.
func TestDecodeTooFewSymbols(t *testing.T) {
	common, extra := items(4, 500), items(5, 200)
	remote := encoderOf(testKey, common, extra)
	d := NewDecoder(encoderOf(testKey, common))
	syms, _ := remote.Symbols(0, 150)
	if err := d.AddSymbols(syms); err != nil {
		t.Fatal(err)
	}
	if d.Decoded() {
		t.Fatal("200 items decoded from 150 symbols")
	}
	in := map[Item]bool{}
	for _, x := range extra {
		in[x] = true
	}
	for _, x := range d.RemoteOnly() {
		if !in[x] {
			t.Fatalf("reported %x, not in the difference", x[:8])
		}
	}
}

// A run corrupted on the way (one bit flipped in one symbol) is never
// decoded into a wrong answer: the corrupted symbol cannot be cleared, so
// the decoder asks for more until the caller gives up, or it detects the
// contradiction.
func TestDecodeCorruptedRun(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		common := items(seed, rapid.IntRange(0, 500).Draw(t, "common"))
		onlyLocal := items(seed+1, drawDiff(t, "local only"))
		onlyRemote := items(seed+2, drawDiff(t, "remote only"))
		remote := encoderOf(testKey, common, onlyRemote)
		d := NewDecoder(encoderOf(testKey, common, onlyLocal))
		limit := 3*(len(onlyLocal)+len(onlyRemote)) + 40
		syms, _ := remote.Symbols(0, limit)
		k := rapid.IntRange(0, limit-1).Draw(t, "corrupt symbol")
		bit := rapid.IntRange(0, 32*8+64+64-1).Draw(t, "bit")
		switch s := &syms[k]; {
		case bit < 256:
			s.Sum[bit/8] ^= 1 << (bit % 8)
		case bit < 320:
			s.Checksum ^= 1 << (bit - 256)
		default:
			s.Count ^= 1 << (bit - 320)
		}
		var err error
		for i := 0; i < limit && err == nil && !d.Decoded(); i++ {
			err = d.AddSymbols(syms[i : i+1])
		}
		if err != nil && !errors.Is(err, ErrInconsistent) {
			t.Fatalf("unexpected error %v", err)
		}
		if d.Decoded() && d.Len() > k {
			t.Fatalf("decoded through corrupted symbol %d (bit %d)", k, bit)
		}
		if d.Decoded() && (!sameItems(d.RemoteOnly(), onlyRemote) || !sameItems(d.LocalOnly(), onlyLocal)) {
			t.Fatal("decoded to a wrong answer")
		}
	})
}

// Hostile runs, from a peer that encodes any set it likes and then tampers
// with symbols and changes: the decoder never panics, and whenever it says
// it decoded, its answer explains every symbol received exactly.
func TestDecodeHostileRuns(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		pool := items(seed, 60)
		var mine, theirs []Item
		for _, x := range pool {
			if rapid.Bool().Draw(t, "local") {
				mine = append(mine, x)
			}
			if rapid.Bool().Draw(t, "claimed") {
				theirs = append(theirs, x)
			}
		}
		local := encoderOf(testKey, mine)
		claimed := encoderOf(testKey, theirs)
		d := NewDecoder(local)
		var received []Symbol
		// Tampering one symbol in tamper (0: never); one change in bogus.
		tamper := rapid.SampledFrom([]int{0, 2, 20, 200}).Draw(t, "tamper rate")
		bogus := rapid.SampledFrom([]int{0, 2, 10}).Draw(t, "bogus rate")
		for range rapid.IntRange(1, 8).Draw(t, "runs") {
			n := rapid.IntRange(0, 60).Draw(t, "n")
			r, err := claimed.Run(d.Len(), d.Len()+n, d.RemoteGeneration())
			if err != nil {
				t.Fatal(err)
			}
			for i := range r.Symbols {
				if tamper == 0 || rapid.IntRange(0, tamper-1).Draw(t, "tampered") != 0 {
					continue
				}
				switch rapid.IntRange(0, 2).Draw(t, "tamper") {
				case 0:
					r.Symbols[i].Count += int64(rapid.IntRange(-2, 2).Draw(t, "count"))
				case 1:
					x := pool[rapid.IntRange(0, len(pool)-1).Draw(t, "x")]
					r.Symbols[i].apply(&x, local.h.checksum(&x), int64(rapid.IntRange(-1, 1).Draw(t, "sign")))
				case 2:
					r.Symbols[i].Checksum = rapid.Uint64().Draw(t, "checksum")
				}
			}
			if r.Start > 0 && bogus > 0 && rapid.IntRange(0, bogus-1).Draw(t, "bogus change") == 0 {
				x := pool[rapid.IntRange(0, len(pool)-1).Draw(t, "x")]
				c := Change{Item: x, Added: rapid.Bool().Draw(t, "added")}
				r.Changes = append(r.Changes, c)
				if rapid.Bool().Draw(t, "consistent head") {
					sign := int64(-1)
					if c.Added {
						sign = 1
					}
					r.Head.apply(&x, local.h.checksum(&x), sign)
				}
			}
			if err := d.AddRun(r); err != nil {
				if !errors.Is(err, ErrInconsistent) && !errors.Is(err, ErrStale) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(r.Changes) > 0 {
				return // received symbols no longer describe one set; checked above not to panic
			}
			received = append(received, r.Symbols...)
		}
		if !d.Decoded() {
			return
		}
		// local - LocalOnly + RemoteOnly must encode to what was received.
		set := map[Item]bool{}
		for _, x := range mine {
			set[x] = true
		}
		for _, x := range d.LocalOnly() {
			if !set[x] {
				t.Fatalf("local-only %x is not local", x[:8])
			}
			delete(set, x)
		}
		for _, x := range d.RemoteOnly() {
			if set[x] {
				t.Fatalf("remote-only %x is local", x[:8])
			}
			set[x] = true
		}
		want := naiveSymbols(testKey, set, len(received))
		for i := range want {
			if want[i] != received[i] {
				t.Fatalf("decoded sets do not explain symbol %d", i)
			}
		}
	})
}

func TestDecoderOutOfOrder(t *testing.T) {
	remote := encoderOf(testKey, items(1, 20))
	d := NewDecoder(encoderOf(testKey, items(2, 20)))
	r, _ := remote.Run(3, 5, 0)
	if err := d.AddRun(r); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("a run starting at 3 first: %v", err)
	}
	r, _ = remote.Run(0, 2, 0)
	if err := d.AddRun(r); err != nil {
		t.Fatal(err)
	}
	if d.Len() != 2 {
		t.Fatalf("Len %d after a rejected and an accepted run", d.Len())
	}
}

// A peer that restarted between two runs (its generations start over) is
// caught by the head check.
func TestDecoderPeerRestarted(t *testing.T) {
	common := items(1, 100)
	remote := encoderOf(testKey, common, items(2, 30))
	d := NewDecoder(encoderOf(testKey, common))
	r, _ := remote.Run(0, 10, 0)
	if err := d.AddRun(r); err != nil {
		t.Fatal(err)
	}
	restarted := encoderOf(testKey, common, items(2, 29), items(3, 1))
	r, err := restarted.Run(10, 20, d.RemoteGeneration()-1)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddRun(r); !errors.Is(err, ErrStale) {
		t.Fatalf("run from a restarted peer: %v, want ErrStale", err)
	}
}

// More local changes between two runs than the change log remembers: the
// decoder cannot bring its symbols up to date, and says so.
func TestDecoderLocalLogOverflow(t *testing.T) {
	common := items(1, 100)
	remote := encoderOf(testKey, common, items(2, 40))
	local := encoderOf(testKey, common)
	d := NewDecoder(local)
	r, _ := remote.Run(0, 10, 0)
	if err := d.AddRun(r); err != nil {
		t.Fatal(err)
	}
	for _, x := range items(3, ChangeLogLen+1) {
		local.Add(x)
	}
	r, _ = remote.Run(10, 20, d.RemoteGeneration())
	if err := d.AddRun(r); !errors.Is(err, ErrStale) {
		t.Fatalf("after %d local changes: %v, want ErrStale", ChangeLogLen+1, err)
	}
	if err := d.AddRun(r); !errors.Is(err, ErrStale) || d.Decoded() {
		t.Fatalf("a failed decoder accepts more: %v", err)
	}
}

// Symbols made under another key (another network, or a peer that derives
// keys differently) never decode, even between identical sets.
func TestDecoderKeyMismatch(t *testing.T) {
	xs := items(1, 300)
	for _, extra := range []int{0, 1, 5} {
		remote := encoderOf(DeriveKey([]byte("other network")), xs, items(2, extra))
		d := NewDecoder(encoderOf(testKey, xs))
		syms, _ := remote.Symbols(0, 200)
		err := d.AddSymbols(syms)
		if d.Decoded() {
			t.Fatalf("%d extra: decoded symbols made under another key", extra)
		}
		if err != nil && !errors.Is(err, ErrInconsistent) {
			t.Fatal(err)
		}
	}
}

// One item replaced by another (the commonest difference): SolvePair finds
// the pair from however few symbols, symbol 0 alone included, and its
// answer is the difference itself.
func TestSolvePairFindsAReplacement(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		common := items(seed, rapid.IntRange(1, 2000).Draw(t, "common"))
		newer := items(seed+1, 1)
		local := encoderOf(testKey, common)
		remote := encoderOf(testKey, common[1:], newer)
		d := NewDecoder(local)
		addRemote(t, d, remote, rapid.IntRange(1, 16).Draw(t, "symbols"))
		if !d.Decoded() && !d.SolvePair() {
			t.Fatalf("a replacement not found from %d symbols", d.Len())
		}
		if !sameItems(d.RemoteOnly(), newer) || !sameItems(d.LocalOnly(), common[:1]) {
			t.Fatalf("decoded %d+%d items, not the replacement", len(d.RemoteOnly()), len(d.LocalOnly()))
		}
		if d.SolvePair() {
			t.Fatal("SolvePair ran twice")
		}
	})
}

// Any other difference: SolvePair finds nothing, claims nothing, and the
// decoder goes on to decode it from more symbols.
func TestSolvePairLeavesOtherDifferences(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		common := items(seed, rapid.IntRange(0, 1000).Draw(t, "common"))
		onlyLocal := items(seed+1, rapid.IntRange(0, 5).Draw(t, "local only"))
		onlyRemote := items(seed+2, rapid.IntRange(0, 5).Draw(t, "remote only"))
		if len(onlyLocal) == 1 && len(onlyRemote) == 1 {
			onlyRemote = append(onlyRemote, items(seed+3, 1)...)
		}
		local := encoderOf(testKey, common, onlyLocal)
		remote := encoderOf(testKey, common, onlyRemote)
		d := NewDecoder(local)
		addRemote(t, d, remote, rapid.IntRange(1, 8).Draw(t, "symbols"))
		before := len(d.RemoteOnly()) + len(d.LocalOnly())
		if d.SolvePair() && !(sameItems(d.RemoteOnly(), onlyRemote) && sameItems(d.LocalOnly(), onlyLocal)) {
			t.Fatal("SolvePair decoded a wrong difference")
		}
		if !d.Decoded() && len(d.RemoteOnly())+len(d.LocalOnly()) != before {
			t.Fatal("SolvePair claimed items without decoding")
		}
		for !d.Decoded() && d.Len() < 256 {
			addRemote(t, d, remote, 2*d.Len())
		}
		if !sameItems(d.RemoteOnly(), onlyRemote) || !sameItems(d.LocalOnly(), onlyLocal) {
			t.Fatal("not the difference after SolvePair")
		}
	})
}

// addRemote gives d the peer's symbols from those it holds up to end.
func addRemote(t *rapid.T, d *Decoder, remote *Encoder, end int) {
	r, err := remote.Run(d.Len(), end, d.RemoteGeneration())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddRun(r); err != nil {
		t.Fatal(err)
	}
}
