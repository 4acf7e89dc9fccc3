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

// verdictLoop saves the verdicts when they change (at most every 30 s) and
// when the agent stops.
func (a *Agent) verdictLoop(ctx context.Context) {
	save := func() {
		b, err := json.Marshal(a.prober.Passed())
		if err == nil {
			err = WriteFileAtomic(a.verdictPath(), b, 0o600)
		}
		if err != nil {
			a.log.Warn("saving reachability verdicts", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			save()
			return
		case <-a.verdictKick:
		}
		save()
		select {
		case <-ctx.Done():
			save()
			return
		case <-time.After(30 * time.Second):
		}
	}
}
