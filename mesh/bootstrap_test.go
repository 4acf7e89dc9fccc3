package mesh

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// heapPeak samples the heap's live objects until stop, and returns the
// highest value seen minus where it started.
func heapPeak(stop <-chan struct{}) func() int64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() int64 { metrics.Read(sample); return int64(sample[0].Value.Uint64()) }
	base := read()
	var peak atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			peak.Store(max(peak.Load(), read()))
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { wg.Wait(); return peak.Load() - base }
}

// A bootstrap source is hostile until verified: an endless stream, one
// enormous string, or a hundred thousand bogus records each cost this
// node bounded memory (the bound: 64 MiB above normal), and leave
// it able to bootstrap from an honest source afterwards.
func TestBootstrapFromHostileSources(t *testing.T) {
	admin := testKey("admin")
	id := admin.Public().String()
	head := `{"format":"data-mesher/v1","networks":[{"network":"` + id + `","hosts":[`
	expired := `{"node":"` + id + `","heartbeat":"2020-01-01T00:00:00Z","addresses":["fd00::1"],"signature":"` + strings.Repeat("A", 86) + `=="}`
	honest := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "mesh", HostTTL: time.Hour}, admin))
	st := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	if _, err := st.Ingest(honest, time.Now()); err != nil {
		t.Fatal(err)
	}
	honestFile := must(crdt.EncodeDataJSON(st, admin.Public()))

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fl := w.(http.Flusher)
		switch r.URL.Path {
		case "/endless.json", "/many.json":
			_, _ = w.Write([]byte(head))
			chunk := []byte(strings.Repeat(expired+",", 100))
			for i := 0; r.URL.Path == "/endless.json" || i < 1000; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				fl.Flush()
			}
			_, _ = w.Write([]byte(expired + "]}]}"))
		case "/huge.json":
			_, _ = w.Write([]byte(head + `{"node":"`))
			chunk := []byte(strings.Repeat("A", 1<<20))
			for range 150 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/honest.json":
			_, _ = w.Write(honestFile)
		}
	}))
	defer srv.Close()

	net := NewMemNetwork()
	state := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	store := NewStore(state, nil)
	node := must(New(Config{Key: testKey("n"), Routed: func(netip.Addr) bool { return true }, BindAddr: netip.MustParseAddr("fd00::1"),
		Transport: net.Transport("fd00::1", DefaultGossipPort), RequestTimeout: 3 * time.Second,
		HTTPClient: &http.Client{}}, store))

	// Only the endless stream has a deadline: the hundred thousand records
	// must all be read however slow a loaded machine makes it (a 3 s
	// client timeout cut them off at 48,000 under load 1.4).
	for _, c := range []struct {
		path     string
		deadline time.Duration
		want     func(error) bool
	}{
		{"/huge.json", 0, func(err error) bool { return errors.Is(err, crdt.ErrDataTooLarge) }},
		{"/many.json", 0, func(err error) bool { return err == nil }},
		{"/endless.json", 3 * time.Second, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	} {
		stop := make(chan struct{})
		peak := heapPeak(stop)
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if c.deadline > 0 {
			ctx, cancel = context.WithTimeout(ctx, c.deadline)
		}
		err := node.Bootstrap(ctx, srv.URL+c.path)
		cancel()
		close(stop)
		grew := peak()
		t.Logf("%s: %v; the heap grew by at most %.1f MiB", c.path, err, float64(grew)/(1<<20))
		if !c.want(err) {
			t.Errorf("%s: unexpected outcome %v", c.path, err)
		}
		if grew > 64<<20 {
			t.Errorf("%s: the heap grew by %d MiB", c.path, grew>>20)
		}
	}
	if refused := node.Refusals()[string(crdt.ReasonExpired)]; refused < 100000 {
		t.Errorf("%d expired records counted as refused", refused)
	}
	if err := node.Bootstrap(context.Background(), srv.URL+"/honest.json"); err != nil {
		t.Fatalf("an honest source after the hostile ones: %v", err)
	}
	store.Read(func(st *crdt.State) {
		if st.Settings(admin.Public()) == nil {
			t.Fatal("the honest settings were not taken")
		}
	})
}

// A bootstrap lasts as long as its source keeps sending: a data.json that
// takes several request timeouts to arrive (a large network, a slow link)
// is read whole, and a source that stops sending is given up one request
// timeout after its last byte, with the reason.
func TestBootstrapWaitsForASlowSourceNotAStalledOne(t *testing.T) {
	admin := testKey("admin")
	st := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	if _, err := st.Ingest(must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "mesh", HostTTL: time.Hour}, admin)), time.Now()); err != nil {
		t.Fatal(err)
	}
	file := must(crdt.EncodeDataJSON(st, admin.Public()))
	const timeout = 500 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fl := w.(http.Flusher)
		step := len(file)/8 + 1
		for i := 0; i < len(file); i += step {
			if r.URL.Path == "/stalls.json" && i > 0 {
				<-r.Context().Done() // sends the first part only
				return
			}
			_, _ = w.Write(file[i:min(i+step, len(file))])
			fl.Flush()
			time.Sleep(timeout / 2) // the file takes 8 pauses: 4 timeouts
		}
	}))
	defer srv.Close()
	net := NewMemNetwork()
	store := NewStore(crdt.NewState(crdt.DefaultOptions(), admin.Public()), nil)
	node := must(New(Config{Key: testKey("n"), Routed: func(netip.Addr) bool { return true }, BindAddr: netip.MustParseAddr("fd00::1"),
		Transport: net.Transport("fd00::1", DefaultGossipPort), RequestTimeout: timeout,
		HTTPClient: &http.Client{Timeout: timeout}}, store))

	if err := node.Bootstrap(context.Background(), srv.URL+"/slow.json"); err != nil {
		t.Fatalf("a source slower than the request timeout: %v", err)
	}
	store.Read(func(st *crdt.State) {
		if st.Settings(admin.Public()) == nil {
			t.Fatal("the slow source's settings were not taken")
		}
	})
	began := time.Now()
	err := node.Bootstrap(context.Background(), srv.URL+"/stalls.json")
	if err == nil || !strings.Contains(err.Error(), "nothing received for 500ms") {
		t.Fatalf("a stalled source: %v, want it given up for its silence", err)
	}
	if took := time.Since(began); took > time.Minute {
		t.Fatalf("a stalled source held the bootstrap %v", took)
	}
}
