package mesh

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// The peer clock: GET PathTime answers this node's time (RFC 3339 with
// nanoseconds), so that doctor can tell an operator whose clock is off
// before records dated from the future are refused.

func (n *Node) serveTime(w http.ResponseWriter, _ *http.Request) {
	_, _ = w.Write([]byte(n.store.Now().UTC().Format(time.RFC3339Nano)))
}

// Skew is one member's clock against this node's.
type Skew struct {
	Member Member
	// Offset is their clock minus ours, corrected by half the round trip.
	Offset time.Duration
	Err    error
}

// MeasureSkew asks up to k members for their clock, one after the other.
func (n *Node) MeasureSkew(ctx context.Context, k int) []Skew {
	ms := n.Members()
	if len(ms) > k {
		ms = ms[:k]
	}
	out := make([]Skew, 0, len(ms))
	for _, m := range ms {
		s := Skew{Member: m}
		start := time.Now()
		body, err := n.get(ctx, n.peerURL(m, PathTime), 100)
		rtt := time.Since(start)
		if err == nil {
			var theirs time.Time
			theirs, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(body)))
			s.Offset = theirs.Sub(start.Add(rtt / 2))
		}
		s.Err = err
		out = append(out, s)
	}
	return out
}
