//go:build linux

package dnsserver

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

func needCPUs(t *testing.T) {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Skip("sched_getaffinity:", err)
	}
	if set.Count() < 2 {
		t.Skip("binding to one CPU needs two to choose from")
	}
}

// The binding holds between steps, is lifted once a second, and returns
// at the next step: on the CPU the thread then runs on.
func TestCPUBindingLiftsOnceASecond(t *testing.T) {
	needCPUs(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		allowed := func() int {
			var set unix.CPUSet
			if err := unix.SchedGetaffinity(0, &set); err != nil {
				t.Error(err)
			}
			return set.Count()
		}
		var b cpuBinding
		t0 := time.Now()
		steps := []struct {
			at   time.Duration
			want int // CPUs allowed after the step; 0: more than one
		}{
			{0, 1}, {500 * time.Millisecond, 1}, {999 * time.Millisecond, 1},
			{1001 * time.Millisecond, 0}, {1002 * time.Millisecond, 1},
			{1500 * time.Millisecond, 1}, {2100 * time.Millisecond, 0}, {2101 * time.Millisecond, 1},
		}
		for _, s := range steps {
			b.step(t0.Add(s.at))
			got := allowed()
			if s.want == 1 && got != 1 || s.want == 0 && got < 2 {
				t.Errorf("after the step at %v: %d CPUs allowed, want %s", s.at, got, map[int]string{0: "more than one", 1: "one"}[s.want])
			}
			if (got == 1) != b.bound {
				t.Errorf("after the step at %v: bound %v with %d CPUs allowed", s.at, b.bound, got)
			}
		}
		b.release()
		if got := allowed(); got < 2 || b.bound {
			t.Errorf("released: %d CPUs allowed, bound %v", got, b.bound)
		}
	}()
	<-done
}

// boundThreads counts this process's threads allowed on one CPU only.
func boundThreads(t *testing.T) int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok && !strings.ContainsAny(strings.TrimSpace(v), ",-") {
				n++
			}
		}
	}
	return n
}

// The fast path's loop binds its thread once it has answered, and the
// thread ends with the server: no goroutine is left on a bound thread.
func TestFastPathBindsItsThreadAndEndsIt(t *testing.T) {
	needCPUs(t)
	if n := boundThreads(t); n != 0 {
		t.Fatalf("%d threads bound before the server started", n)
	}
	s, addr := startServer(t, false)
	if m := exchange(t, "udp", addr, "mors.nether.", dns.TypeAAAA, false); len(m.Answer) != 1 {
		t.Fatalf("answer: %v", m)
	}
	if s.FastAnswers() == 0 {
		t.Fatal("the fast path did not answer")
	}
	eventually(t, 5*time.Second, "one thread bound to a CPU", func() bool { return boundThreads(t) == 1 })
	s.Stop()
	eventually(t, 5*time.Second, "the bound thread ended with the server", func() bool { return boundThreads(t) == 0 })
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(timeout); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
