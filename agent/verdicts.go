package agent

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/data-mesher/data-mesher/mesh"
)

// The reachability verdicts are saved so that a restarted node keeps what
// it verified (within the TTL) instead of dropping every name until it has
// challenged every host again: the loop saves them every quarter of their
// TTL (between 5 s and 2 min) when checks completed since the last save,
// within 5 s of a verdict changing, and when the agent stops. Renewals
// change no verdict but make it younger: without saving them, the file
// would age past the TTL and a restarted node would restore nothing.

func (a *Agent) verdictPath(conf *live) string {
	return filepath.Join(conf.StateDir, "reachability.json")
}

// loadVerdicts reads the saved reachability verdicts; a missing or damaged
// file means none (they are only an optimization of start-up).
func loadVerdicts(path string, log *slog.Logger) []mesh.Verdict {
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("reading saved reachability verdicts", "err", err)
		}
		return nil
	}
	var vs []mesh.Verdict
	if err := json.Unmarshal(b, &vs); err != nil {
		log.Warn("saved reachability verdicts are damaged; checking every host again", "path", path, "err", err)
		return nil
	}
	return vs
}

// saveVerdicts writes the prober's passes if checks completed since the
// save that returned saved; it returns the count now on disk.
func (a *Agent) saveVerdicts(p *mesh.Prober, saved uint64) uint64 {
	n := p.Checks()
	if n == saved {
		return saved
	}
	b, err := json.Marshal(p.Passed())
	if err == nil {
		err = WriteFileAtomic(a.verdictPath(a.conf.Load()), b, 0o600)
	}
	if err != nil {
		a.log.Warn("saving reachability verdicts", "err", err)
		return saved
	}
	return n
}
