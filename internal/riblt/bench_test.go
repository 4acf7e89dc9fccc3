package riblt

import (
	"fmt"
	"testing"
)

// Benchmarks for the lead to run on a quiet machine:
//
//	go test ./internal/riblt/ -run '^$' -bench . -benchmem
//
// They are not run as part of the tests, and their times are not in
// DESIGN.md: only counts are measured on the shared machine.

const benchN = 100000

// BenchmarkEncoderBuild: a node starting up builds its encoder over N
// hashes and the first m symbols.
func BenchmarkEncoderBuild(b *testing.B) {
	xs := items(1, benchN)
	for _, m := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("N=%d/m=%d", benchN, m), func(b *testing.B) {
			for b.Loop() {
				e := NewEncoder(testKey)
				for _, x := range xs {
					e.Add(x)
				}
				if _, err := e.Symbols(0, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncoderExtend: building symbols [m, 2m) on demand, when a peer
// asks beyond those built.
func BenchmarkEncoderExtend(b *testing.B) {
	xs := items(1, benchN)
	for _, m := range []int{64, 1024} {
		b.Run(fmt.Sprintf("N=%d/m=%d", benchN, m), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				e := encoderOf(testKey, xs)
				e.build(m)
				b.StartTimer()
				e.build(2 * m)
			}
		})
	}
}

// BenchmarkEncoderAddRemove: keeping the encoder up to date as a record
// arrives and another is pruned, with m symbols built.
func BenchmarkEncoderAddRemove(b *testing.B) {
	xs := items(1, benchN)
	extra := items(2, 1024)
	for _, m := range []int{64, 1024, 8192} {
		b.Run(fmt.Sprintf("N=%d/m=%d", benchN, m), func(b *testing.B) {
			e := encoderOf(testKey, xs)
			e.build(m)
			i := 0
			for b.Loop() {
				x := extra[i%len(extra)]
				e.Add(x)
				e.Remove(x)
				i++
			}
		})
	}
}

// BenchmarkDecode: one node's side of a reconciliation with both encoders
// built: symbols arrive as the proposed schedule sends them (1, then 8,
// then doubling) until the difference decodes.
func BenchmarkDecode(b *testing.B) {
	common := items(1, benchN)
	for _, d := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("N=%d/d=%d", benchN, d), func(b *testing.B) {
			extra := items(uint64(d)+7, d)
			local := encoderOf(testKey, common, extra[:d/2])
			remote := encoderOf(testKey, common, extra[d/2:])
			local.build(4*d + 64)
			remote.build(4*d + 64)
			var runs []Run
			for _, rg := range [][2]int{{0, 1}, {1, 8}} {
				r, _ := remote.Run(rg[0], rg[1], remote.Generation())
				runs = append(runs, r)
			}
			for n := 8; n < 4*d+64; n *= 2 {
				r, _ := remote.Run(n, 2*n, remote.Generation())
				runs = append(runs, r)
			}
			for b.Loop() {
				dec := NewDecoder(local)
				for _, r := range runs {
					if err := dec.AddRun(r); err != nil {
						b.Fatal(err)
					}
					if dec.Decoded() {
						break
					}
				}
				if !dec.Decoded() {
					b.Fatal("not decoded")
				}
			}
		})
	}
}

// BenchmarkRunWire: encoding and decoding a run of 1024 symbols.
func BenchmarkRunWire(b *testing.B) {
	e := encoderOf(testKey, items(1, benchN))
	r, _ := e.Run(0, 1024, 0)
	buf, _ := r.MarshalBinary()
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		out := make([]byte, 0, len(buf))
		for b.Loop() {
			out, _ = r.AppendBinary(out[:0])
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			if _, err := DecodeRun(buf, Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSolvePair: the scan that settles a replacement the first 8
// symbols do not separate, over N local hashes: one record replaced
// (the scan runs), two (the residual symbols show it is no pair; no scan),
// beside the same decoders without it.
func BenchmarkSolvePair(b *testing.B) {
	xs := items(1, benchN)
	local := encoderOf(testKey, xs)
	for _, replaced := range []int{1, 2} {
		// The last items added are replaced, so that the scan runs to the
		// end; the seed is one whose first 8 symbols do not decode, and
		// for two replaced, one SolvePair does not settle either (when 8
		// symbols peel one of them, it settles the other).
		var r Run
		for seed := uint64(2); ; seed++ {
			var err error
			if r, err = encoderOf(testKey, xs[:benchN-replaced], items(seed, replaced)).Run(0, 8, 0); err != nil {
				b.Fatal(err)
			}
			if d := NewDecoder(local); d.AddRun(r) == nil && !d.Decoded() && (replaced == 1 || !d.SolvePair()) {
				break
			}
		}
		for _, solve := range []bool{false, true} {
			b.Run(fmt.Sprintf("N=%d/replaced=%d/solve=%v", benchN, replaced, solve), func(b *testing.B) {
				for b.Loop() {
					d := NewDecoder(local)
					if err := d.AddRun(r); err != nil {
						b.Fatal(err)
					}
					if solve && d.SolvePair() != (replaced == 1) {
						b.Fatalf("SolvePair on %d replaced", replaced)
					}
				}
			})
		}
	}
}
