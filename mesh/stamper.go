package mesh

import (
	"context"
	"log/slog"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// StampJob is a claim that needs an RFC 3161 token.
type StampJob struct {
	Network crdt.PublicKey
	Claim   crdt.Hash
	URLs    []string    // the network's TSA URLs, in order of preference
	Trust   *crdt.Trust // the network's pinned roots, to check replies
}

// Stamper gets tokens for this node's claims that have none. It looks for
// work on its own schedule and whenever Kick is called, and backs off per
// claim while the authorities fail, so a claim made while every TSA is down
// activates by itself once one is back: no restart, no new claim.
type Stamper struct {
	Client *TSAClient
	// Pending lists the claims that still need a token. It is called from
	// the Stamper's goroutine and must be safe for that.
	Pending func() []StampJob
	// Deliver receives each token as an attestation record, to ingest and
	// spread.
	Deliver func(*crdt.Record)
	// Interval is how often Pending is consulted (default 30 s).
	Interval time.Duration
	// MaxBackoff caps the wait between rounds for one failing claim
	// (default 10 min); the first wait is Interval.
	MaxBackoff time.Duration
	Logger     *slog.Logger

	kick chan struct{}
}

// NewStamper returns a Stamper ready to Run.
func NewStamper(client *TSAClient, pending func() []StampJob, deliver func(*crdt.Record), log *slog.Logger) *Stamper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Stamper{Client: client, Pending: pending, Deliver: deliver, Logger: log, kick: make(chan struct{}, 1)}
}

// Kick asks for a round now (a claim was just made).
func (s *Stamper) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

type backoff struct {
	next time.Time
	wait time.Duration
}

// Run works until ctx ends.
func (s *Stamper) Run(ctx context.Context) {
	interval, maxBackoff := s.Interval, s.MaxBackoff
	if interval <= 0 {
		interval = 30 * time.Second
	}
	if maxBackoff <= 0 {
		maxBackoff = 10 * time.Minute
	}
	failing := map[crdt.Hash]*backoff{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		now := time.Now()
		jobs := s.Pending()
		seen := make(map[crdt.Hash]bool, len(jobs))
		for _, j := range jobs {
			seen[j.Claim] = true
			if b := failing[j.Claim]; b != nil && now.Before(b.next) {
				continue
			}
			start := time.Now()
			tok, url, err := s.Client.Stamp(ctx, j.URLs, j.Claim, j.Trust)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				var rec *crdt.Record
				rec, err = crdt.NewAttestation(crdt.Attestation{Network: j.Network, Claim: j.Claim, RFC3161: tok})
				if err == nil {
					s.Logger.Info("claim timestamped", "claim", j.Claim.Short(), "tsa", url, "took", time.Since(start).Round(time.Millisecond))
					delete(failing, j.Claim)
					s.Deliver(rec)
					continue
				}
			}
			b := failing[j.Claim]
			if b == nil {
				b = &backoff{wait: interval}
				failing[j.Claim] = b
			} else {
				b.wait = min(2*b.wait, maxBackoff)
			}
			b.next = time.Now().Add(b.wait)
			s.Logger.Warn("no timestamp authority answered; the claim stays inactive until one does",
				"claim", j.Claim.Short(), "retry_in", b.wait, "err", err)
		}
		for h := range failing {
			if !seen[h] {
				delete(failing, h)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.kick:
		}
	}
}
