package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/control"
	"github.com/data-mesher/data-mesher/crdt"
)

// Reloading the configuration while the agent claims names, asks timestamp
// authorities and answers doctor must not race (run with -race): the parts
// read one snapshot of the configuration, never fields being rewritten.
// After the reloads settle, the last configuration's names resolve.
func TestReloadWhileClaimsAndStampsRun(t *testing.T) {
	dir := t.TempDir()
	node, err := WriteKey(filepath.Join(dir, "node.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	admin := crdtKey("admin")
	dnsPort := freePort(t)
	cfg, start := loopbackAgent(t, dir, admin.Public(), dnsPort)
	cfg.TSARetry = Duration(time.Second)
	a, cancel, done := start()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	c := control.NewClient(cfg.ControlSocket)
	ctx := context.Background()
	eventually(t, 10*time.Second, "the agent to run the mesh", func() bool {
		s, err := c.Status(ctx)
		return err == nil && s.Waiting == ""
	})
	// The settings pin a timestamp authority that never answers, so every
	// new claim keeps the stamper asking; the node witnesses its own claims.
	set := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "t", HostTTL: time.Hour,
		DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{node.Public()}, TSARoots: [][]byte{crdt.FreeTSARoot()},
		TSAURLs: []string{"http://127.0.0.1:1/tsr"}}, admin))
	if res, err := c.Publish(ctx, set); err != nil || res.Added != 1 {
		t.Fatalf("publish: %+v %v", res, err)
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // doctor's questions, all the while
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Facts(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	const rounds = 40
	for i := range rounds {
		next := *cfg
		next.Hostnames = []string{"n" + strconv.Itoa(i%4), "m" + strconv.Itoa(i%3)}
		next.TSAURLs = []string{fmt.Sprintf("http://127.0.0.1:1/tsa%d", i)}
		if restart, err := a.Reload(&next); err != nil || len(restart) > 0 {
			t.Fatalf("reload %d: %v (restart %v)", i, err, restart)
		}
		// The round's claims are made (and handed to the stamper) before
		// the next reload rewrites the configuration under them.
		eventually(t, 10*time.Second, fmt.Sprintf("round %d's claims", i), func() bool {
			st, err := c.Status(ctx)
			if err != nil || len(st.Networks) != 1 {
				return false
			}
			return slices.Contains(st.Networks[0].Names, next.Hostnames[0]) && slices.Contains(st.Networks[0].Names, next.Hostnames[1])
		})
	}
	close(stop)
	wg.Wait()
	dnsAddr := "127.0.0.1:" + strconv.Itoa(dnsPort)
	last := rounds - 1
	for _, name := range []string{"n" + strconv.Itoa(last%4), "m" + strconv.Itoa(last%3)} {
		eventually(t, 15*time.Second, name+".t to resolve after the reloads", func() bool { return len(lookup(dnsAddr, name+".t")) == 1 })
	}
}
