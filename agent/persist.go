package agent

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
)

// The state file: every record of every joined network, in the canonical
// encoding, with what verifying each attestation established, and an HMAC
// keyed by the node's own key over all of it:
//
//	"DMSTATE1"
//	{ uvarint length, record; for attestations: int64 time (ns),
//	  u8 attestor kind, 32 bytes attestor id }…
//	HMAC-SHA256 (32 bytes)
//
// The MAC lets a node that restarts trust its own earlier verification and
// answer DNS within milliseconds; anything else (a file from another
// machine, a damaged file) gets no such trust: it is set aside and what can
// be salvaged goes through full verification.

const stateMagic = "DMSTATE1"

func stateMACKey(k crdt.PrivateKey) []byte {
	h := sha256.New()
	h.Write([]byte("data-mesher/v1 state file MAC\x00"))
	h.Write(k.Seed())
	return h.Sum(nil)
}

// EncodeState returns entries as a state file.
func EncodeState(entries []crdt.Verified, key crdt.PrivateKey) []byte {
	var b bytes.Buffer
	_ = WriteState(&b, entries, key) // a bytes.Buffer does not fail
	return b.Bytes()
}

// WriteState writes entries to w as a state file, as it goes: no copy of
// the whole file is ever held.
func WriteState(w io.Writer, entries []crdt.Verified, key crdt.PrivateKey) error {
	return writeState(w, key, slices.Values(entries))
}

// snapshotEntries yields a network's Snapshot as the entries of a state
// file.
func snapshotEntries(recs []*crdt.Record, atts []crdt.Attested) iter.Seq[crdt.Verified] {
	return func(yield func(crdt.Verified) bool) {
		first := len(recs) - len(atts) // atts are the last records'
		for i, r := range recs {
			e := crdt.Verified{Record: r}
			if i >= first {
				e.Attested = atts[i-first]
			}
			if !yield(e) {
				return
			}
		}
	}
}

// writeState is WriteState of parts written one after the other (each
// network's entries: no copy of all of them is made). Each record is
// encoded into one reused buffer.
func writeState(w io.Writer, key crdt.PrivateKey, parts ...iter.Seq[crdt.Verified]) error {
	m := hmac.New(sha256.New, stateMACKey(key))
	bw := bufio.NewWriterSize(io.MultiWriter(w, m), 64<<10)
	bw.WriteString(stateMagic)
	var head [binary.MaxVarintLen64 + 8 + 1 + 32]byte
	raw := make([]byte, 0, 512)
	for _, entries := range parts {
		for e := range entries {
			raw = e.Record.AppendBytes(raw[:0])
			bw.Write(binary.AppendUvarint(head[:0], uint64(len(raw))))
			bw.Write(raw)
			if e.Record.Kind() == crdt.KindAttestation {
				t := binary.BigEndian.AppendUint64(head[:0], uint64(e.Attested.Time.UnixNano()))
				t = append(t, byte(e.Attested.By.Kind))
				bw.Write(append(t, e.Attested.By.ID[:]...))
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(m.Sum(nil))
	return err
}

// ErrStateCorrupt is wrapped when a state file fails its MAC or does not
// parse.
var ErrStateCorrupt = errors.New("state file is corrupt or not this node's")

// DecodeState reads a state file held in memory (see ReadState).
func DecodeState(b []byte, key crdt.PrivateKey) (entries []crdt.Verified, salvaged []*crdt.Record, err error) {
	return ReadState(bytes.NewReader(b), key)
}

// ReadState reads a state file as a stream: one record at a time (each at
// most crdt.MaxRecordSize), never the whole file at once. With a good MAC
// it returns the entries, trusted as this node verified them. Otherwise it
// returns ErrStateCorrupt and, salvaged, the records it could still parse
// (to be verified like any others). An error reading r is returned as is.
func ReadState(r io.Reader, key crdt.PrivateKey) (entries []crdt.Verified, salvaged []*crdt.Record, err error) {
	return readState(r, key, nil)
}

// stateBatch is how many entries readState hands on at a time.
const stateBatch = 4096

// readState is ReadState. With emit, it hands the entries on as they are
// decoded, stateBatch at a time and before the MAC is known (what emit does
// with them must be undone if the MAC then fails), and keeps none of them:
// it returns no entries and nothing salvaged, only the error, and a caller
// that needs them reads the file again with ReadState. emit returns the
// slice to fill next (nil for a new one): a batch it is done with, so
// 300,000 entries are not 21 MB of garbage during start-up.
func readState(r io.Reader, key crdt.PrivateKey, emit func([]crdt.Verified) []crdt.Verified) (entries []crdt.Verified, salvaged []*crdt.Record, err error) {
	tr := &macTail{r: r, mac: hmac.New(sha256.New, stateMACKey(key)), buf: make([]byte, 0, 64<<10)}
	br := bufio.NewReaderSize(tr, 64<<10)
	magic := make([]byte, len(stateMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != stateMagic {
		if tr.err != nil {
			return nil, nil, tr.err
		}
		return nil, nil, fmt.Errorf("%w: not a data-mesher state file", ErrStateCorrupt)
	}
	var bad error // the first record that did not parse
	if emit == nil {
		// Sized from the file, when r is one (bounded: a hint, not a limit).
		entries = make([]crdt.Verified, 0, sizeHint(r, minRecordFrame, 1<<19))
	} else {
		entries = make([]crdt.Verified, 0, stateBatch)
	}
	buf := make([]byte, crdt.MaxRecordSize)
	var dec crdt.RecordDecoder
	for {
		n, err := binary.ReadUvarint(br)
		if err != nil || n > crdt.MaxRecordSize {
			if err != io.EOF && bad == nil {
				bad = fmt.Errorf("a record length does not parse (%v) or is over %d bytes", err, crdt.MaxRecordSize)
			}
			break
		}
		raw := buf[:n]
		if _, err := io.ReadFull(br, raw); err != nil {
			bad = cmp.Or(bad, errors.New("the file ends inside a record"))
			break
		}
		var e crdt.Verified
		if n >= 2 && crdt.Kind(raw[1]) == crdt.KindAttestation {
			var a [8 + 1 + 32]byte
			if _, err := io.ReadFull(br, a[:]); err != nil {
				bad = cmp.Or(bad, errors.New("the file ends inside an attestation's verdict"))
				break
			}
			e.Attested.Time = time.Unix(0, int64(binary.BigEndian.Uint64(a[:]))).UTC()
			e.Attested.By.Kind = crdt.AttestorKind(a[8])
			copy(e.Attested.By.ID[:], a[9:])
		}
		rec, derr := dec.Decode(raw) // copies raw
		if derr != nil {
			bad = cmp.Or(bad, derr)
			continue
		}
		e.Record = rec
		entries = append(entries, e)
		if emit != nil && len(entries) == stateBatch {
			if entries = emit(entries); entries == nil {
				entries = make([]crdt.Verified, 0, stateBatch)
			}
			entries = entries[:0]
		}
	}
	if emit != nil {
		if len(entries) > 0 {
			emit(entries)
		}
		entries = nil
	}
	// Drain what is left, so the MAC covers the whole file.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, nil, err
	}
	if tr.err != nil {
		return nil, nil, tr.err
	}
	macOK := len(tr.buf) == sha256.Size && hmac.Equal(tr.mac.Sum(nil), tr.buf)
	if !macOK && emit != nil {
		return nil, nil, fmt.Errorf("%w: the MAC does not match", ErrStateCorrupt)
	}
	if bad != nil && emit != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrStateCorrupt, bad)
	}
	if !macOK || bad != nil {
		for _, e := range entries {
			salvaged = append(salvaged, e.Record)
		}
		if !macOK {
			return nil, salvaged, fmt.Errorf("%w: the MAC does not match", ErrStateCorrupt)
		}
		return nil, salvaged, fmt.Errorf("%w: %v", ErrStateCorrupt, bad)
	}
	return entries, nil, nil
}

// macTail reads r but holds back its last sha256.Size bytes (the MAC, in
// buf once r ends), feeding everything before them to mac.
type macTail struct {
	r   io.Reader
	mac hash.Hash
	buf []byte // bytes read from r, not yet passed on
	eof bool
	err error // a read error other than io.EOF
}

func (t *macTail) Read(p []byte) (int, error) {
	for len(t.buf) <= sha256.Size && !t.eof {
		if len(t.buf) == cap(t.buf) {
			t.buf = slices.Grow(t.buf, cap(t.buf))
		}
		n, err := t.r.Read(t.buf[len(t.buf):cap(t.buf)])
		t.buf = t.buf[:len(t.buf)+n]
		if err == io.EOF {
			t.eof = true
		} else if err != nil {
			t.err = err
			return 0, err
		}
	}
	avail := len(t.buf) - sha256.Size
	if avail <= 0 {
		return 0, io.EOF
	}
	n := copy(p, t.buf[:avail])
	t.mac.Write(p[:n])
	t.buf = t.buf[:copy(t.buf, t.buf[n:])]
	return n, nil
}

// persister writes the state file after changes, coalescing bursts, and
// lets callers wait until a change is on disk (group commit).
type persister struct {
	path  string
	key   crdt.PrivateKey
	store *mesh.Store
	log   *slog.Logger
	// minGap spaces out writes that nobody waits for: gapFloor, or a
	// second per MiB the last write took.
	minGap, gapFloor time.Duration
	writes           atomic.Uint64 // state files written

	mu        sync.Mutex
	cond      *sync.Cond
	dirty     uint64 // version of the last change
	written   uint64 // version on disk
	waiting   int
	lastWrite time.Time
	lastErr   error
	kick      chan struct{}
}

func newPersister(path string, key crdt.PrivateKey, store *mesh.Store, log *slog.Logger) *persister {
	p := &persister{path: path, key: key, store: store, log: log, minGap: time.Second, gapFloor: time.Second, kick: make(chan struct{}, 1)}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// changed records that the state changed.
func (p *persister) changed() {
	p.mu.Lock()
	p.dirty++
	p.mu.Unlock()
	p.poke()
}

func (p *persister) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// wait blocks until every change made so far is on disk.
func (p *persister) wait(ctx context.Context) error {
	p.mu.Lock()
	target := p.dirty
	p.waiting++
	p.mu.Unlock()
	p.poke()
	defer func() { p.mu.Lock(); p.waiting--; p.mu.Unlock() }()
	done := make(chan struct{})
	go func() {
		p.mu.Lock()
		for p.written < target && ctx.Err() == nil {
			p.cond.Wait()
		}
		p.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		p.cond.Broadcast()
		return ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.written < target {
		return p.lastErr
	}
	return nil
}

// run writes until ctx ends, then writes once more.
func (p *persister) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			p.flush()
			return
		case <-p.kick:
		}
		// Until the gap has passed, only a waiter makes it write: a kick
		// is a waiter or just another change, so look again. (The first
		// change during the gap used to end it: a peer bootstrapping
		// 100,000 hosts rewrote its growing state file every second, 52
		// MB at the end, a third of its CPU.)
		for {
			p.mu.Lock()
			gap := p.minGap - time.Since(p.lastWrite)
			urgent := p.waiting > 0
			p.mu.Unlock()
			if gap <= 0 || urgent {
				break
			}
			select {
			case <-ctx.Done():
				p.flush()
				return
			case <-time.After(gap):
			case <-p.kick:
			}
		}
		p.flush()
	}
}

func (p *persister) flush() {
	p.mu.Lock()
	target := p.dirty
	if target == p.written {
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	var parts []iter.Seq[crdt.Verified]
	p.store.Read(func(st *crdt.State) {
		for _, id := range st.Joined() {
			parts = append(parts, snapshotEntries(st.Snapshot(id)))
		}
	})
	counter := &countingWriter{}
	err := WriteFileAtomicFunc(p.path, 0o600, func(w io.Writer) error {
		return writeState(io.MultiWriter(w, counter), p.key, parts...)
	})
	p.mu.Lock()
	// Unacknowledged changes of a large state are written less often: one
	// second per MiB, so a busy 10,000-host mesh does not rewrite 5 MiB
	// every second. Acknowledged writes never wait for this.
	p.minGap = max(p.gapFloor, time.Duration(counter.n>>20)*time.Second)
	p.lastWrite = time.Now()
	p.lastErr = err
	if err == nil {
		p.writes.Add(1)
		p.written = target
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	if err != nil {
		p.log.Error("could not write the state file; will retry", "path", p.path, "err", err)
		go func() { time.Sleep(time.Second); p.poke() }()
	}
}

// loadState restores the state file into st. A missing file is a first
// start; a corrupt one is moved aside, and what it still holds is verified
// like records from the network.
func loadState(path string, key crdt.PrivateKey, newState func() *crdt.State, now time.Time, log *slog.Logger) (st *crdt.State, restored int, err error) {
	// Temporary files of writes a crash interrupted (never the state).
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*.tmp-*"))
	for _, f := range stale {
		_ = os.Remove(f)
	}
	st = newState()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		log.Info("no state file yet; starting empty", "path", path)
		return st, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading the state file: %w", err)
	}
	// Restored while the rest is read and decoded (at 100,000 hosts the
	// two take 0.3 and 0.5 s), in batches that go back to be filled again.
	// Into a state thrown away if the MAC then fails, or if the entries
	// were not in the order a Restorer takes: then the file is read again,
	// whole (the rare path: a file this agent did not write, or a corrupt
	// one).
	parts, free := make(chan []crdt.Verified, 8), make(chan []crdt.Verified, 16)
	done := make(chan error, 1)
	go func() {
		_, _, err := readState(f, key, func(b []crdt.Verified) []crdt.Verified {
			parts <- b
			select {
			case b := <-free:
				return b
			default:
				return nil
			}
		})
		close(parts)
		done <- err
	}()
	rs := st.NewRestorer(now)
	ordered := true
	for b := range parts {
		ordered = ordered && rs.Add(b)
		select {
		case free <- b:
		default:
		}
	}
	err = <-done
	f.Close()
	if err != nil && !errors.Is(err, ErrStateCorrupt) {
		return nil, 0, fmt.Errorf("reading the state file: %w", err)
	}
	if err == nil && ordered {
		return st, rs.Done().Added, nil
	}
	st = newState()
	f, err = os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the state file: %w", err)
	}
	entries, salvaged, err := ReadState(f, key)
	f.Close()
	if err != nil && !errors.Is(err, ErrStateCorrupt) {
		return nil, 0, fmt.Errorf("reading the state file: %w", err)
	}
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%d", path, now.Unix())
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, 0, fmt.Errorf("state file %s is corrupt (%v) and could not be moved aside: %w", path, err, rerr)
		}
		res := st.IngestAll(salvaged, now)
		log.Warn("state file was corrupt; moved aside, salvaged what verifies, the rest comes from peers",
			"path", path, "moved_to", aside, "err", err, "salvaged", res.Added, "refused", len(res.Rejected))
		return st, res.Added, nil
	}
	return st, st.Restore(entries, now).Added, nil
}

// countingWriter counts what is written through it.
type countingWriter struct{ n int }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// minRecordFrame is about the least a record takes in the state file
// (hosts, claims and attestations take 140 to 175 bytes): a capacity
// hint, never a limit.
const minRecordFrame = 120

// sizeHint is how many items of at least per bytes r holds if it is a file
// (so a slice of them is allocated once), at most limit; 0 if unknown.
func sizeHint(r io.Reader, per, limit int) int {
	f, ok := r.(interface{ Stat() (os.FileInfo, error) })
	if !ok {
		return 0
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() <= 0 {
		return 0
	}
	return int(min(fi.Size()/int64(per), int64(limit)))
}
