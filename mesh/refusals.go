package mesh

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"
)

// refusals counts what this node refused (records failing ingestion,
// members failing admission) by reason, for the metrics, and tells the
// operator: the first refusal of a (source, reason) is logged at once, and
// after that one line per refusalEvery with how many followed, so a peer
// sending a thousand bad records makes a few lines, not a thousand.
// Hostile reasons (a bad signature, a malformed record or proof) are
// warnings; the others, the normal disagreement of a mesh for a moment
// (superseded, expired, from the future, not joined), are info.
type refusals struct {
	log *slog.Logger

	mu      sync.Mutex
	total   map[string]int64
	pending map[refusalKey]*refusalRun
}

// refusalEvery is the least time between two lines for one source and
// reason.
const refusalEvery = 10 * time.Second

// maxRefusalSources bounds the sources tracked; others are pooled.
const maxRefusalSources = 1024

type refusalKey struct{ source, reason string }

type refusalRun struct {
	unlogged int64
	logged   time.Time
	example  string
}

func newRefusals(log *slog.Logger) *refusals {
	return &refusals{log: log, total: map[string]int64{}, pending: map[refusalKey]*refusalRun{}}
}

var hostileReasons = map[string]bool{"bad-signature": true, "malformed": true, "bad-attestation": true, ReasonBadProof: true}

// note counts one refusal and logs it now or later.
func (r *refusals) note(source, reason string, err error) {
	now := time.Now()
	r.mu.Lock()
	r.total[reason]++
	k := refusalKey{source, reason}
	run := r.pending[k]
	if run == nil {
		if len(r.pending) >= maxRefusalSources {
			k.source = "other sources"
			run = r.pending[k]
		}
		if run == nil {
			run = &refusalRun{}
			r.pending[k] = run
		}
	}
	run.unlogged++
	run.example = err.Error()
	logNow := now.Sub(run.logged) >= refusalEvery
	var count int64
	if logNow {
		count, run.unlogged, run.logged = run.unlogged, 0, now
	}
	r.mu.Unlock()
	if logNow {
		r.emit(k, count, err.Error())
	}
}

func (r *refusals) emit(k refusalKey, count int64, example string) {
	level := slog.LevelInfo
	if hostileReasons[k.reason] {
		level = slog.LevelWarn
	}
	r.log.Log(context.Background(), level, "refused", "from", k.source, "reason", k.reason, "count", count, "last", example)
}

// flush logs what was counted and not logged yet, and forgets sources
// quiet for a while.
func (r *refusals) flush() {
	now := time.Now()
	type line struct {
		k       refusalKey
		count   int64
		example string
	}
	var lines []line
	r.mu.Lock()
	for k, run := range r.pending {
		switch {
		case run.unlogged > 0 && now.Sub(run.logged) >= refusalEvery:
			lines = append(lines, line{k, run.unlogged, run.example})
			run.unlogged, run.logged = 0, now
		case run.unlogged == 0 && now.Sub(run.logged) > 10*refusalEvery:
			delete(r.pending, k)
		}
	}
	r.mu.Unlock()
	for _, l := range lines {
		r.emit(l.k, l.count, l.example)
	}
}

// byReason is the count of refusals since start, by reason.
func (r *refusals) byReason() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.total)
}
