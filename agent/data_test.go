package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/control"
	"github.com/data-mesher/data-mesher/crdt"
)

// dataAgent is a loopback agent whose network declares a namespace of each
// policy; the node is the network's witness.
func dataAgent(t *testing.T) (*control.Client, crdt.PrivateKey, crdt.PrivateKey) {
	t.Helper()
	c, node, admin, _ := dataAgentIn(t, t.TempDir())
	return c, node, admin
}

func dataAgentIn(t *testing.T, dir string) (*control.Client, crdt.PrivateKey, crdt.PrivateKey, string) {
	t.Helper()
	node, err := WriteKey(filepath.Join(dir, "node.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	admin := crdtKey("admin")
	cfg, start := loopbackAgent(t, dir, admin.Public(), freePort(t))
	_, cancel, done := start()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	c := control.NewClient(cfg.ControlSocket)
	t.Cleanup(c.Close)
	ctx := context.Background()
	eventually(t, 10*time.Second, "the agent to run the mesh", func() bool {
		s, err := c.Status(ctx)
		return err == nil && s.Waiting == ""
	})
	set := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "t", HostTTL: time.Hour,
		DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{node.Public()}, Namespaces: []crdt.Namespace{
			{Name: "keys", Writers: crdt.WritersOwner, Policy: crdt.PolicyLWW},
			{Name: "names", Writers: crdt.WritersMembers, Policy: crdt.PolicyFWW},
			{Name: "tags", Writers: crdt.WritersMembers, Policy: crdt.PolicyORSet, Lifetime: 24 * time.Hour},
			{Name: "seen", Writers: crdt.WritersMembers, Policy: crdt.PolicyGSet},
			{Name: "events", Writers: crdt.WritersOwner, Policy: crdt.PolicyLog},
			{Name: "aliases", Writers: crdt.WritersAdmin, Policy: crdt.PolicyLWW},
		}}, admin))
	if res, err := c.Publish(ctx, set); err != nil || res.Added != 1 {
		t.Fatalf("publish: %+v %v", res, err)
	}
	return c, node, admin, dir
}

func value(t *testing.T, k control.DataKey, i int) string {
	t.Helper()
	if len(k.Items) <= i || k.Items[i].Value == nil {
		t.Fatalf("key %q has no text value at %d: %+v", k.Key, i, k)
	}
	return *k.Items[i].Value
}

func TestDataPutGetDeleteByPolicy(t *testing.T) {
	c, node, _ := dataAgent(t)
	ctx := context.Background()
	ns, err := c.Namespaces(ctx, "t")
	if err != nil || len(ns) != 6 {
		t.Fatalf("namespaces: %+v %v", ns, err)
	}
	write := func(w control.DataWrite) control.DataWritten {
		t.Helper()
		w.Network = "t"
		res, err := c.Write(ctx, w)
		if err != nil {
			t.Fatalf("write %+v: %v", w, err)
		}
		return res
	}
	get := func(ns, key string) []control.DataKey {
		t.Helper()
		l, err := c.Data(ctx, control.DataQuery{Network: "t", Namespace: ns, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return l.Keys
	}

	// lww, owner: the node's own key-space; a later write wins; a delete.
	write(control.DataWrite{Namespace: "keys", Key: "ssh/ed25519", Value: []byte("one")})
	write(control.DataWrite{Namespace: "keys", Key: "ssh/ed25519", Value: []byte("two")})
	if k := get("keys", "ssh/ed25519"); len(k) != 1 || value(t, k[0], 0) != "two" || k[0].Owner != node.Public().AuthorizedKey() {
		t.Fatalf("lww: %+v", k)
	}
	write(control.DataWrite{Namespace: "keys", Key: "ssh/ed25519", Delete: true})
	if k := get("keys", "ssh/ed25519"); len(k) != 1 || !k[0].Deleted {
		t.Fatalf("lww after delete: %+v", k)
	}

	// fww: inactive until attested (the node witnesses it), then it holds.
	write(control.DataWrite{Namespace: "names", Key: "printer", Value: []byte("mine")})
	eventually(t, 10*time.Second, "the fww write to hold once witnessed", func() bool {
		k := get("names", "printer")
		return len(k) == 1 && len(k[0].Items) == 1 && k[0].Items[0].Standing == string(crdt.StandingHolds)
	})

	// orset: elements; a delete removes the ones this node saw.
	write(control.DataWrite{Namespace: "tags", Key: "role", Value: []byte("web")})
	write(control.DataWrite{Namespace: "tags", Key: "role", Value: []byte("db")})
	if k := get("tags", "role"); len(k) != 1 || len(k[0].Items) != 2 {
		t.Fatalf("orset: %+v", k)
	}
	write(control.DataWrite{Namespace: "tags", Key: "role", Delete: true})
	if k := get("tags", "role"); len(k) != 0 && len(k[0].Items) != 0 {
		t.Fatalf("orset after delete: %+v", k)
	}
	if _, err := c.Write(ctx, control.DataWrite{Network: "t", Namespace: "tags", Key: "role", Delete: true}); !errors.Is(err, control.ErrNotFound) {
		t.Fatalf("deleting an empty orset key: %v", err)
	}

	// log: entries in sequence.
	write(control.DataWrite{Namespace: "events", Key: "boot", Value: []byte("a")})
	write(control.DataWrite{Namespace: "events", Key: "boot", Value: []byte("b")})
	if k := get("events", "boot"); len(k) != 1 || len(k[0].Items) != 2 || k[0].Items[1].Seq != 1 || value(t, k[0], 1) != "b" {
		t.Fatalf("log: %+v", k)
	}

	// Refusals, with their reasons: a delete in a grow-only set; a write
	// to the admin's namespace by a node.
	if res := write(control.DataWrite{Namespace: "seen", Key: "x", Value: []byte("1")}); !res.Added {
		t.Fatalf("gset put: %+v", res)
	}
	if res := write(control.DataWrite{Namespace: "seen", Key: "x", Delete: true}); !strings.Contains(res.Refused, string(crdt.ReasonDeleteNotAllowed)) {
		t.Fatalf("a gset delete: %+v", res)
	}
	if res := write(control.DataWrite{Namespace: "aliases", Key: "www", Value: []byte("gate")}); !strings.Contains(res.Refused, string(crdt.ReasonNotWriter)) {
		t.Fatalf("a node writing the admin's namespace: %+v", res)
	}
	if _, err := c.Data(ctx, control.DataQuery{Network: "t", Namespace: "nope"}); !errors.Is(err, control.ErrNotFound) {
		t.Fatalf("an undeclared namespace: %v", err)
	}
}

// A watch sends one change per key as it changes, and ends when its
// caller stops.
func TestDataWatch(t *testing.T) {
	c, _, _ := dataAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []control.DataChange
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(ctx, "t", "keys", func(ch control.DataChange) error {
			mu.Lock()
			got = append(got, ch)
			mu.Unlock()
			return nil
		})
	}()
	seen := func(n int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= n }
	}
	// The watch may start after the first write; write until it sees one.
	eventually(t, 10*time.Second, "a first change", func() bool {
		if _, err := c.Write(context.Background(), control.DataWrite{Network: "t", Namespace: "keys", Key: "k", Value: []byte("v1")}); err != nil {
			t.Fatal(err)
		}
		return seen(1)()
	})
	if _, err := c.Write(context.Background(), control.DataWrite{Network: "t", Namespace: "keys", Key: "k", Delete: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the delete", func() bool {
		mu.Lock()
		defer mu.Unlock()
		last := got[len(got)-1]
		return last.Change.Key == "k" && last.Change.Deleted
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v", err)
	}
}

// The files view: one file per key, the value as it is for registers, one
// JSON line per element for sets; replaced as keys change, gone when they
// are; readable by the agent's group.
func TestFilesView(t *testing.T) {
	c, node, _, dir := dataAgentIn(t, t.TempDir())
	ctx := context.Background()
	for _, w := range []control.DataWrite{
		{Namespace: "keys", Key: "ssh/ed25519", Value: []byte("ssh-ed25519 AAAA host\n")},
		{Namespace: "tags", Key: "role", Value: []byte("web")},
		{Namespace: "tags", Key: "role", Value: []byte("db")},
	} {
		w.Network = "t"
		if _, err := c.Write(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	pub := node.Public()
	reg := filepath.Join(dir, "data", "t", "keys", base64.RawURLEncoding.EncodeToString(pub[:]), "ssh%2Fed25519")
	set := filepath.Join(dir, "data", "t", "tags", "role")
	eventually(t, 10*time.Second, "the files of both keys", func() bool {
		a, errA := os.ReadFile(reg)
		b, errB := os.ReadFile(set)
		return errA == nil && errB == nil && string(a) == "ssh-ed25519 AAAA host\n" && strings.Count(string(b), "\n") == 2
	})
	for _, p := range []string{reg, set} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 {
			t.Fatalf("%s: mode %v %v", p, fi.Mode(), err)
		}
	}
	b, _ := os.ReadFile(set)
	var line struct{ Writer, Value string }
	if err := json.Unmarshal(bytes.SplitN(b, []byte("\n"), 2)[0], &line); err != nil || line.Writer != pub.AuthorizedKey() || (line.Value != "db" && line.Value != "web") {
		t.Fatalf("a set's line: %q (%v)", b, err)
	}
	if _, err := c.Write(ctx, control.DataWrite{Network: "t", Namespace: "keys", Key: "ssh/ed25519", Delete: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the deleted key's file to go", func() bool {
		_, err := os.Stat(reg)
		return os.IsNotExist(err)
	})
	if _, err := os.Stat(set); err != nil {
		t.Fatalf("the other namespace's file went too: %v", err)
	}
}

// Entries the configuration publishes are written once their namespace is
// declared, again when a value file changes (read every 30 s, and at once
// on a reload), and are readable like any.
func TestConfiguredEntriesArePublished(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteKey(filepath.Join(dir, "node.key"), ""); err != nil {
		t.Fatal(err)
	}
	admin := crdtKey("admin")
	cfg, start := loopbackAgent(t, dir, admin.Public(), freePort(t))
	valueFile := filepath.Join(dir, "hostkey.pub")
	if err := os.WriteFile(valueFile, []byte("ssh-ed25519 AAAA one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := cfg.Networks["t"]
	n.Publish = []Publish{{Namespace: "keys", Key: "ssh", ValueFile: valueFile}, {Namespace: "keys", Key: "motto", Value: "hello"}}
	cfg.Networks = map[string]NetworkConfig{"t": n}
	a, cancel, done := start()
	defer func() { cancel(); <-done }()
	c := control.NewClient(cfg.ControlSocket)
	defer c.Close()
	ctx := context.Background()
	eventually(t, 10*time.Second, "the agent to run the mesh", func() bool {
		s, err := c.Status(ctx)
		return err == nil && s.Waiting == ""
	})
	set := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "t", HostTTL: time.Hour,
		DNSTTL: time.Minute, Namespaces: []crdt.Namespace{{Name: "keys", Writers: crdt.WritersOwner, Policy: crdt.PolicyLWW}}}, admin))
	if _, err := c.Publish(ctx, set); err != nil {
		t.Fatal(err)
	}
	read := func(key string) string {
		l, err := c.Data(ctx, control.DataQuery{Network: "t", Namespace: "keys", Key: key})
		if err != nil || len(l.Keys) != 1 || len(l.Keys[0].Items) != 1 || l.Keys[0].Items[0].Value == nil {
			return ""
		}
		return *l.Keys[0].Items[0].Value
	}
	eventually(t, 10*time.Second, "both entries published once the namespace is declared", func() bool {
		return read("ssh") == "ssh-ed25519 AAAA one\n" && read("motto") == "hello"
	})
	if err := os.WriteFile(valueFile, []byte("ssh-ed25519 AAAA two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	again := *cfg
	if _, err := a.Reload(&again); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the new content of the value file", func() bool { return read("ssh") == "ssh-ed25519 AAAA two\n" })
}

// known_hosts holds, for each name this node resolves, the SSH host keys
// its holder published, under the name and its tunnel addresses; keys
// that are not keys are left out.
func TestKnownHosts(t *testing.T) {
	dir := t.TempDir()
	node, err := WriteKey(filepath.Join(dir, "node.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	admin := crdtKey("admin")
	cfg, start := loopbackAgent(t, dir, admin.Public(), freePort(t))
	n := cfg.Networks["t"]
	hostKey := node.Public().AuthorizedKey() // an ed25519 public key line, as sshd's .pub holds one
	n.Publish = []Publish{{Namespace: crdt.NamespaceSSHKeys, Key: "ssh-ed25519", Value: hostKey + " root@solo\n"},
		{Namespace: crdt.NamespaceSSHKeys, Key: "ssh-rsa", Value: "ssh-rsa bm90IGEga2V5"}}
	cfg.Networks = map[string]NetworkConfig{"t": n}
	_, cancel, done := start()
	defer func() { cancel(); <-done }()
	c := control.NewClient(cfg.ControlSocket)
	defer c.Close()
	ctx := context.Background()
	eventually(t, 10*time.Second, "the agent to run the mesh", func() bool {
		s, err := c.Status(ctx)
		return err == nil && s.Waiting == ""
	})
	set := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "t", HostTTL: time.Hour,
		DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{node.Public()},
		Namespaces: []crdt.Namespace{{Name: crdt.NamespaceSSHKeys, Writers: crdt.WritersOwner, Policy: crdt.PolicyLWW}}}, admin))
	if _, err := c.Publish(ctx, set); err != nil {
		t.Fatal(err)
	}
	want := "solo.t,127.0.0.1 " + hostKey + "\n"
	eventually(t, 10*time.Second, "known_hosts with the host's key", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "known_hosts"))
		return err == nil && strings.HasSuffix(string(b), want) && !strings.Contains(string(b), "ssh-rsa")
	})
}

// The files view's directories are the group's whatever the umask.
func TestMkdirAllModeIgnoresTheUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := filepath.Join(t.TempDir(), "data")
	leaf := filepath.Join(root, "t", "keys", "writer")
	if err := mkdirAllMode(root, leaf, 0o750); err != nil {
		t.Fatal(err)
	}
	for d := leaf; len(d) >= len(root); d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o750 {
			t.Fatalf("%s: %v %v", d, fi.Mode(), err)
		}
	}
	if fi, _ := os.Stat(filepath.Dir(root)); fi.Mode().Perm() == 0o750 {
		t.Fatal("a directory above root was changed")
	}
}
