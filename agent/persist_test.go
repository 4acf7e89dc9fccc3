package agent

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
)

// testNetwork is a small signed network: settings naming w as witness, and
// hosts with witnessed claims.
func testNetwork(t *testing.T, now time.Time, hosts int) (crdt.PrivateKey, crdt.PrivateKey, []*crdt.Record) {
	admin, w := crdtKey("admin"), crdtKey("witness")
	recs := []*crdt.Record{must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: now, Domain: "test",
		HostTTL: time.Hour, DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{w.Public()}}, admin))}
	for i := range hosts {
		k := crdtKey("host" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)))
		addr := netip.AddrFrom16([16]byte{0xfd, 14: byte(i >> 8), 15: byte(i)})
		h := must(crdt.SignHost(crdt.Host{Network: admin.Public(), Node: k.Public(), Heartbeat: now, Addresses: []netip.Addr{addr}}, k))
		c := must(crdt.SignClaim(crdt.Claim{Network: admin.Public(), Node: k.Public(), Name: "h" + strings.TrimLeft(addr.String()[4:], ":"), Created: now}, k))
		recs = append(recs, h, c, must(crdt.WitnessClaim(admin.Public(), c.Hash(), now, w)))
	}
	return admin, w, recs
}

func crdtKey(name string) crdt.PrivateKey {
	seed := make([]byte, 32)
	copy(seed, name)
	return must(crdt.NewPrivateKeyFromSeed(seed))
}

func stateOf(t *testing.T, now time.Time, recs []*crdt.Record) *crdt.State {
	st := crdt.NewState(crdt.DefaultOptions(), recs[0].Network())
	if res := st.IngestAll(recs, now); len(res.Rejected) > 0 {
		t.Fatal(res.Rejected[0])
	}
	return st
}

func TestStateFileRoundTrip(t *testing.T) {
	now := time.Now()
	_, _, recs := testNetwork(t, now, 5)
	st := stateOf(t, now, recs)
	id := recs[0].Network()
	node := crdtKey("node")
	b := EncodeState(st.Verified(id), node)
	entries, salvaged, err := DecodeState(b, node)
	if err != nil || salvaged != nil || len(entries) != len(recs) {
		t.Fatalf("decode: %d entries, %v", len(entries), err)
	}
	again := crdt.NewState(crdt.DefaultOptions(), id)
	again.Restore(entries, now)
	if again.Fingerprint(id) != st.Fingerprint(id) {
		t.Fatal("restored state differs")
	}
	// Written in parts (the persister's way, a network at a time), the
	// same file.
	var parts bytes.Buffer
	all := st.Verified(id)
	if err := writeState(&parts, node, slices.Values(all[:2]), slices.Values([]crdt.Verified(nil)), slices.Values(all[2:])); err != nil || !bytes.Equal(parts.Bytes(), b) {
		t.Fatalf("the state written in parts differs (%v)", err)
	}
	// Another node's key: no trust, but every record salvaged for
	// verification.
	_, salvaged, err = DecodeState(b, crdtKey("other"))
	if !errors.Is(err, ErrStateCorrupt) || len(salvaged) != len(recs) {
		t.Fatalf("foreign state file: %v, salvaged %d", err, len(salvaged))
	}
	// A torn file: the MAC fails; what is whole is salvaged.
	_, salvaged, err = DecodeState(b[:len(b)/2], node)
	if !errors.Is(err, ErrStateCorrupt) || len(salvaged) == 0 || len(salvaged) >= len(recs) {
		t.Fatalf("half a file: %v, salvaged %d", err, len(salvaged))
	}
	if _, _, err := DecodeState([]byte("garbage"), node); !errors.Is(err, ErrStateCorrupt) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestLoadStateSetsCorruptFileAside(t *testing.T) {
	now := time.Now()
	_, _, recs := testNetwork(t, now, 3)
	id := recs[0].Network()
	node := crdtKey("node")
	dir := t.TempDir()
	path := filepath.Join(dir, "state.bin")
	entries := stateOf(t, now, recs).Verified(id)
	// A forged record among them (a host's signature broken): restored
	// while the file is read, it must be gone once the MAC fails, and
	// salvage must verify it, and refuse it.
	raw := slices.Clone(recs[1].Bytes())
	raw[len(raw)-1] ^= 1
	forged := must(crdt.DecodeRecord(raw))
	entries = slices.Insert(entries, 1, crdt.Verified{Record: forged})
	b := EncodeState(entries, node)
	b[len(b)-1] ^= 1 // break the MAC
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	newState := func() *crdt.State { return crdt.NewState(crdt.DefaultOptions(), id) }
	st, n, err := loadState(path, node, newState, now, slog.New(slog.DiscardHandler))
	if err != nil || n != len(recs) {
		t.Fatalf("salvaged %d of %d: %v", n, len(recs), err)
	}
	if st.Lookup(id, forged.Hash()) != nil {
		t.Fatal("the forged record of a file whose MAC failed is held")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the corrupt file was not moved aside")
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("set aside as %v", aside)
	}
	if st.Stats().SignaturesChecked == 0 {
		t.Fatal("salvaged records were not verified")
	}
	// No file at all is a first start.
	if st, n, err := loadState(filepath.Join(dir, "none"), node, newState, now, slog.New(slog.DiscardHandler)); st == nil || n != 0 || err != nil {
		t.Fatalf("missing file: %d %v", n, err)
	}
}

// loadState restores while it reads, in batches: the state equals
// Restore's, and a file whose records are out of dependency order (which
// the agent never writes) is restored all the same, sorted.
func TestLoadStateStreams(t *testing.T) {
	now := time.Now()
	_, _, recs := testNetwork(t, now, 1500) // 4,501 records: two batches
	id := recs[0].Network()
	node := crdtKey("node")
	want := stateOf(t, now, recs)
	newState := func() *crdt.State { return crdt.NewState(crdt.DefaultOptions(), id) }
	for _, order := range []string{"as written", "reversed"} {
		entries := want.Verified(id)
		if order == "reversed" {
			slices.Reverse(entries)
		}
		path := filepath.Join(t.TempDir(), "state.bin")
		if err := os.WriteFile(path, EncodeState(entries, node), 0o600); err != nil {
			t.Fatal(err)
		}
		st, n, err := loadState(path, node, newState, now, slog.New(slog.DiscardHandler))
		if err != nil || n != len(recs) {
			t.Fatalf("%s: restored %d of %d: %v", order, n, len(recs), err)
		}
		if st.Fingerprint(id) != want.Fingerprint(id) {
			t.Fatalf("%s: the restored state differs", order)
		}
		if got := st.Stats().SignaturesChecked; got != 0 {
			t.Fatalf("%s: %d signatures checked for a file with a good MAC", order, got)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	for _, content := range []string{"one", "two"} {
		if err := WriteFileAtomic(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		fi, _ := os.Stat(path)
		if string(b) != content || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%q %v", b, fi.Mode())
		}
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".f.tmp-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestKeyFilePermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if _, err := LoadKey(path); err == nil || !strings.Contains(err.Error(), "dm-agent keygen") {
		t.Fatalf("missing key: %v", err)
	}
	k, err := WriteKey(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteKey(path, "again"); err == nil {
		t.Fatal("overwrote a key")
	}
	got, err := LoadKey(path)
	if err != nil || got.Public() != k.Public() {
		t.Fatalf("load: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadKey(path)
	if !errors.Is(err, ErrKeyPermissions) || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Fatalf("0644 key: %v", err)
	}
}

// The state file is read as a stream: however the reader splits it, the
// same entries come out; a record that does not parse inside a file whose
// MAC holds is corruption, with the other records salvaged; a failing
// reader is an error of its own, not corruption (the file is not set
// aside for a disk that hiccuped).
func TestReadStateStreams(t *testing.T) {
	now := time.Now()
	_, _, recs := testNetwork(t, now, 7)
	id := recs[0].Network()
	node := crdtKey("node")
	b := EncodeState(stateOf(t, now, recs).Verified(id), node)
	for name, r := range map[string]io.Reader{
		"one byte at a time": iotest.OneByteReader(bytes.NewReader(b)),
		"half reads":         iotest.HalfReader(bytes.NewReader(b)),
		"EOF with the data":  iotest.DataErrReader(bytes.NewReader(b)),
	} {
		entries, _, err := ReadState(r, node)
		if err != nil || len(entries) != len(recs) {
			t.Fatalf("%s: %d entries, %v", name, len(entries), err)
		}
		held := map[crdt.Hash]bool{}
		for _, e := range entries {
			held[e.Record.Hash()] = true
		}
		for _, r := range recs {
			if !held[r.Hash()] {
				t.Fatalf("%s: %s lost", name, r)
			}
		}
	}
	// Break one record's kind inside the body and sign the file again, as
	// this node would have: the MAC holds, the record does not parse.
	body := slices.Clone(b[:len(b)-sha256.Size])
	n, k := binary.Uvarint(body[len(stateMagic):])
	body[len(stateMagic)+k+1] = 99 // the first record's kind
	m := hmac.New(sha256.New, stateMACKey(node))
	m.Write(body)
	_, salvaged, err := DecodeState(m.Sum(body), node)
	if !errors.Is(err, ErrStateCorrupt) || len(salvaged) != len(recs)-1 {
		t.Fatalf("a bad record (%d bytes) under a good MAC: %v, salvaged %d of %d", n, err, len(salvaged), len(recs)-1)
	}
	boom := errors.New("disk hiccup")
	if _, _, err := ReadState(io.MultiReader(bytes.NewReader(b[:len(b)/2]), iotest.ErrReader(boom)), node); !errors.Is(err, boom) || errors.Is(err, ErrStateCorrupt) {
		t.Fatalf("failing reader: %v", err)
	}
	if _, _, err := ReadState(bytes.NewReader(nil), node); !errors.Is(err, ErrStateCorrupt) {
		t.Fatalf("empty file: %v", err)
	}
}

// Changes nobody waits for are written at most once per gap, however many
// come; a waiter has them written at once. (A change during the gap used
// to end it: a peer bootstrapping 100,000 hosts rewrote its 52 MB state
// file every second.)
func TestPersisterSpacesWritesNobodyWaitsFor(t *testing.T) {
	now := time.Now()
	_, _, recs := testNetwork(t, now, 4)
	store := mesh.NewStore(stateOf(t, now, recs[:1]), nil)
	path := filepath.Join(t.TempDir(), "state.bin")
	p := newPersister(path, crdtKey("self"), store, slog.New(slog.DiscardHandler))
	p.gapFloor = time.Hour
	store.Subscribe(func(mesh.Change) { p.changed() })
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { p.run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	if res := store.Ingest(recs[1:4]); res.Added != 3 {
		t.Fatalf("first host: %+v", res)
	}
	eventually(t, 10*time.Second, "the first write", func() bool { return p.writes.Load() == 1 })
	for i := 4; i < len(recs); i++ {
		if res := store.Ingest(recs[i : i+1]); res.Added != 1 {
			t.Fatalf("record %d: %+v", i, res)
		}
		time.Sleep(50 * time.Millisecond) // time for a write that must not come
	}
	if n := p.writes.Load(); n != 1 {
		t.Fatalf("%d writes within the gap, nobody waiting: want 1", n)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := p.wait(wctx); err != nil {
		t.Fatal(err)
	}
	if n := p.writes.Load(); n != 2 {
		t.Fatalf("%d writes after a waiter: want 2", n)
	}
	st, restored, err := loadState(path, crdtKey("self"), func() *crdt.State { return crdt.NewState(crdt.DefaultOptions(), recs[0].Settings().Network) }, now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if restored != len(recs) || len(st.Records(recs[0].Settings().Network)) != len(recs) {
		t.Fatalf("the file holds %d records, want all %d", restored, len(recs))
	}
}
