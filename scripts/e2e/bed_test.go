//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var (
	repo    string
	testbed string
)

func init() {
	_, file, _, _ := runtime.Caller(0)
	repo = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	testbed = filepath.Join(repo, "scripts", "testbed")
}

func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("DM_E2E") != "1" {
		t.Skip("end-to-end tests run with DM_E2E=1 (as root)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("DM_E2E=1 but not root: the test bed needs network namespaces")
	}
}

// Bed is a running test bed.
type Bed struct {
	t      testing.TB
	Dir    string
	N      int
	Prefix string
}

// Up builds n nodes; they are torn down, and checked to leave nothing, when
// the test ends.
func Up(t testing.TB, n int, extra ...string) *Bed {
	t.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("dm-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()))
	b := &Bed{t: t, Dir: dir, N: n}
	start := time.Now()
	out, err := exec.Command(testbed, append([]string{"up", dir, fmt.Sprint(n)}, extra...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("testbed up: %v\n%s", err, out)
	}
	env, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "PREFIX="); ok {
			b.Prefix = v
		}
	}
	t.Logf("test bed of %d nodes up in %v (%s)", n, time.Since(start).Round(time.Millisecond), b.Prefix)
	t.Cleanup(func() {
		if out, err := exec.Command(testbed, "down", dir).CombinedOutput(); err != nil {
			t.Errorf("testbed down: %v\n%s", err, out)
		}
		if out, err := exec.Command(testbed, "check", dir, b.Prefix).CombinedOutput(); err != nil {
			t.Errorf("the test bed left things behind:\n%s", out)
		}
	})
	return b
}

// Tunnel is node i's tunnel address.
func Tunnel(i int) string { return fmt.Sprintf("fd6d:6573::%x", i) }

// Exec runs a command in node i and returns its combined output.
func (b *Bed) Exec(i int, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(testbed, append([]string{"exec", b.Dir, fmt.Sprint(i)}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// MustExec is Exec that fails the test on error.
func (b *Bed) MustExec(i int, args ...string) string {
	b.t.Helper()
	out, err := b.Exec(i, args...)
	if err != nil {
		b.t.Fatalf("node %d: %s: %v\n%s", i, strings.Join(args, " "), err, out)
	}
	return out
}

// Start runs a command in node i in the background; its output goes to
// Log(i, name).
func (b *Bed) Start(i int, name string, args ...string) {
	b.t.Helper()
	out, err := exec.Command(testbed, append([]string{"start", b.Dir, fmt.Sprint(i), name}, args...)...).CombinedOutput()
	if err != nil {
		b.t.Fatalf("starting %s on node %d: %v\n%s", name, i, err, out)
	}
}

// Stop stops a background command with signal sig ("TERM", "KILL").
func (b *Bed) Stop(i int, name, sig string) {
	b.t.Helper()
	if out, err := exec.Command(testbed, "stop", b.Dir, fmt.Sprint(i), name, sig).CombinedOutput(); err != nil {
		b.t.Fatalf("stopping %s on node %d: %v\n%s", name, i, err, out)
	}
}

// Log returns what a background command wrote.
func (b *Bed) Log(i int, name string) string {
	out, _ := os.ReadFile(filepath.Join(b.Dir, fmt.Sprint(i), name+".log"))
	return string(out)
}

// Testbed runs a testbed subcommand on this bed.
func (b *Bed) Testbed(args ...string) {
	b.t.Helper()
	full := append([]string{args[0], b.Dir}, args[1:]...)
	if out, err := exec.Command(testbed, full...).CombinedOutput(); err != nil {
		b.t.Fatalf("testbed %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := 10 * time.Millisecond; !cond(); wait = min(2*wait, 500*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(wait)
	}
}

// build compiles a command of this repository into dir.
func build(t testing.TB, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, "./"+pkg)
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// waitOn waits until check holds on every listed node; on a timeout it
// fails, naming the nodes behind, each with what report says of it.
func waitOn(t *testing.T, timeout time.Duration, what string, nodes []int, check func(i int) bool, report func(i int) string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		var behind []int
		for _, i := range nodes {
			if !check(i) {
				behind = append(behind, i)
			}
		}
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, i := range behind {
				fmt.Fprintf(&b, "\n--- node %d ---\n%s", i, report(i))
			}
			t.Fatalf("timed out after %v waiting for %s; behind: %v%s", timeout, what, behind, b.String())
		}
		time.Sleep(wait)
	}
}

// tail is the last n bytes of s.
func tail(s string, n int) string { return s[max(0, len(s)-n):] }
