package mesh

import (
	"sync"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Store is a node's replicated state, safe for concurrent use: the gossip
// receiver, the anti-entropy client and server, bootstrap and the agent all
// go through it. Every record enters through crdt ingestion, and every
// record that was added is handed to the subscribers (the mesh spreads it,
// the agent persists it and recomputes the view): nothing is forwarded
// that was not verified here first.
type Store struct {
	mu    sync.Mutex
	state *crdt.State
	now   func() time.Time

	subMu sync.Mutex
	subs  []func([]*crdt.Record)
}

// NewStore wraps state. now is the clock ingestion uses (time.Now in
// production).
func NewStore(state *crdt.State, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{state: state, now: now}
}

// OnAdded registers f to receive every batch of records added to the state,
// after the lock is released. f must not block for long.
func (s *Store) OnAdded(f func([]*crdt.Record)) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.subs = append(s.subs, f)
}

func (s *Store) notify(added []*crdt.Record) {
	if len(added) == 0 {
		return
	}
	s.subMu.Lock()
	subs := s.subs
	s.subMu.Unlock()
	for _, f := range subs {
		f(added)
	}
}

// Ingest verifies and adds a batch (in dependency order, whatever the order
// of recs).
func (s *Store) Ingest(recs []*crdt.Record) crdt.BatchResult {
	s.mu.Lock()
	res := s.state.IngestAll(recs, s.now())
	s.mu.Unlock()
	s.notify(res.AddedRecords)
	return res
}

// IngestBytes decodes and adds encoded records. Records already held cost a
// hash and a lookup each.
func (s *Store) IngestBytes(raws [][]byte) crdt.BatchResult {
	var res crdt.BatchResult
	var fresh []*crdt.Record
	s.mu.Lock()
	now := s.now()
	for _, raw := range raws {
		if s.state.Holds(raw) {
			res.Known++
			continue
		}
		r, err := crdt.DecodeRecord(raw)
		if err != nil {
			res.Rejected = append(res.Rejected, &crdt.Rejection{Reason: crdt.ReasonMalformed, Err: err})
			continue
		}
		fresh = append(fresh, r)
	}
	batch := s.state.IngestAll(fresh, now)
	s.mu.Unlock()
	batch.Known += res.Known
	batch.Rejected = append(res.Rejected, batch.Rejected...)
	s.notify(batch.AddedRecords)
	return batch
}

// Read runs f with the state locked. f must not keep the state or modify
// it; use Write for that.
func (s *Store) Read(f func(*crdt.State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.state)
}

// Write runs f with the state locked, at the store's now, and tells the
// subscribers about the records f reports as added.
func (s *Store) Write(f func(st *crdt.State, now time.Time) []*crdt.Record) {
	s.mu.Lock()
	added := f(s.state, s.now())
	s.mu.Unlock()
	s.notify(added)
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }
