package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/data-mesher/data-mesher/control"
	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/wg"
)

// Status is a check's verdict.
type Status string

// The verdicts, best first.
const (
	OK   Status = "ok"
	Skip Status = "skip"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is one line of doctor's table.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Remedy string `json:"remedy,omitempty"`
}

// Check is one named check: it reads what was gathered about the node and
// gives a verdict, and for anything but ok a remedy a person can act on.
type Check struct {
	Name string
	Run  func(*Node) Verdict
}

// Verdict is what a check says.
type Verdict struct {
	Status         Status
	Detail, Remedy string
}

func ok(format string, args ...any) Verdict {
	return Verdict{Status: OK, Detail: fmt.Sprintf(format, args...)}
}
func skip(detail string) Verdict { return Verdict{Status: Skip, Detail: detail} }

// Node is what the checks look at, gathered once before they run: the
// configuration, the key, the interface and the running agent's facts.
// The checks only read it.
type Node struct {
	Env    Env
	Config *agent.Config
	// KeyFileErr is what is wrong with the key file (missing, readable by
	// others); KeyErr why a file that passed could not be read as a key.
	KeyFileErr, KeyErr error
	Key                crdt.PrivateKey
	Iface              *wg.Interface
	// IfaceErr is why the interface could not be read (fully, when Iface
	// is set too: e.g. not a WireGuard device).
	IfaceErr error
	Facts    *control.Facts
	FactsErr error
}

// Run gathers what the checks need (the interface and the agent's facts in
// parallel), then runs every check of Checks in parallel, and returns the
// table in the order of Checks.
func Run(env Env) []Result {
	n := &Node{Env: env}
	cfg, err := env.Config()
	if err != nil {
		remedy := "fix the named field in " + env.ConfigPath + " (see `dm-agent run --help` for every setting)"
		if errors.Is(err, fs.ErrNotExist) {
			remedy = "write it (the NixOS module does; `dm-agent run --help` lists every setting), or point --config or $DM_CONFIG at the right file"
		}
		out := []Result{{Name: "config", Status: Fail, Detail: err.Error(), Remedy: remedy}}
		for _, c := range Checks[1:] {
			out = append(out, Result{Name: c.Name, Status: Skip, Detail: "needs a valid configuration"})
		}
		return out
	}
	n.Config = cfg
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); n.Iface, n.IfaceErr = env.Interface(cfg.Interface) }()
	go func() { defer wg.Done(); n.Facts, n.FactsErr = env.Facts(cfg.ControlSocket) }()
	go func() {
		defer wg.Done()
		if n.KeyFileErr = env.CheckKey(cfg.KeyPath()); n.KeyFileErr == nil {
			n.Key, n.KeyErr = env.LoadKey(cfg.KeyPath())
		}
	}()
	wg.Wait()
	out := make([]Result, len(Checks))
	for i, c := range Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := c.Run(n)
			out[i] = Result{Name: c.Name, Status: v.Status, Detail: v.Detail, Remedy: v.Remedy}
		}()
	}
	wg.Wait()
	return out
}

// Failed reports whether any check failed.
func Failed(results []Result) bool {
	return slices.ContainsFunc(results, func(r Result) bool { return r.Status == Fail })
}

// Write prints the table for people, or JSON for programs.
func Write(w io.Writer, results []Result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, r := range results {
		// A detail of several lines keeps to its column.
		lines := strings.Split(r.Detail, "\n")
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, strings.ToUpper(string(r.Status)), lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(tw, "\t\t%s\n", l)
		}
		if r.Remedy != "" && (r.Status == Fail || r.Status == Warn) {
			fmt.Fprintf(tw, "\t\t→ %s\n", r.Remedy)
		}
	}
	return tw.Flush()
}
