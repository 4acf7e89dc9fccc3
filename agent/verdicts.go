package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/data-mesher/data-mesher/wg"
)

func (a *Agent) verdictPath() string { return filepath.Join(a.cfg.StateDir, "reachability.json") }

// loadVerdicts reads the saved reachability verdicts; a missing or damaged
// file means none (they are only an optimization of start-up).
func loadVerdicts(path string, log *slog.Logger) []wg.Verdict {
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("reading saved reachability verdicts", "err", err)
		}
		return nil
	}
	var vs []wg.Verdict
	if err := json.Unmarshal(b, &vs); err != nil {
		log.Warn("saved reachability verdicts are damaged; checking every host again", "path", path, "err", err)
		return nil
	}
	return vs
}

// verdictLoop saves the verdicts every quarter of their TTL (between 5 s
// and 2 min) when checks completed since the last save, sooner when one
// changed, and when the agent stops. Renewals change no verdict but make
// it younger: without saving them, the file would age past the TTL and a
// restarted node would restore nothing.
func (a *Agent) verdictLoop(ctx context.Context) {
	every := min(max(time.Duration(a.cfg.ReachabilityTTL)/4, 5*time.Second), 2*time.Minute)
	var saved uint64
	save := func() {
		n := a.prober.Checks()
		if n == saved {
			return
		}
		b, err := json.Marshal(a.prober.Passed())
		if err == nil {
			err = WriteFileAtomic(a.verdictPath(), b, 0o600)
		}
		if err != nil {
			a.log.Warn("saving reachability verdicts", "err", err)
			return
		}
		saved = n
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			save()
			return
		case <-a.verdictKick:
		case <-t.C:
		}
		save()
	}
}
