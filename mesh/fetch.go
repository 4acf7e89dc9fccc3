package mesh

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Fetching announced records. A record too large for a gossip packet is
// announced ('H': network, hash, announcer) by every node that ingests it,
// and fetched over HTTP from an announcer. A fetch that fails (the
// announcer is busy, not a member yet, or gone) is retried with back-off,
// from the next node that announced the record, so that gossip alone
// delivers it on a loaded machine; anti-entropy is the last resort, not
// the first.
const (
	// fetchFirstRetry is the first wait after a failed fetch; it doubles
	// up to fetchMaxRetry.
	fetchFirstRetry = 250 * time.Millisecond
	fetchMaxRetry   = 8 * time.Second
	// fetchGiveUp: after this many failed attempts the record is left to
	// anti-entropy (about a minute of trying).
	fetchGiveUp = 12
	// fetchMaxJobs bounds the records waiting to be fetched: announcements
	// of records nobody serves must not grow memory.
	fetchMaxJobs = 4096
	// fetchWorkers bounds the fetches in flight.
	fetchWorkers = 4
)

type fetchJob struct {
	network crdt.PublicKey
	hash    crdt.Hash
	from    []string // the announcers' node names, in order of announcement
	tries   int
	next    time.Time
	busy    bool
}

// fetcher keeps the records announced and not yet held, and fetches them.
type fetcher struct {
	mu   sync.Mutex
	jobs map[crdt.Hash]*fetchJob
	kick chan struct{}
}

func newFetcher() *fetcher {
	return &fetcher{jobs: map[crdt.Hash]*fetchJob{}, kick: make(chan struct{}, 1)}
}

// announced records that announcer has the record (network, h).
func (n *Node) announced(network crdt.PublicKey, h crdt.Hash, announcer string) {
	held := false
	n.store.Read(func(st *crdt.State) { held = st.Lookup(network, h) != nil })
	if held {
		return
	}
	f := n.fetch
	f.mu.Lock()
	j := f.jobs[h]
	switch {
	case j == nil && len(f.jobs) >= fetchMaxJobs:
		f.mu.Unlock()
		return // anti-entropy will bring it
	case j == nil:
		j = &fetchJob{network: network, hash: h}
		f.jobs[h] = j
	}
	if !containsString(j.from, announcer) && len(j.from) < 16 {
		j.from = append(j.from, announcer)
	}
	f.mu.Unlock()
	f.wake()
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fetchLoop starts the fetches that are due, fetchWorkers at a time.
func (n *Node) fetchLoop(ctx context.Context) {
	defer n.wg.Done()
	f := n.fetch
	slots := make(chan struct{}, fetchWorkers)
	var workers sync.WaitGroup
	defer workers.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		next := now.Add(time.Hour)
		var due []*fetchJob
		f.mu.Lock()
		for _, j := range f.jobs {
			switch {
			case j.busy:
			case !j.next.After(now):
				due = append(due, j)
			case j.next.Before(next):
				next = j.next
			}
		}
		for _, j := range due {
			j.busy = true
		}
		f.mu.Unlock()
		for _, j := range due {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			workers.Add(1)
			go func() {
				defer workers.Done()
				defer func() { <-slots }()
				n.fetchOne(ctx, j)
			}()
		}
		timer.Reset(max(time.Until(next), time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-timer.C:
		}
	}
}

// fetchOne tries one announcer of j and reschedules j if that failed.
func (n *Node) fetchOne(ctx context.Context, j *fetchJob) {
	f := n.fetch
	f.mu.Lock()
	announcer := j.from[j.tries%len(j.from)]
	f.mu.Unlock()
	err := n.fetchFrom(ctx, j.network, j.hash, announcer)
	f.mu.Lock()
	defer f.mu.Unlock()
	j.busy = false
	if err == nil {
		delete(f.jobs, j.hash)
		return
	}
	j.tries++
	wait, retry := FetchRetry(j.tries)
	if !retry || ctx.Err() != nil {
		delete(f.jobs, j.hash)
		n.log.Debug("giving up fetching an announced record; anti-entropy will bring it", "hash", j.hash.Short(), "err", err)
		return
	}
	j.next = time.Now().Add(wait)
	n.log.Debug("fetching an announced record failed; retrying", "hash", j.hash.Short(), "from", announcer, "err", err, "retry_in", time.Until(j.next).Round(time.Millisecond))
	// The loop set its timer while j was busy, without j's next attempt:
	// wake it to take it into account.
	f.wake()
}

// wake makes fetchLoop look at the jobs again.
func (f *fetcher) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// fetchFrom gets the record (network, h) from the member named announcer
// and ingests it (which forwards it).
func (n *Node) fetchFrom(ctx context.Context, network crdt.PublicKey, h crdt.Hash, announcer string) error {
	held := false
	n.store.Read(func(st *crdt.State) { held = st.Lookup(network, h) != nil })
	if held {
		return nil // anti-entropy or another fetch was faster
	}
	from, ok := n.member(announcer)
	if !ok {
		return fmt.Errorf("%s is not a live member", announcer)
	}
	n.stats.Fetches.Add(1)
	raw, err := n.get(ctx, n.peerURL(from, recordPath(network, h)), crdt.MaxRecordSize)
	if err != nil {
		return err
	}
	if sha256.Sum256(raw) != h {
		return fmt.Errorf("%s answered with another record than %s", from.Addr, h.Short())
	}
	n.ingestAndForward([][]byte{raw}, from.Addr.String())
	return nil
}
