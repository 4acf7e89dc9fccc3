package mesh

import (
	"sync"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Store is a node's replicated state, safe for concurrent use: the gossip
// receiver, the anti-entropy client and server, bootstrap and the agent all
// go through it. Every record enters through crdt ingestion, and every
// change (records added, records dropped by Prune or by leaving a network,
// a network joined) is handed to the subscribers after the lock is
// released: the agent persists it and recomputes its view from it. Nothing
// is forwarded that was not verified here first.
type Store struct {
	mu    sync.Mutex
	state *crdt.State
	now   func() time.Time

	subMu sync.Mutex
	subs  []func(Change)
}

// Change is what one write did to the state. A change with no records in
// it still changed the state (a network was joined).
type Change struct {
	Added, Dropped []*crdt.Record
}

// NewStore wraps state. now is the clock ingestion uses (time.Now in
// production).
func NewStore(state *crdt.State, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{state: state, now: now}
}

// Subscribe registers f to receive every change, in order, after the lock
// is released. f runs on the writer's goroutine and must not block for
// long.
func (s *Store) Subscribe(f func(Change)) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.subs = append(s.subs, f)
}

// unlockAndNotify releases the state and tells the subscribers what
// changed, if the state's version moved since before.
func (s *Store) unlockAndNotify(before uint64, c Change) {
	changed := s.state.Version() != before
	s.mu.Unlock()
	if !changed {
		return
	}
	s.subMu.Lock()
	subs := s.subs
	s.subMu.Unlock()
	for _, f := range subs {
		f(c)
	}
}

// Ingest verifies and adds a batch (in dependency order, whatever the order
// of recs).
func (s *Store) Ingest(recs []*crdt.Record) crdt.BatchResult {
	s.mu.Lock()
	before := s.state.Version()
	res := s.state.IngestAll(recs, s.now())
	s.unlockAndNotify(before, Change{Added: res.AddedRecords})
	return res
}

// IngestBytes decodes and adds encoded records. Records already held cost a
// hash and a lookup each.
func (s *Store) IngestBytes(raws [][]byte) crdt.BatchResult {
	var res crdt.BatchResult
	var fresh []*crdt.Record
	s.mu.Lock()
	before := s.state.Version()
	now := s.now()
	var dec crdt.RecordDecoder
	for _, raw := range raws {
		if s.state.Holds(raw) {
			res.Known++
			continue
		}
		r, err := dec.Decode(raw)
		if err != nil {
			res.Rejected = append(res.Rejected, &crdt.Rejection{Reason: crdt.ReasonMalformed, Err: err})
			continue
		}
		fresh = append(fresh, r)
	}
	batch := s.state.IngestAll(fresh, now)
	s.unlockAndNotify(before, Change{Added: batch.AddedRecords})
	batch.Known += res.Known
	batch.Rejected = append(res.Rejected, batch.Rejected...)
	return batch
}

// Prune drops what decayed or what the settings no longer admit, at the
// store's now, and returns it.
func (s *Store) Prune() []*crdt.Record {
	s.mu.Lock()
	before := s.state.Version()
	dropped := s.state.Prune(s.now())
	s.unlockAndNotify(before, Change{Dropped: dropped})
	return dropped
}

// Join makes the state accept network id's records.
func (s *Store) Join(id crdt.PublicKey) {
	s.mu.Lock()
	before := s.state.Version()
	s.state.Join(id)
	s.unlockAndNotify(before, Change{})
}

// Leave drops network id and its records.
func (s *Store) Leave(id crdt.PublicKey) {
	s.mu.Lock()
	before := s.state.Version()
	dropped := s.state.Records(id)
	s.state.Leave(id)
	s.unlockAndNotify(before, Change{Dropped: dropped})
}

// Read runs f with the state locked. f must not keep the state or modify
// it; the other methods do that.
func (s *Store) Read(f func(*crdt.State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.state)
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }
