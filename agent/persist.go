package agent

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
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

// EncodeState writes entries as a state file.
func EncodeState(entries []crdt.Verified, key crdt.PrivateKey) []byte {
	size := len(stateMagic) + 32
	for _, e := range entries {
		size += len(e.Record.Bytes()) + 5 + 41
	}
	b := append(make([]byte, 0, size), stateMagic...)
	for _, e := range entries {
		raw := e.Record.Bytes()
		b = binary.AppendUvarint(b, uint64(len(raw)))
		b = append(b, raw...)
		if e.Record.Kind() == crdt.KindAttestation {
			b = binary.BigEndian.AppendUint64(b, uint64(e.Attested.Time.UnixNano()))
			b = append(b, byte(e.Attested.By.Kind))
			b = append(b, e.Attested.By.ID[:]...)
		}
	}
	m := hmac.New(sha256.New, stateMACKey(key))
	m.Write(b)
	return m.Sum(b)
}

// ErrStateCorrupt is wrapped when a state file fails its MAC or does not
// parse.
var ErrStateCorrupt = errors.New("state file is corrupt or not this node's")

// DecodeState reads a state file. With a good MAC it returns the entries
// and trusted = true. Otherwise it returns ErrStateCorrupt and, salvaged,
// the records it could still parse (to be verified like any others).
func DecodeState(b []byte, key crdt.PrivateKey) (entries []crdt.Verified, salvaged []*crdt.Record, err error) {
	body, mac, macOK := b, []byte(nil), false
	if len(b) >= len(stateMagic)+sha256.Size {
		body, mac = b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
		m := hmac.New(sha256.New, stateMACKey(key))
		m.Write(body)
		macOK = hmac.Equal(m.Sum(nil), mac)
	}
	if !bytes.HasPrefix(body, []byte(stateMagic)) {
		return nil, nil, fmt.Errorf("%w: not a data-mesher state file", ErrStateCorrupt)
	}
	if !macOK {
		body = b // salvage from everything, the MAC may be what is missing
	}
	p := body[len(stateMagic):]
	for len(p) > 0 {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) || n > crdt.MaxRecordSize {
			break
		}
		rec, derr := crdt.DecodeRecord(p[k : k+int(n)])
		p = p[k+int(n):]
		if derr != nil {
			if macOK {
				return nil, nil, fmt.Errorf("%w: %v", ErrStateCorrupt, derr)
			}
			continue
		}
		e := crdt.Verified{Record: rec}
		if rec.Kind() == crdt.KindAttestation {
			if len(p) < 8+1+32 {
				break
			}
			e.Attested.Time = time.Unix(0, int64(binary.BigEndian.Uint64(p))).UTC()
			e.Attested.By.Kind = crdt.AttestorKind(p[8])
			copy(e.Attested.By.ID[:], p[9:41])
			p = p[41:]
		}
		entries = append(entries, e)
	}
	if !macOK {
		for _, e := range entries {
			salvaged = append(salvaged, e.Record)
		}
		return nil, salvaged, fmt.Errorf("%w: the MAC does not match", ErrStateCorrupt)
	}
	return entries, nil, nil
}

// persister writes the state file after changes, coalescing bursts, and
// lets callers wait until a change is on disk (group commit).
type persister struct {
	path  string
	key   crdt.PrivateKey
	store *mesh.Store
	log   *slog.Logger
	// minGap spaces out writes that nobody waits for.
	minGap time.Duration

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
	p := &persister{path: path, key: key, store: store, log: log, minGap: time.Second, kick: make(chan struct{}, 1)}
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
		p.mu.Lock()
		gap := p.minGap - time.Since(p.lastWrite)
		urgent := p.waiting > 0
		p.mu.Unlock()
		if gap > 0 && !urgent {
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
	var entries []crdt.Verified
	p.store.Read(func(st *crdt.State) {
		for _, id := range st.Joined() {
			entries = append(entries, st.Verified(id)...)
		}
	})
	data := EncodeState(entries, p.key)
	err := WriteFileAtomic(p.path, data, 0o600)
	p.mu.Lock()
	// Unacknowledged changes of a large state are written less often: one
	// second per MiB, so a busy 10,000-host mesh does not rewrite 5 MiB
	// every second. Acknowledged writes never wait for this.
	p.minGap = max(time.Second, time.Duration(len(data)>>20)*time.Second)
	p.lastWrite = time.Now()
	p.lastErr = err
	if err == nil {
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
func loadState(path string, key crdt.PrivateKey, st *crdt.State, now time.Time, log *slog.Logger) (restored int, err error) {
	// Temporary files of writes a crash interrupted (never the state).
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*.tmp-*"))
	for _, f := range stale {
		_ = os.Remove(f)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		log.Info("no state file yet; starting empty", "path", path)
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the state file: %w", err)
	}
	entries, salvaged, err := DecodeState(b, key)
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%d", path, now.Unix())
		if rerr := os.Rename(path, aside); rerr != nil {
			return 0, fmt.Errorf("state file %s is corrupt (%v) and could not be moved aside: %w", path, err, rerr)
		}
		res := st.IngestAll(salvaged, now)
		log.Warn("state file was corrupt; moved aside, salvaged what verifies, the rest comes from peers",
			"path", path, "moved_to", aside, "err", err, "salvaged", res.Added, "refused", len(res.Rejected))
		return res.Added, nil
	}
	res := st.Restore(entries, now)
	return res.Added, nil
}
