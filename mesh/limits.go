package mesh

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// peerLimits keeps misbehaving or noisy peers from costing this node more
// than a bounded share: a token bucket of requests per peer address, and a
// penalty box for peers that sent records failing verification (a forged or
// tampered record is never an accident of an honest node).
type peerLimits struct {
	mu       sync.Mutex
	peers    map[netip.Addr]*peerState
	rate     rate.Limit
	burst    int
	strikes  int           // bad records in one exchange before the penalty
	penalty  time.Duration // how long a penalized peer is ignored
	maxPeers int
}

type peerState struct {
	lim      *rate.Limiter
	seen     time.Time
	badUntil time.Time
}

func newPeerLimits(perSecond float64, burst, strikes int, penalty time.Duration) *peerLimits {
	return &peerLimits{peers: map[netip.Addr]*peerState{}, rate: rate.Limit(perSecond), burst: burst,
		strikes: strikes, penalty: penalty, maxPeers: 8192}
}

func (l *peerLimits) state(a netip.Addr, now time.Time) *peerState {
	p := l.peers[a]
	if p == nil {
		if len(l.peers) >= l.maxPeers {
			for k, v := range l.peers {
				if now.Sub(v.seen) > 10*time.Minute && now.After(v.badUntil) {
					delete(l.peers, k)
				}
			}
		}
		p = &peerState{lim: rate.NewLimiter(l.rate, l.burst)}
		l.peers[a] = p
	}
	p.seen = now
	return p
}

// allow reports whether a request from a may be served now, and if not,
// why.
func (l *peerLimits) allow(a netip.Addr, now time.Time) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.state(a, now)
	if now.Before(p.badUntil) {
		return false, "penalized for sending invalid records"
	}
	if !p.lim.AllowN(now, 1) {
		return false, "rate limited"
	}
	return true, ""
}

// penalized reports whether a is in the penalty box (the sync loop skips
// such peers too).
func (l *peerLimits) penalized(a netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[a]
	return p != nil && now.Before(p.badUntil)
}

// bad records that a sent n records that failed verification; past the
// threshold the peer is ignored for the penalty time. It reports whether
// the peer was penalized.
func (l *peerLimits) bad(a netip.Addr, n int, now time.Time) bool {
	if n < l.strikes {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state(a, now).badUntil = now.Add(l.penalty)
	return true
}
