package riblt

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

func drawRun(t *rapid.T) Run {
	r := Run{
		Start:      rapid.IntRange(0, MaxSymbols-200).Draw(t, "start"),
		Generation: rapid.Uint64().Draw(t, "generation"),
	}
	symbol := func(label string) Symbol {
		var s Symbol
		copy(s.Sum[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, label+" sum"))
		s.Checksum = rapid.Uint64().Draw(t, label+" checksum")
		s.Count = rapid.Int64().Draw(t, label+" count")
		return s
	}
	for range rapid.IntRange(0, 20).Draw(t, "symbols") {
		r.Symbols = append(r.Symbols, symbol("symbol"))
	}
	if r.Start > 0 {
		r.Head = symbol("head")
		for range rapid.IntRange(0, 5).Draw(t, "changes") {
			var c Change
			copy(c.Item[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "change"))
			c.Added = rapid.Bool().Draw(t, "added")
			r.Changes = append(r.Changes, c)
		}
	}
	return r
}

func TestRunRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := drawRun(t)
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRun(b, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip changed the run:\n got %+v\nwant %+v", got, r)
		}
		// Every proper prefix fails, without panicking.
		for n := range len(b) {
			if _, err := DecodeRun(b[:n], Limits{}); !errors.Is(err, ErrMalformed) {
				t.Fatalf("prefix of %d/%d bytes: %v", n, len(b), err)
			}
		}
		if _, err := DecodeRun(append(b, 0), Limits{}); !errors.Is(err, ErrMalformed) {
			t.Fatalf("trailing byte: %v", err)
		}
	})
}

func TestRunLimits(t *testing.T) {
	e := encoderOf(testKey, items(1, 100))
	r, _ := e.Run(0, 50, 0)
	b, _ := r.MarshalBinary()
	if _, err := DecodeRun(b, Limits{MaxSymbols: 49}); !errors.Is(err, ErrMalformed) {
		t.Errorf("50 symbols with a limit of 49: %v", err)
	}
	if _, err := DecodeRun(b, Limits{MaxSymbols: 50}); err != nil {
		t.Errorf("50 symbols with a limit of 50: %v", err)
	}
	e.Add(items(2, 1)[0])
	e.Add(items(3, 1)[0])
	r, _ = e.Run(50, 60, r.Generation)
	b, _ = r.MarshalBinary()
	if _, err := DecodeRun(b, Limits{MaxChanges: 1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("2 changes with a limit of 1: %v", err)
	}
	// A count claiming far more symbols than the bytes hold is refused
	// before anything is allocated.
	huge := []byte{WireVersion, 0, 0, 0xff, 0xff, 0x0f}
	if _, err := DecodeRun(huge, Limits{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("a huge count: %v", err)
	}
	if _, err := DecodeRun([]byte{2, 0, 0, 0}, Limits{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("version 2: %v", err)
	}
	beyond := Run{Start: MaxSymbols, Symbols: make([]Symbol, 1)}
	if _, err := beyond.MarshalBinary(); !errors.Is(err, ErrRange) {
		t.Errorf("a run beyond MaxSymbols encodes: %v", err)
	}
}

// Symbols of a large set take about 42 bytes each: the count costs one or
// two bytes once predicted from its neighbour.
func TestRunIsCompact(t *testing.T) {
	e := encoderOf(testKey, items(1, 20000))
	r, _ := e.Run(0, 1000, 0)
	b, _ := r.MarshalBinary()
	if per := float64(len(b)) / 1000; per > 42.5 {
		t.Errorf("%.2f bytes per symbol", per)
	}
}

func FuzzDecodeRun(f *testing.F) {
	e := encoderOf(testKey, items(1, 500))
	for _, rg := range [][2]int{{0, 0}, {0, 1}, {0, 9}, {9, 30}} {
		r, _ := e.Run(rg[0], rg[1], 0)
		b, _ := r.MarshalBinary()
		f.Add(b)
	}
	e.Add(items(2, 1)[0])
	r, _ := e.Run(30, 33, e.Generation()-1)
	b, _ := r.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := Limits{MaxSymbols: 64, MaxChanges: 8}
		r, err := DecodeRun(b, lim)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if len(r.Symbols) > lim.MaxSymbols || len(r.Changes) > lim.MaxChanges || r.Start+len(r.Symbols) > MaxSymbols {
			t.Fatalf("limits exceeded: %d symbols from %d, %d changes", len(r.Symbols), r.Start, len(r.Changes))
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(again) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(again))
		}
		r2, err := DecodeRun(again, lim)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoded run does not decode the same: %v", err)
		}
		if !bytes.Equal(again, b) && len(again) == len(b) {
			t.Fatal("two encodings of one run of the same length")
		}
		// Whatever decodes must be safe to hand to a decoder.
		d := NewDecoder(encoderOf(testKey, items(3, 20)))
		if r.Start == 0 {
			_ = d.AddRun(r)
		}
	})
}
