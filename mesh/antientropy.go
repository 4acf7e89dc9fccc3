package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Anti-entropy over HTTP: every SyncInterval a node runs a round with a
// random peer, POSTing the requests of an Asker (reconcile.go) to the
// peer's PathSync, which answers them with Answer. A round in step is one
// small request answered 204 No Content.

// RoundsInFlight bounds the anti-entropy rounds a node runs at once. A
// round with a peer that crashed and is not yet suspected waits for
// RequestTimeout; with one round at a time, a node then ran no rounds at
// all meanwhile. So rounds run side by side, never two with one peer, and
// a peer whose round failed is left alone for FailedPeerPause or until
// memberlist reports it again, unless no other peer is left. The
// simulator measured it (1,000 nodes, 10% of them crashed, TestScale's
// timeouts, seeds 1-3): a claim took 35.1, 24.5 and 24.4 s to reach 99% of
// the nodes with one round at a time, 15.4, 12.0 and 16.0 s so.
const RoundsInFlight = 3

// FailedPeerPause is how long a peer whose anti-entropy round failed is
// not picked for another while other peers are there to pick.
const FailedPeerPause = time.Minute

// roundPeers knows the peers of the rounds in flight and those whose last
// round failed.
type roundPeers struct {
	mu     sync.Mutex
	busy   map[netip.Addr]bool
	failed map[netip.Addr]time.Time
}

// busyWith reports whether a round with a is in flight.
func (r *roundPeers) busyWith(a netip.Addr, _ time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy[a]
}

// failedRecently reports whether the last round with a failed less than
// FailedPeerPause ago.
func (r *roundPeers) failedRecently(a netip.Addr, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, failed := r.failed[a]
	return failed && now.Sub(at) < FailedPeerPause
}

func (r *roundPeers) start(a netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy == nil {
		r.busy = map[netip.Addr]bool{}
	}
	r.busy[a] = true
}

// end records how the round with a ended.
func (r *roundPeers) end(a netip.Addr, failed bool, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.busy, a)
	switch {
	case !failed:
		delete(r.failed, a)
	case r.failed == nil || len(r.failed) > 8192:
		r.failed = map[netip.Addr]time.Time{a: now}
	default:
		r.failed[a] = now
	}
}

// forget clears what is known of a's last round.
func (r *roundPeers) forget(a netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failed, a)
}

// syncLoop starts a round with a random peer every SyncInterval, and at
// once when kicked (a member joined, a seed answered), unless
// RoundsInFlight rounds are still running.
func (n *Node) syncLoop(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.SyncInterval)
	defer t.Stop()
	slots := make(chan struct{}, RoundsInFlight)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		}
		select {
		case slots <- struct{}{}:
		default:
			continue // all slots taken by rounds waiting on silent peers
		}
		peer, ok := n.randomPeer(n.rounds.busyWith, n.rounds.failedRecently)
		if !ok {
			<-slots
			continue
		}
		n.rounds.start(peer.Addr)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer func() { <-slots }()
			_, err := n.SyncWith(ctx, peer)
			n.rounds.end(peer.Addr, err != nil && ctx.Err() == nil, time.Now())
			if err != nil && ctx.Err() == nil {
				n.stats.SyncFailures.Add(1)
				n.log.Debug("anti-entropy round failed", "peer", peer.Addr, "err", err)
			}
		}()
	}
}

// oldPeers remembers the peers that refused version 2 (older nodes), so
// that rounds with them start in version 1; an entry expires, so that an
// upgraded peer is tried again.
type oldPeers struct {
	mu    sync.Mutex
	until map[netip.Addr]time.Time
}

const oldPeerMemory = 10 * time.Minute

func (o *oldPeers) is(a netip.Addr, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return now.Before(o.until[a])
}

func (o *oldPeers) mark(a netip.Addr, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.until == nil || len(o.until) > 8192 {
		o.until = map[netip.Addr]time.Time{}
	}
	o.until[a] = now.Add(oldPeerMemory)
}

// SyncWith runs one anti-entropy round with peer: it pulls what the peer
// has and this node lacks, and pushes what the peer lacks.
func (n *Node) SyncWith(ctx context.Context, peer Member) (SyncResult, error) {
	n.stats.SyncRounds.Add(1)
	u := n.peerURL(peer, PathSync)
	opts := AskOptions{Version: n.wireVersion, OnPulled: func(got crdt.BatchResult) {
		n.stats.SyncRecords.Add(int64(got.Added))
		if bad := n.logRejected(got, peer.Addr.String()); n.limits.bad(peer.Addr, bad, time.Now()) {
			n.stats.PeersPenalized.Add(1)
			n.log.Warn("peer sent invalid records; ignoring it for a while", "peer", peer.Addr, "invalid", bad)
		}
	}}
	if n.old.is(peer.Addr, time.Now()) {
		opts.Version = 1
	}
	a := NewAsker(n.store, opts)
	for req := a.Start(); req != nil; {
		ans, err := n.exchange(ctx, u, req)
		var se *statusError
		if errors.As(err, &se) && se.code == http.StatusBadRequest {
			if req = a.Refused(); req != nil {
				n.old.mark(peer.Addr, time.Now())
				n.log.Debug("peer speaks only version 1 of anti-entropy", "peer", peer.Addr)
				continue
			}
		}
		if err != nil {
			return a.Result(), err
		}
		if req, err = a.Next(ans); err != nil {
			return a.Result(), fmt.Errorf("POST %s: %w", u, err)
		}
	}
	n.markSynced()
	return a.Result(), nil
}

type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func (n *Node) exchange(ctx context.Context, u string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", syncContentType)
	resp, err := n.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, n.cfg.MaxBody+1))
	if err != nil {
		return nil, err
	}
	n.stats.SyncBytesOut.Add(int64(len(body)))
	n.stats.SyncBytesIn.Add(int64(len(out)))
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return inStepAnswer, nil
	case resp.StatusCode != http.StatusOK:
		return nil, &statusError{resp.StatusCode, fmt.Sprintf("POST %s: %s: %s", u, resp.Status, bytes.TrimSpace(out[:min(len(out), 200)]))}
	case int64(len(out)) > n.cfg.MaxBody:
		return nil, fmt.Errorf("POST %s: answer larger than %d bytes", u, n.cfg.MaxBody)
	}
	return out, nil
}

const syncContentType = "application/x-data-mesher-sync"

// serveSync answers one request of a peer's round. An answer that says the
// two are in step goes back as 204 No Content, without a body or headers
// to describe it: most rounds are such, and an idle mesh pays for them.
func (n *Node) serveSync(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	addr := remoteAddr(r)
	out, pushed, err := Answer(n.store, body, AnswerOptions{Version: n.wireVersion})
	if err != nil {
		n.log.Debug("bad sync request", "from", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n.stats.SyncRecords.Add(int64(pushed.Added))
	if bad := n.logRejected(pushed, addr.String()); n.limits.bad(addr, bad, time.Now()) {
		n.stats.PeersPenalized.Add(1)
		n.log.Warn("peer pushed invalid records; ignoring it for a while", "peer", addr, "invalid", bad)
	}
	if InStepAnswer(out) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", syncContentType)
	_, _ = w.Write(out)
}
