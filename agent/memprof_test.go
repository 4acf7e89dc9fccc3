package agent

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
	"github.com/miekg/dns"
)

// TestProfileStartup is a development aid: an agent whose state file holds
// DM_PROFILE_HOSTS hosts (default 10,000; each with a claim and a witness
// attestation) starts in-process; the time from New to its first DNS
// answer is logged, with a CPU profile of that span (DM_CPUPROFILE=path)
// and a heap profile 5 s later (DM_MEMPROFILE=path).
func TestProfileStartup(t *testing.T) {
	cpuOut, memOut := os.Getenv("DM_CPUPROFILE"), os.Getenv("DM_MEMPROFILE")
	if cpuOut == "" && memOut == "" {
		t.Skip("development aid: set DM_CPUPROFILE or DM_MEMPROFILE")
	}
	if memOut != "" {
		runtime.MemProfileRate = 4096 // sample finely: the figures are per host
	}
	hosts := 10000
	if s := os.Getenv("DM_PROFILE_HOSTS"); s != "" {
		hosts = must(strconv.Atoi(s))
	}
	dir := t.TempDir()
	node, _ := WriteKey(filepath.Join(dir, "node.key"), "")
	admin, w := crdtKey("admin"), crdtKey("witness")
	now := time.Now()
	st := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	recs := []*crdt.Record{must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: now, Domain: "t", HostTTL: 24 * time.Hour,
		DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{w.Public()}}, admin))}
	var verdicts []mesh.Verdict
	for i := range hosts {
		k := crdtKey(fmt.Sprint("host", i))
		addr := netip.AddrFrom16([16]byte{0xfd, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		c := must(crdt.SignClaim(crdt.Claim{Network: admin.Public(), Node: k.Public(), Name: fmt.Sprint("h", i), Created: now}, k))
		recs = append(recs, must(crdt.SignHost(crdt.Host{Network: admin.Public(), Node: k.Public(), Heartbeat: now,
			Addresses: []netip.Addr{addr}, HTTPPort: 7331}, k)), c, must(crdt.WitnessClaim(admin.Public(), c.Hash(), now, w)))
		verdicts = append(verdicts, mesh.Verdict{Network: admin.Public(), Node: k.Public(), Addr: addr, Port: 7331, Checked: now})
	}
	st.IngestAll(recs, now)
	if err := WriteFileAtomic(filepath.Join(dir, "state.bin"), EncodeState(st.Verified(admin.Public()), node), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteVerdictsFile(filepath.Join(dir, VerdictsFile), slices.Values(verdicts), node); err != nil {
		t.Fatal(err)
	}
	recs, st, verdicts = nil, nil, nil
	runtime.GC()
	port := freePort(t)
	_, startAgent := loopbackAgent(t, dir, admin.Public(), port)
	if cpuOut != "" {
		f := must(os.Create(cpuOut))
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
	}
	cpu0 := cpuTime()
	began := time.Now()
	a, cancel, done := startAgent()
	q := new(dns.Msg)
	q.SetQuestion(fmt.Sprintf("h%d.t.", hosts/2), dns.TypeAAAA)
	for {
		m, _, err := (&dns.Client{Timeout: 200 * time.Millisecond}).Exchange(q, "127.0.0.1:"+strconv.Itoa(port))
		if err == nil && len(m.Answer) == 1 {
			break
		}
		if time.Since(began) > time.Minute {
			t.Fatal("no answer after a minute")
		}
		time.Sleep(time.Millisecond)
	}
	first := time.Since(began)
	cpu := cpuTime() - cpu0
	if cpuOut != "" {
		pprof.StopCPUProfile()
	}
	time.Sleep(5 * time.Second) // what start-up left behind is garbage by now
	// liveHeap is the heap after a collection: MB and bytes per host.
	liveHeap := func() string {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return fmt.Sprintf("%.1f MB (%.0f B per host)", float64(m.HeapAlloc)/(1<<20), float64(m.HeapAlloc)/float64(hosts))
	}
	t.Logf("%d hosts: first answer after %v (%v of CPU); live heap %s", hosts, first.Round(time.Millisecond), cpu.Round(time.Millisecond), liveHeap())
	// A member of a mesh also holds the reconciliation encoder of its
	// records, built when a peer first asks for symbols (this agent has no
	// peers): build it as that first round does, and weigh again.
	a.store.Read(func(st *crdt.State) {
		if _, err := st.SymbolRun(admin.Public(), 0, 1, 0); err != nil {
			t.Error(err)
		}
	})
	t.Logf("%d hosts: with the reconciliation encoder a peer's first round builds, live heap %s", hosts, liveHeap())
	if memOut != "" {
		f := must(os.Create(memOut))
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	cancel()
	<-done
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
