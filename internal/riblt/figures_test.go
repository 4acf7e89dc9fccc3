package riblt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync/atomic"
	"testing"
)

// The figures in DESIGN.md. Byte and symbol counts only: nothing here is
// timed. By default each figure runs a few trials and checks loose bounds;
// RIBLT_FIGURES=1 runs the trial counts DESIGN.md reports and logs tables
// (go test -run Figures -v).

func fullFigures() bool { return os.Getenv("RIBLT_FIGURES") == "1" }

// symbolsNeeded streams a peer's symbols one at a time to a decoder of a set
// that differs by d items (split at random between the sides) and returns
// how many it took to decode, and the symbols and requests the proposed
// schedule (symbol 0 first, then 8, then doubling) would have sent.
func symbolsNeeded(tb testing.TB, seed uint64, d int) (exact, sent, requests int) {
	rng := rand.New(rand.NewPCG(seed, 99))
	xs := items(seed, d)
	local, remote := NewEncoder(testKey), NewEncoder(testKey)
	for _, x := range xs {
		if rng.IntN(2) == 0 {
			local.Add(x)
		} else {
			remote.Add(x)
		}
	}
	dec := NewDecoder(local)
	for !dec.Decoded() {
		s, err := remote.Symbols(dec.Len(), dec.Len()+1)
		if err != nil {
			tb.Fatal(err)
		}
		if err := dec.AddSymbols(s); err != nil {
			tb.Fatal(err)
		}
	}
	exact = dec.Len()
	sent, requests = 1, 1
	for next := 8; sent < exact; next *= 2 {
		sent = next
		requests++
	}
	return exact, sent, requests
}

type stats struct{ mean, p50, p99, max float64 }

func summarize(v []int) stats {
	s := slices.Clone(v)
	slices.Sort(s)
	sum := 0
	for _, x := range s {
		sum += x
	}
	q := func(p float64) float64 { return float64(s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)]) }
	return stats{float64(sum) / float64(len(s)), q(0.50), q(0.99), float64(s[len(s)-1])}
}

func TestFiguresSymbolsPerDifference(t *testing.T) {
	trials := map[int]int{1: 20, 10: 20, 100: 10, 1000: 3, 5000: 1}
	if fullFigures() {
		trials = map[int]int{1: 2000, 10: 2000, 100: 1000, 1000: 300, 5000: 100}
	}
	t.Logf("%6s %7s | %8s %6s %6s %6s %8s | %9s %8s %8s", "d", "trials", "mean", "p50", "p99", "max", "mean/d", "sent mean", "sent p99", "requests")
	for _, d := range []int{1, 10, 100, 1000, 5000} {
		var exact, sent, reqs []int
		for i := range trials[d] {
			e, s, r := symbolsNeeded(t, uint64(d)<<32|uint64(i), d)
			exact, sent, reqs = append(exact, e), append(sent, s), append(reqs, r)
		}
		e, s, r := summarize(exact), summarize(sent), summarize(reqs)
		t.Logf("%6d %7d | %8.1f %6.0f %6.0f %6.0f %8.2f | %9.1f %8.0f %8.1f", d, trials[d], e.mean, e.p50, e.p99, e.max, e.mean/float64(d), s.mean, s.p99, r.mean)
		if d >= 100 && e.mean > 1.6*float64(d) {
			t.Errorf("d=%d: %.0f symbols on average, more than 1.6·d", d, e.mean)
		}
	}
}

func TestFiguresBytesPerSymbol(t *testing.T) {
	n := 100000
	if !fullFigures() {
		n = 20000
	}
	e := encoderOf(testKey, items(42, n))
	for _, rg := range [][2]int{{0, 1}, {0, 8}, {8, 16}, {16, 32}, {0, 1024}, {1024, 2048}, {4096, 8192}} {
		r, err := e.Run(rg[0], rg[1], e.Generation())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := r.MarshalBinary()
		per := float64(len(b)) / float64(rg[1]-rg[0])
		t.Logf("N=%d symbols [%d, %d): %d bytes, %.2f per symbol", n, rg[0], rg[1], len(b), per)
		if rg[1]-rg[0] >= 8 && per > 44+float64(42+1)/float64(rg[1]-rg[0]) {
			t.Errorf("%.2f bytes per symbol", per)
		}
	}
	// The work to build the first m symbols is the number of (item, symbol)
	// incidences, which is the sum of the counts.
	for _, m := range []int{1, 8, 64, 1024, 8192} {
		s, _ := e.Symbols(0, m)
		var updates int64
		for _, x := range s {
			updates += x.Count
		}
		expect := 1.0
		for k := 1; k < m; k++ {
			expect += 2 / float64(k+2)
		}
		t.Logf("N=%d: building %d symbols takes %d symbol updates (%.2f per item, expected %.2f)", n, m, updates, float64(updates)/float64(n), expect)
	}
}

// A test-only implementation of the rounds DESIGN.md proposes, over real
// HTTP, to count what they cost on the wire, headers included. The layout:
//
//	stage 1 → id, run [0, s0) of the asker's set
//	        ← per differing network: kind 1 (decoded): records the asker
//	          lacks, hashes the answerer lacks; or kind 2: run [0, s1) of the
//	          answerer's set
//	stage 2 → id, base generation, [start, end)   ← run
//	stage 3 → id, records pushed, hashes wanted   ← records
type node struct {
	enc     *Encoder
	records map[Item][]byte
}

func newNode(common []Item, recs map[Item][]byte) *node {
	n := &node{enc: encoderOf(testKey, common), records: map[Item][]byte{}}
	for x, r := range recs {
		n.add(x, r)
	}
	return n
}

func (n *node) add(x Item, rec []byte) { n.enc.Add(x); n.records[x] = rec }

var netID = bytes.Repeat([]byte{7}, 32)

const firstSymbols, secondSymbols = 1, 8

func appendRun(b []byte, r Run) []byte {
	rb, err := r.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return append(binary.AppendUvarint(b, uint64(len(rb))), rb...)
}

func appendRecords(b []byte, recs [][]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = append(binary.AppendUvarint(b, uint64(len(r))), r...)
	}
	return b
}

func appendItems(b []byte, xs []Item) []byte {
	b = binary.AppendUvarint(b, uint64(len(xs)))
	for _, x := range xs {
		b = append(b, x[:]...)
	}
	return b
}

type reader struct{ b []byte }

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	r.b = r.b[n:]
	return v
}
func (r *reader) take(n int) []byte { v := r.b[:n]; r.b = r.b[n:]; return v }
func (r *reader) run() Run {
	run, err := DecodeRun(r.take(int(r.uvarint())), Limits{})
	if err != nil {
		panic(err)
	}
	return run
}
func (r *reader) records() [][]byte {
	var out [][]byte
	for range r.uvarint() {
		out = append(out, r.take(int(r.uvarint())))
	}
	return out
}
func (r *reader) items() []Item {
	var out []Item
	for range r.uvarint() {
		out = append(out, Item(r.take(32)))
	}
	return out
}

func (n *node) recordsFor(xs []Item) [][]byte {
	var out [][]byte
	for _, x := range xs {
		out = append(out, n.records[x])
	}
	return out
}

func (n *node) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		return // the request that opens the connection
	}
	body, _ := io.ReadAll(req.Body)
	r := &reader{b: body}
	stage := r.take(2)[1]
	nets := int(r.uvarint())
	out := []byte{2, stage}
	switch stage {
	case 1:
		var parts []byte
		count := 0
		for range nets {
			r.take(32)
			d := NewDecoder(n.enc)
			if err := d.AddRun(r.run()); err != nil {
				panic(err)
			}
			if d.Decoded() && len(d.RemoteOnly())+len(d.LocalOnly()) == 0 {
				continue // in step
			}
			count++
			parts = append(parts, netID...)
			if d.Decoded() {
				parts = append(parts, 1)
				parts = appendRecords(parts, n.recordsFor(d.LocalOnly()))
				parts = appendItems(parts, d.RemoteOnly())
			} else {
				run, _ := n.enc.Run(0, secondSymbols, 0)
				parts = appendRun(append(parts, 2), run)
			}
		}
		out = append(binary.AppendUvarint(out, uint64(count)), parts...)
	case 2:
		out = binary.AppendUvarint(out, uint64(nets))
		for range nets {
			r.take(32)
			base, st, end := r.uvarint(), int(r.uvarint()), int(r.uvarint())
			run, err := n.enc.Run(st, end, base)
			if err != nil {
				panic(err)
			}
			out = appendRun(append(out, netID...), run)
		}
	case 3:
		out = binary.AppendUvarint(out, uint64(nets))
		for range nets {
			r.take(32)
			for _, rec := range r.records() {
				n.add(sha256.Sum256(rec), rec)
			}
			out = appendRecords(append(out, netID...), n.recordsFor(r.items()))
		}
	}
	w.Header().Set("Content-Type", "application/x-data-mesher-sync")
	w.Write(out)
}

type countingConn struct {
	net.Conn
	read, written *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Add(int64(n))
	return n, err
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	return n, err
}

type roundCost struct {
	requests         int
	bytes            int64 // both directions, HTTP headers and bodies
	recordBytes      int
	pulled, pushed   int
	symbolsExchanged int
}

// round runs one reconciliation of asker with the node behind url.
func (a *node) round(t testing.TB, client *http.Client, url string, counted func() int64) roundCost {
	var c roundCost
	before := counted()
	post := func(body []byte) *reader {
		c.requests++
		resp, err := client.Post(url, "application/x-data-mesher-sync", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		r := &reader{b: b}
		r.take(2)
		return r
	}
	first, _ := a.enc.Run(0, firstSymbols, 0)
	c.symbolsExchanged += firstSymbols
	ans := post(appendRun(append([]byte{2, 1, 1}, netID...), first))
	if ans.uvarint() == 0 {
		c.bytes = counted() - before
		return c // in step
	}
	ans.take(32)
	var push, want []Item
	switch ans.take(1)[0] {
	case 1:
		for _, rec := range ans.records() {
			a.add(sha256.Sum256(rec), rec)
			c.pulled++
			c.recordBytes += len(rec)
		}
		push = ans.items()
	case 2:
		d := NewDecoder(a.enc)
		run := ans.run()
		c.symbolsExchanged += len(run.Symbols)
		if err := d.AddRun(run); err != nil {
			t.Fatal(err)
		}
		for !d.Decoded() {
			body := append([]byte{2, 2, 1}, netID...)
			body = binary.AppendUvarint(body, d.RemoteGeneration())
			body = binary.AppendUvarint(body, uint64(d.Len()))
			body = binary.AppendUvarint(body, uint64(2*d.Len()))
			r := post(body)
			r.uvarint()
			r.take(32)
			run := r.run()
			c.symbolsExchanged += len(run.Symbols)
			if err := d.AddRun(run); err != nil {
				t.Fatal(err)
			}
		}
		push, want = d.LocalOnly(), d.RemoteOnly()
	}
	if len(push)+len(want) > 0 {
		recs := a.recordsFor(push)
		for _, r := range recs {
			c.recordBytes += len(r)
		}
		c.pushed = len(recs)
		body := appendRecords(append([]byte{2, 3, 1}, netID...), recs)
		r := post(appendItems(body, want))
		r.uvarint()
		r.take(32)
		for _, rec := range r.records() {
			a.add(sha256.Sum256(rec), rec)
			c.pulled++
			c.recordBytes += len(rec)
		}
	}
	c.bytes = counted() - before
	return c
}

func randomRecords(seed uint64, n, size int) map[Item][]byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := map[Item][]byte{}
	for range n {
		rec := make([]byte, size)
		for i := range rec {
			rec[i] = byte(rng.Uint32())
		}
		out[sha256.Sum256(rec)] = rec
	}
	return out
}

func TestFiguresRoundBytes(t *testing.T) {
	n := 100000
	if !fullFigures() {
		n = 10000
	}
	common := items(42, n)
	var in, out atomic.Int64
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return countingConn{c, &in, &out}, err
	}}}
	counted := func() int64 { return in.Load() + out.Load() }
	const recordSize = 400 // about a host claim; only its size matters here
	for _, sc := range []struct {
		name             string
		askerX, answerX  int
		limitWithoutRecs int64
	}{
		{"in step", 0, 0, 1024},
		{"asker lacks 1 record", 0, 1, 2048},
		{"answerer lacks 1 record", 1, 0, 2048},
		{"10 records each way", 10, 10, 0},
		{"100 records each way", 100, 100, 0},
	} {
		askerExtra := randomRecords(uint64(sc.askerX)*7+1, sc.askerX, recordSize)
		answerExtra := randomRecords(uint64(sc.answerX)*7+2, sc.answerX, recordSize)
		asker, answerer := newNode(common, askerExtra), newNode(common, answerExtra)
		srv := httptest.NewServer(http.HandlerFunc(answerer.serve))
		// Open the connection first, so that the round is counted on a
		// kept-alive connection, as in a running mesh.
		if resp, err := client.Get(srv.URL); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		c := asker.round(t, client, srv.URL+"/v1/sync", counted)
		srv.Close()
		beyond := c.bytes - int64(c.recordBytes)
		t.Logf("N=%d %-24s %d requests, %5d bytes on the wire, %5d beyond the %d record bytes; %d symbols; pulled %d pushed %d",
			n, sc.name, c.requests, c.bytes, beyond, c.recordBytes, c.symbolsExchanged, c.pulled, c.pushed)
		if c.pulled != sc.answerX || c.pushed != sc.askerX {
			t.Errorf("%s: pulled %d pushed %d, want %d and %d", sc.name, c.pulled, c.pushed, sc.answerX, sc.askerX)
		}
		if sc.limitWithoutRecs > 0 && beyond > sc.limitWithoutRecs {
			t.Errorf("%s: %d bytes beyond the records, target %d", sc.name, beyond, sc.limitWithoutRecs)
		}
		a0, _ := asker.enc.Symbols(0, 1)
		b0, _ := answerer.enc.Symbols(0, 1)
		if a0[0] != b0[0] {
			t.Errorf("%s: not in step after the round", sc.name)
		}
	}
	// Today's digest exchange for one changed record among n, from the
	// layout in mesh/wire.go (bodies only; each body also starts with a
	// version byte, a stage byte and a network count):
	//   stage 1 → network id 32, count 4, XOR 32, 16 group fingerprints of 12
	//           ← id 32, one group: count 1, group 1, 16 bucket fingerprints of 12
	//   stage 2 → id 32, bucket count 1, bucket 1, prefix count 2, n/256 prefixes of 8
	//           ← id 32, record count 1, record length 2, the record, wants count 1
	//   stage 3 (only if the answerer lacks it) → the record, ← ack
	prefixes := float64(n) / 256 * 8
	today := 3 + (32 + 4 + 32 + 16*12) + 3 + (32 + 1 + 1 + 16*12) + 3 + (32 + 1 + 1 + 2) + prefixes + 3 + (32 + 1 + 2 + 1)
	t.Logf("today's digests, N=%d, asker lacks one record: %.0f body bytes beyond the record (%.0f of them prefixes) in 2 requests, plus their headers",
		n, today, prefixes)
}
