package mesh

import (
	"errors"
	"fmt"
	"slices"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/internal/riblt"
)

// The transport-independent core of anti-entropy: an Asker builds the
// requests of one round and takes the answers, Answer serves a request,
// both over a Store and message bodies. The peer endpoint (antientropy.go)
// carries them over HTTP; the simulator (package sim) over its simulated
// network. wire.go describes version 1, reconcile_wire.go version 2.

// maxAnswerRecords bounds the record bytes in one answer (and in one push);
// what does not fit comes in the next round.
const maxAnswerRecords = 4 << 20

// Reconciliation by symbols gives way to version 1 for a network when the
// difference is too large for them to pay (DESIGN.md in internal/riblt):
//   - the counts in the two symbol 0s differ by more than fallbackFraction
//     of the larger set and by more than fallbackMinDelta records (a new or
//     long-partitioned node), or
//   - decoding would need more than symbolCap symbols.
const (
	fallbackFraction = 8 // 1/8
	fallbackMinDelta = 32
	// firstSymbols is what an answerer sends when symbol 0 did not decode
	// and the counts say nothing (a power of two; see riblt/DESIGN.md).
	firstSymbols = 8
)

// symbolCap is the most symbols a reconciliation of sets of up to n
// records may use: beyond it a listing of 8-byte prefixes (version 1) is
// as cheap as the 1.4 symbols of 41 bytes each differing record needs.
func symbolCap(n int) int { return min(riblt.MaxSymbols, max(1024, n/4)) }

// SyncResult says what a round moved.
type SyncResult struct {
	Pulled, Pushed int // records
	InStep         bool
	// Requests is the number of requests the round made; Fallback the
	// networks reconciled by version 1.
	Requests, Fallback int
}

// AskOptions tunes an Asker.
type AskOptions struct {
	// Version is the highest version to speak: 2 (the default), or 1 for a
	// peer known to speak only today's bucket exchange.
	Version int
	// OnPulled, if set, sees the result of ingesting each batch of records
	// pulled from the peer (to count them, and penalize a peer that sent
	// invalid ones).
	OnPulled func(crdt.BatchResult)
	// symbolCap replaces symbolCap in tests (to force the fallback).
	symbolCap func(int) int
}

// Asker is one anti-entropy round, from the side that asks. Start returns
// the first request; each answer goes to Next, which returns the next
// request, or nil when the round is over. A round that fails midway (the
// peer is gone) leaves the state consistent: whatever was ingested stays.
//
//	a := NewAsker(store, AskOptions{})
//	for req := a.Start(); req != nil; {
//		ans, err := send(req)
//		if err != nil { ... }
//		if req, err = a.Next(ans); err != nil { ... }
//	}
type Asker struct {
	store *Store
	opts  AskOptions
	res   SyncResult
	// last is the request awaiting its answer.
	last    []byte
	version int
	stage   uint8
	// Version 2: the networks still reconciling by symbols, and what the
	// decoded differences say to push and pull.
	decoding map[crdt.PublicKey]*riblt.Decoder
	push     map[crdt.PublicKey][]crdt.Hash
	pull     map[crdt.PublicKey][]crdt.Hash
	order    []crdt.PublicKey       // networks in request order
	remoteN  map[crdt.PublicKey]int // the peer's record count, from its symbol 0
	// fallback lists the networks left to version 1.
	fallback []crdt.PublicKey
	// v1First: the round began in version 1 (not as a fallback), so an
	// answer to its first stage that lists nothing means in step.
	v1First bool
}

// NewAsker prepares a round over store.
func NewAsker(store *Store, opts AskOptions) *Asker {
	if opts.Version != 1 {
		opts.Version = wireVersion2
	}
	if opts.symbolCap == nil {
		opts.symbolCap = symbolCap
	}
	return &Asker{store: store, opts: opts}
}

// Result says what the round moved so far.
func (a *Asker) Result() SyncResult { return a.res }

// Start returns the round's first request.
func (a *Asker) Start() []byte {
	var ids []crdt.PublicKey
	a.store.Read(func(st *crdt.State) { ids = st.Joined() })
	if a.opts.Version == 1 {
		a.v1First = true
		return a.startV1(ids)
	}
	a.version, a.stage = wireVersion2, 1
	a.decoding = map[crdt.PublicKey]*riblt.Decoder{}
	a.push, a.pull = map[crdt.PublicKey][]crdt.Hash{}, map[crdt.PublicKey][]crdt.Hash{}
	a.remoteN = map[crdt.PublicKey]int{}
	m := &wire2Msg{stage: 1}
	a.store.Read(func(st *crdt.State) {
		for _, id := range ids {
			run, err := st.SymbolRun(id, 0, 1, 0)
			if err != nil {
				continue
			}
			m.nets = append(m.nets, wire2Net{id: id, run: run})
		}
	})
	return a.send2(m)
}

// Refused tells the asker that the peer refused its last request as a
// message it does not understand (an older node answers version 2 with
// 400 Bad Request): the round starts over in version 1, whose first
// request it returns. It returns nil if the refused request was not of
// version 2's first stage, which only a broken peer refuses.
func (a *Asker) Refused() []byte {
	if a.version != wireVersion2 || a.stage != 1 {
		return nil
	}
	var ids []crdt.PublicKey
	a.store.Read(func(st *crdt.State) { ids = st.Joined() })
	a.v1First = true
	return a.startV1(ids)
}

func (a *Asker) send2(m *wire2Msg) []byte {
	b, err := m.encode()
	if err != nil {
		// Only a run beyond riblt.MaxSymbols fails to encode, and the
		// caps keep every run far below it.
		panic(fmt.Sprintf("mesh: encoding a sync request: %v", err))
	}
	a.res.Requests++
	a.last = b
	return b
}

func (a *Asker) send1(m *wireMsg) []byte {
	a.res.Requests++
	a.last = m.encode()
	return a.last
}

// Next takes the answer to the last request and returns the next request,
// or nil when the round is over. A malformed answer is an error; the round
// is then over.
func (a *Asker) Next(answer []byte) ([]byte, error) {
	if a.last == nil {
		return nil, errors.New("mesh: the round is over")
	}
	a.last = nil
	if a.version == 1 {
		return a.nextV1(answer)
	}
	m, err := decodeWire2(answer, true)
	if err != nil {
		return nil, err
	}
	if m.stage != a.stage {
		return nil, fmt.Errorf("%w: answer to stage %d for a request of stage %d", errWire, m.stage, a.stage)
	}
	switch a.stage {
	case 1:
		a.takeStage1(m)
	case 2:
		a.takeRuns(m)
	case 3:
		var pulled [][]byte
		for _, n := range m.nets {
			pulled = append(pulled, n.records...)
		}
		a.ingest(pulled)
		return a.afterV2(), nil
	}
	if req := a.askMore(); req != nil {
		return req, nil
	}
	return a.stage3(), nil
}

// takeStage1 handles the answer to the first request: networks absent from
// it are in step.
func (a *Asker) takeStage1(m *wire2Msg) {
	if len(m.nets) == 0 {
		a.res.InStep = true
		return
	}
	var pulled [][]byte
	a.store.Read(func(st *crdt.State) {
		joined := st.Joined()
		for _, n := range m.nets {
			if !slices.Contains(joined, n.id) || slices.Contains(a.order, n.id) {
				continue
			}
			a.order = append(a.order, n.id)
			switch n.kind {
			case kindDecoded:
				pulled = append(pulled, n.records...)
				a.push[n.id] = n.wants
			case kindSymbols:
				d := st.NewReconciler(n.id)
				if n.run.Start != 0 || len(n.run.Symbols) == 0 || d.AddRun(n.run) != nil {
					a.fallback = append(a.fallback, n.id)
					continue
				}
				a.remoteN[n.id] = int(max(0, n.run.Symbols[0].Count))
				a.decoding[n.id] = d
			case kindFallback:
				a.fallback = append(a.fallback, n.id)
			}
		}
		a.settle(st)
	})
	a.ingest(pulled)
}

// takeRuns adds the runs of a stage-2 answer to their decoders.
func (a *Asker) takeRuns(m *wire2Msg) {
	a.store.Read(func(st *crdt.State) {
		for _, n := range m.nets {
			d := a.decoding[n.id]
			if d == nil {
				continue
			}
			if n.kind != kindSymbols || d.AddRun(n.run) != nil {
				delete(a.decoding, n.id)
				a.fallback = append(a.fallback, n.id)
			}
		}
		a.settle(st)
	})
}

// settle moves the networks whose difference is decoded out of decoding,
// and those that would need too many symbols to the fallback. A difference
// of one record replaced that the first symbols do not separate (2% of them
// from 8 symbols) is finished by the decoder's SolvePair, a scan of this
// node's own set, instead of one or two more requests.
func (a *Asker) settle(st *crdt.State) {
	for _, id := range a.order {
		d := a.decoding[id]
		if d == nil {
			continue
		}
		switch {
		case d.Refresh() != nil:
			a.fallback = append(a.fallback, id)
		case d.Decoded() || d.SolvePair():
			for _, x := range d.LocalOnly() {
				a.push[id] = append(a.push[id], crdt.Hash(x))
			}
			for _, x := range d.RemoteOnly() {
				a.pull[id] = append(a.pull[id], crdt.Hash(x))
			}
		case d.Len() >= a.cap(st, id):
			a.fallback = append(a.fallback, id)
		default:
			continue
		}
		delete(a.decoding, id)
	}
}

// cap is the most symbols reconciling network id with the peer may take.
func (a *Asker) cap(st *crdt.State, id crdt.PublicKey) int {
	return a.opts.symbolCap(max(st.Len(id), a.remoteN[id]))
}

// askMore asks for the next symbols of the networks still decoding.
func (a *Asker) askMore() []byte {
	if len(a.decoding) == 0 {
		return nil
	}
	m := &wire2Msg{stage: 2}
	a.store.Read(func(st *crdt.State) {
		for _, id := range a.order {
			d := a.decoding[id]
			if d == nil {
				continue
			}
			have := d.Len()
			end := min(2*have, have+maxRunSymbols, a.cap(st, id))
			m.nets = append(m.nets, wire2Net{id: id, base: d.RemoteGeneration(), start: have, end: max(end, have+1)})
		}
	})
	a.stage = 2
	return a.send2(m)
}

// stage3 pushes the records the peer lacks and asks for those this node
// lacks, then goes on with the fallback.
func (a *Asker) stage3() []byte {
	m := &wire2Msg{stage: 3}
	a.store.Read(func(st *crdt.State) {
		budget := maxAnswerRecords
		for _, id := range a.order {
			n := wire2Net{id: id, wants: a.pull[id]}
			for _, h := range a.push[id] {
				if r := st.Lookup(id, h); r != nil && budget > 0 {
					n.records = append(n.records, r.Bytes())
					budget -= r.Size()
				}
			}
			if len(n.records)+len(n.wants) > 0 {
				a.res.Pushed += len(n.records)
				m.nets = append(m.nets, n)
			}
		}
	})
	if len(m.nets) == 0 {
		return a.afterV2()
	}
	a.stage = 3
	return a.send2(m)
}

// afterV2 runs version 1 for the networks symbols did not settle.
func (a *Asker) afterV2() []byte {
	if len(a.fallback) == 0 {
		return nil
	}
	a.res.Fallback = len(a.fallback)
	return a.startV1(a.fallback)
}

func (a *Asker) ingest(raws [][]byte) {
	if len(raws) == 0 {
		return
	}
	got := a.store.IngestBytes(raws)
	a.res.Pulled += got.Added
	if a.opts.OnPulled != nil {
		a.opts.OnPulled(got)
	}
}

// Version 1, the bucket exchange (wire.go).

func (a *Asker) startV1(ids []crdt.PublicKey) []byte {
	a.version, a.stage = 1, 1
	req := &wireMsg{stage: 1}
	a.store.Read(func(st *crdt.State) {
		for _, id := range ids {
			wn := wireNet{id: id, root: st.Fingerprint(id)}
			b := st.BucketFingerprints(id)
			for g := range groups {
				var f crdt.Fingerprint
				for i := range bucketsPerGrp {
					f = f.Combine(b[g*bucketsPerGrp+i])
				}
				wn.groups[g] = short(f)
			}
			req.nets = append(req.nets, wn)
		}
	})
	return a.send1(req)
}

func (a *Asker) nextV1(answer []byte) ([]byte, error) {
	m, err := decodeWire(answer, true)
	if err != nil {
		return nil, err
	}
	if m.stage != a.stage {
		return nil, fmt.Errorf("%w: answer to stage %d for a request of stage %d", errWire, m.stage, a.stage)
	}
	switch a.stage {
	case 1:
		// The prefixes held in the buckets that differ.
		req := &wireMsg{stage: 2}
		a.store.Read(func(st *crdt.State) {
			for _, an := range m.nets {
				if !slices.Contains(st.Joined(), an.id) {
					continue
				}
				mine := st.BucketFingerprints(an.id)
				wn := wireNet{id: an.id}
				for _, d := range an.detail {
					for i, theirs := range d.buckets {
						b := int(d.group)*bucketsPerGrp + i
						if short(mine[b]) == theirs {
							continue
						}
						bp := bucketPrefixes{bucket: uint8(b)}
						for _, h := range st.BucketHashes(an.id, uint8(b)) {
							bp.prefixes = append(bp.prefixes, prefixOf(h))
						}
						wn.prefixes = append(wn.prefixes, bp)
					}
				}
				if len(wn.prefixes) > 0 {
					req.nets = append(req.nets, wn)
				}
			}
		})
		if len(req.nets) == 0 {
			a.res.InStep = a.v1First
			return nil, nil
		}
		a.stage = 2
		return a.send1(req), nil
	case 2:
		var pulled [][]byte
		for _, an := range m.nets {
			pulled = append(pulled, an.records...)
		}
		a.ingest(pulled)
		// Push what the peer wants.
		req := &wireMsg{stage: 3}
		a.store.Read(func(st *crdt.State) {
			for _, an := range m.nets {
				if len(an.wants) == 0 {
					continue
				}
				want := map[uint64]bool{}
				for _, p := range an.wants {
					want[p] = true
				}
				wn := wireNet{id: an.id}
				for _, b := range bucketsOf(an.wants) {
					for _, h := range st.BucketHashes(an.id, b) {
						if want[prefixOf(h)] {
							if r := st.Lookup(an.id, h); r != nil {
								wn.records = append(wn.records, r.Bytes())
							}
						}
					}
				}
				if len(wn.records) > 0 {
					a.res.Pushed += len(wn.records)
					req.nets = append(req.nets, wn)
				}
			}
		})
		if len(req.nets) == 0 {
			return nil, nil
		}
		a.stage = 3
		return a.send1(req), nil
	}
	return nil, nil
}

func bucketsOf(prefixes []uint64) []uint8 {
	seen := map[uint8]bool{}
	var out []uint8
	for _, p := range prefixes {
		b := uint8(p >> 56)
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	return out
}

// AnswerOptions tunes Answer.
type AnswerOptions struct {
	// Version is the highest version to answer: 2 (the default), or 1 to
	// answer as an older node does (refusing version 2).
	Version int
}

// Answer serves one request of a round for a peer: it returns the answer
// and, for a request that pushed records, what ingesting them did (so that
// the caller can penalize a peer that pushed invalid ones). A request it
// cannot read (malformed, or of a version it does not speak) is an error
// wrapping errWire; an HTTP server answers it with 400 Bad Request, which
// is how an older node refuses version 2.
func Answer(store *Store, body []byte, opts AnswerOptions) ([]byte, crdt.BatchResult, error) {
	if len(body) > 0 && body[0] == wireVersion2 && opts.Version != 1 {
		m, err := decodeWire2(body, false)
		if err != nil {
			return nil, crdt.BatchResult{}, err
		}
		out, pushed := answerV2(store, m)
		b, err := out.encode()
		return b, pushed, err
	}
	m, err := decodeWire(body, false)
	if err != nil {
		return nil, crdt.BatchResult{}, err
	}
	out, pushed := answerV1(store, m)
	return out.encode(), pushed, nil
}

// InStepAnswer reports whether an answer says the two nodes are in step
// (a version-2 first answer listing no network): the peer endpoint sends it
// as 204 No Content, and takes 204 back as it.
func InStepAnswer(b []byte) bool {
	return len(b) == 3 && b[0] == wireVersion2 && b[1] == 1 && b[2] == 0
}

// inStepAnswer is the body InStepAnswer recognizes.
var inStepAnswer = []byte{wireVersion2, 1, 0}

func answerV2(store *Store, m *wire2Msg) (*wire2Msg, crdt.BatchResult) {
	out := &wire2Msg{stage: m.stage, answer: true}
	switch m.stage {
	case 1:
		store.Read(func(st *crdt.State) {
			budget := maxAnswerRecords
			for _, rn := range m.nets {
				if !slices.Contains(st.Joined(), rn.id) || slices.ContainsFunc(out.nets, func(n wire2Net) bool { return n.id == rn.id }) {
					continue // a node serves only the networks it joined
				}
				mine, err := st.SymbolRun(rn.id, 0, 1, 0)
				if err != nil || rn.run.Start != 0 || len(rn.run.Symbols) == 0 {
					continue
				}
				theirs := rn.run.Symbols[0]
				if mine.Symbols[0] == theirs {
					continue // in step
				}
				wn := wire2Net{id: rn.id, kind: kindFallback}
				ours := mine.Symbols[0].Count
				delta := ours - theirs.Count
				if delta < 0 {
					delta = -delta
				}
				if delta > fallbackMinDelta && delta > max(ours, theirs.Count)/fallbackFraction {
					out.nets = append(out.nets, wn)
					continue
				}
				d := st.NewReconciler(rn.id)
				switch {
				case d.AddRun(rn.run) != nil:
					// Symbols that contradict this node's set: version 1
					// settles it, and checks every record it moves.
				case d.Decoded():
					wn.kind = kindDecoded
					wn.wants = hashesOf(d.RemoteOnly())
					for _, x := range d.LocalOnly() {
						if r := st.Lookup(rn.id, crdt.Hash(x)); r != nil && budget > 0 {
							wn.records = append(wn.records, r.Bytes())
							budget -= r.Size()
						}
					}
				default:
					s := firstSymbols
					for s < int(delta+delta/2) {
						s *= 2
					}
					s = min(s, maxRunSymbols, symbolCap(int(max(ours, theirs.Count))))
					if run, err := st.SymbolRun(rn.id, 0, s, 0); err == nil {
						wn.kind, wn.run = kindSymbols, run
					}
				}
				out.nets = append(out.nets, wn)
			}
		})
	case 2:
		store.Read(func(st *crdt.State) {
			for _, rn := range m.nets {
				if !slices.Contains(st.Joined(), rn.id) {
					continue
				}
				wn := wire2Net{id: rn.id, kind: kindFallback}
				if rn.end-rn.start <= maxRunSymbols && rn.end <= symbolCap(st.Len(rn.id)) {
					if run, err := st.SymbolRun(rn.id, rn.start, rn.end, rn.base); err == nil {
						wn.kind, wn.run = kindSymbols, run
					}
				}
				out.nets = append(out.nets, wn)
			}
		})
	case 3:
		var raws [][]byte
		for _, rn := range m.nets {
			raws = append(raws, rn.records...)
		}
		pushed := store.IngestBytes(raws)
		store.Read(func(st *crdt.State) {
			budget := maxAnswerRecords
			for _, rn := range m.nets {
				if !slices.Contains(st.Joined(), rn.id) {
					continue
				}
				wn := wire2Net{id: rn.id}
				for _, h := range rn.wants {
					if r := st.Lookup(rn.id, h); r != nil && budget > 0 {
						wn.records = append(wn.records, r.Bytes())
						budget -= r.Size()
					}
				}
				out.nets = append(out.nets, wn)
			}
		})
		return out, pushed
	}
	return out, crdt.BatchResult{}
}

func hashesOf(xs []riblt.Item) []crdt.Hash {
	out := make([]crdt.Hash, len(xs))
	for i, x := range xs {
		out[i] = crdt.Hash(x)
	}
	return out
}

func answerV1(store *Store, m *wireMsg) (*wireMsg, crdt.BatchResult) {
	out := &wireMsg{stage: m.stage, answer: true}
	switch m.stage {
	case 1:
		store.Read(func(st *crdt.State) {
			for _, rn := range m.nets {
				if !slices.Contains(st.Joined(), rn.id) {
					continue // a node serves only the networks it joined
				}
				root := st.Fingerprint(rn.id)
				if root.Count == rn.root.Count && root.XOR == rn.root.XOR {
					continue
				}
				b := st.BucketFingerprints(rn.id)
				wn := wireNet{id: rn.id}
				for g := range groups {
					var f crdt.Fingerprint
					var d groupDetail
					d.group = uint8(g)
					for i := range bucketsPerGrp {
						f = f.Combine(b[g*bucketsPerGrp+i])
						d.buckets[i] = short(b[g*bucketsPerGrp+i])
					}
					if short(f) != rn.groups[g] {
						wn.detail = append(wn.detail, d)
					}
				}
				out.nets = append(out.nets, wn)
			}
		})
	case 2:
		store.Read(func(st *crdt.State) {
			budget := maxAnswerRecords
			for _, rn := range m.nets {
				if !slices.Contains(st.Joined(), rn.id) {
					continue
				}
				wn := wireNet{id: rn.id}
				for _, bp := range rn.prefixes {
					theirs := map[uint64]bool{}
					for _, p := range bp.prefixes {
						theirs[p] = true
					}
					mine := map[uint64]bool{}
					for _, h := range st.BucketHashes(rn.id, bp.bucket) {
						p := prefixOf(h)
						mine[p] = true
						if theirs[p] || budget <= 0 {
							continue
						}
						if r := st.Lookup(rn.id, h); r != nil {
							wn.records = append(wn.records, r.Bytes())
							budget -= r.Size()
						}
					}
					for _, p := range bp.prefixes {
						if !mine[p] && uint8(p>>56) == bp.bucket {
							wn.wants = append(wn.wants, p)
						}
					}
				}
				out.nets = append(out.nets, wn)
			}
		})
	case 3:
		var raws [][]byte
		for _, rn := range m.nets {
			raws = append(raws, rn.records...)
		}
		return out, store.IngestBytes(raws)
	}
	return out, crdt.BatchResult{}
}
