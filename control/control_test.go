package control

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// fakeBackend answers with fixed values and records what it was asked.
type fakeBackend struct {
	published []*crdt.Record
	settings  *crdt.Record
}

func (f *fakeBackend) Status(context.Context) (Status, error) {
	return Status{Node: "ssh-ed25519 AAAA", Uptime: 1.5, Waiting: "", Networks: []NetworkStatus{{Label: "clan"}}}, nil
}
func (f *fakeBackend) Hosts(context.Context) ([]HostInfo, error) {
	return nil, fmt.Errorf("%w: the agent is waiting for the interface wg0 to have an address", ErrNotReady)
}
func (f *fakeBackend) Resolve(_ context.Context, name string) (Resolution, error) {
	return Resolution{Name: name, Found: name == "mors.clan"}, nil
}
func (f *fakeBackend) Export(_ context.Context, network string) ([]byte, error) {
	if network != "" && network != "clan" {
		return nil, fmt.Errorf("%w: network %q is neither a configured label nor a key", ErrNotFound, network)
	}
	return []byte(`{"format":"data-mesher/v1","networks":[]}`), nil
}
func (f *fakeBackend) Settings(_ context.Context, network string) (*crdt.Record, error) {
	if network != "clan" {
		return nil, fmt.Errorf("%w: not joined", ErrNotFound)
	}
	return f.settings, nil
}
func (f *fakeBackend) Publish(_ context.Context, recs []*crdt.Record) (PublishResult, error) {
	f.published = append(f.published, recs...)
	return PublishResult{Added: len(recs)}, nil
}
func (f *fakeBackend) Facts(context.Context) (Facts, error) { return Facts{}, errors.New("boom") }
func (f *fakeBackend) Namespaces(context.Context, string) ([]Namespace, error) {
	return []Namespace{{Network: "clan", Name: "services", Writers: "owner", Policy: "lww"}}, nil
}
func (f *fakeBackend) Data(_ context.Context, q DataQuery) (DataList, error) {
	v := "x"
	return DataList{Keys: []DataKey{{Key: q.Key, Items: []DataItem{{Value: &v}}}}}, nil
}
func (f *fakeBackend) Write(_ context.Context, w DataWrite) (DataWritten, error) {
	return DataWritten{Hash: string(w.Value), Added: true}, nil
}
func (f *fakeBackend) Watch(ctx context.Context, network, namespace string, send func(DataChange) error) error {
	for i := range 3 {
		if err := send(DataChange{Network: network, Namespace: namespace, Change: DataKey{Key: fmt.Sprint(i)}}); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func testKey(name string) crdt.PrivateKey {
	seed := sha256.Sum256([]byte("control test " + name))
	k, err := crdt.NewPrivateKeyFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	return k
}

// serve runs the API for b on a socket in a temporary directory.
func serve(t *testing.T, b Backend) (*Client, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, b, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c := NewClient(path)
	t.Cleanup(c.Close)
	return c, path
}

func TestClientAndServer(t *testing.T) {
	admin := testKey("admin")
	set, err := crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "clan",
		HostTTL: time.Hour, DNSTTL: time.Minute}, admin)
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBackend{settings: set}
	c, path := serve(t, b)
	ctx := context.Background()

	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	if s, err := c.Status(ctx); err != nil || s.Uptime != 1.5 || len(s.Networks) != 1 {
		t.Fatalf("status: %+v %v", s, err)
	}
	if r, err := c.Resolve(ctx, "mors.clan"); err != nil || !r.Found || r.Name != "mors.clan" {
		t.Fatalf("resolve: %+v %v", r, err)
	}
	if _, err := c.Hosts(ctx); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "waiting for the interface wg0") {
		t.Fatalf("hosts while not ready: %v", err)
	}
	if data, err := c.Export(ctx, ""); err != nil || string(data) != `{"format":"data-mesher/v1","networks":[]}` {
		t.Fatalf("export: %q %v", data, err)
	}
	if _, err := c.Export(ctx, "nope"); !errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), "not found: not found") {
		t.Fatalf("export of an unknown network: %v", err)
	}
	if r, err := c.Settings(ctx, "clan"); err != nil || r.Hash() != set.Hash() {
		t.Fatalf("settings: %v %v", r, err)
	}
	b.settings = nil
	if r, err := c.Settings(ctx, "clan"); err != nil || r != nil {
		t.Fatalf("settings of a network without any: %v %v", r, err)
	}
	if res, err := c.Publish(ctx, set); err != nil || res.Added != 1 || len(b.published) != 1 || b.published[0].Hash() != set.Hash() {
		t.Fatalf("publish: %+v %v (%d taken)", res, err, len(b.published))
	}
	if _, err := c.Facts(ctx); err == nil || err.Error() != "boom" {
		t.Fatalf("an internal failure comes back as it is: %v", err)
	}
	if l, err := c.Data(ctx, DataQuery{Network: "clan", Namespace: "services", Key: "a/b"}); err != nil || l.Keys[0].Key != "a/b" || *l.Keys[0].Items[0].Value != "x" {
		t.Fatalf("data: %+v %v", l, err)
	}
	if w, err := c.Write(ctx, DataWrite{Network: "clan", Namespace: "services", Key: "k", Value: []byte("v")}); err != nil || w.Hash != "v" {
		t.Fatalf("write: %+v %v", w, err)
	}
	// A watch streams its changes as they come, and ends with its context.
	wctx, cancel := context.WithCancel(ctx)
	var got []string
	err = c.Watch(wctx, "clan", "services", func(ch DataChange) error {
		got = append(got, ch.Change.Key)
		if len(got) == 3 {
			cancel()
		}
		return nil
	})
	if err != nil || strings.Join(got, ",") != "0,1,2" {
		t.Fatalf("watch: %v %v", got, err)
	}
}

// Nothing listening: the client says so in the words of ErrNoAgent; a
// second agent cannot take a socket that answers.
func TestNoAgentAndSocketInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.sock")
	if _, err := NewClient(path).Status(context.Background()); !errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "is the agent running?") {
		t.Fatalf("no agent: %v", err)
	}
	_, used := serve(t, &fakeBackend{})
	if _, err := Listen(used); err == nil || !strings.Contains(err.Error(), "is another dm-agent running?") {
		t.Fatalf("a second listener on a socket in use: %v", err)
	}
}

// startingBackend is not ready for its first calls to Publish.
type startingBackend struct {
	fakeBackend
	notReady int // calls still to refuse
	calls    int
}

func (s *startingBackend) Publish(ctx context.Context, recs []*crdt.Record) (PublishResult, error) {
	s.calls++
	if s.notReady > 0 {
		s.notReady--
		return PublishResult{}, fmt.Errorf("%w: the agent is waiting for the mesh to start", ErrNotReady)
	}
	return s.fakeBackend.Publish(ctx, recs)
}

// A client told to wait retries a call while the agent starts, says why
// once, and gives up with the agent's reason when the wait is over.
func TestClientWaitsWhileTheAgentStarts(t *testing.T) {
	admin := testKey("admin")
	set, err := crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "clan",
		HostTTL: time.Hour, DNSTTL: time.Minute}, admin)
	if err != nil {
		t.Fatal(err)
	}
	b := &startingBackend{notReady: 3}
	c, _ := serve(t, b)
	ctx := context.Background()

	if _, err := c.Publish(ctx, set); !errors.Is(err, ErrNotReady) || b.calls != 1 {
		t.Fatalf("without a wait: %v after %d calls", err, b.calls)
	}
	var reasons []string
	c.WaitReady(time.Minute, func(reason string, wait time.Duration) {
		if wait != time.Minute {
			t.Errorf("notified wait %v", wait)
		}
		reasons = append(reasons, reason)
	})
	res, err := c.Publish(ctx, set)
	if err != nil || res.Added != 1 || len(b.published) != 1 || b.calls != 4 {
		t.Fatalf("with a wait: %+v %v after %d calls, %d published", res, err, b.calls, len(b.published))
	}
	if len(reasons) != 1 || reasons[0] != "the agent is waiting for the mesh to start" {
		t.Fatalf("notified %q", reasons)
	}

	// An agent that stays unready: the call ends with its reason when the
	// wait or the context is over.
	c.WaitReady(300*time.Millisecond, nil)
	if _, err := c.Hosts(ctx); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "waiting for the interface wg0") {
		t.Fatalf("hosts after the wait: %v", err)
	}
	c.WaitReady(time.Hour, nil)
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Hosts(cctx); !errors.Is(err, ErrNotReady) {
		t.Fatalf("hosts when the context ends: %v", err)
	}
}
