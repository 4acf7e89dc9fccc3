package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
)

// TestMemProfile10k runs an agent with 10,000 hosts in-process and writes a
// heap profile (development aid: DM_MEMPROFILE=path).
func TestMemProfile10k(t *testing.T) {
	out := os.Getenv("DM_MEMPROFILE")
	if out == "" {
		t.Skip("development aid: set DM_MEMPROFILE")
	}
	dir := t.TempDir()
	node, _ := WriteKey(filepath.Join(dir, "node.key"), "")
	admin, w := crdtKey("admin"), crdtKey("witness")
	now := time.Now()
	st := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	recs := []*crdt.Record{must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: now, Domain: "t", HostTTL: 24 * time.Hour,
		DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{w.Public()}}, admin))}
	var verdicts []mesh.Verdict
	for i := range 10000 {
		k := crdtKey(fmt.Sprint("host", i))
		addr := netip.AddrFrom16([16]byte{0xfd, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		c := must(crdt.SignClaim(crdt.Claim{Network: admin.Public(), Node: k.Public(), Name: fmt.Sprint("h", i), Created: now}, k))
		recs = append(recs, must(crdt.SignHost(crdt.Host{Network: admin.Public(), Node: k.Public(), Heartbeat: now,
			Addresses: []netip.Addr{addr}, HTTPPort: 7331}, k)), c, must(crdt.WitnessClaim(admin.Public(), c.Hash(), now, w)))
		verdicts = append(verdicts, mesh.Verdict{Network: admin.Public(), Node: k.Public(), Addr: addr, Port: 7331, Checked: now})
	}
	st.IngestAll(recs, now)
	WriteFileAtomic(filepath.Join(dir, "state.bin"), EncodeState(st.Verified(admin.Public()), node), 0o600)
	vb := must(json.Marshal(verdicts))
	os.WriteFile(filepath.Join(dir, "reachability.json"), vb, 0o600)
	recs, st = nil, nil
	_, start := loopbackAgent(t, dir, admin.Public(), freePort(t))
	_, cancel, done := start()
	time.Sleep(5 * time.Second)
	runtime.GC()
	f, _ := os.Create(out)
	pprof.WriteHeapProfile(f)
	f.Close()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	t.Logf("live heap %.1f MB, total allocated %.0f MB in 5 s, %d GCs", float64(m.HeapAlloc)/(1<<20), float64(m.TotalAlloc)/(1<<20), m.NumGC)
	cancel()
	<-done
	_ = context.Background
}
