package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/mesh"
)

func someVerdicts(n int) []mesh.Verdict {
	now := time.Date(2026, 12, 1, 12, 0, 0, 123456789, time.UTC)
	net := crdtKey("admin").Public()
	var vs []mesh.Verdict
	for i := range n {
		addr := netip.AddrFrom16([16]byte{0xfd, 14: byte(i >> 8), 15: byte(i)})
		if i%3 == 0 {
			addr = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		}
		vs = append(vs, mesh.Verdict{Network: net, Node: crdtKey(fmt.Sprint("h", i)).Public(), Addr: addr, Port: uint16(7000 + i), Checked: now.Add(-time.Duration(i) * time.Second)})
	}
	return vs
}

// The verdicts file round-trips, trusts only this node's MAC, and refuses
// a damaged file as a whole.
func TestVerdictsFile(t *testing.T) {
	node := crdtKey("node")
	vs := someVerdicts(50)
	var b bytes.Buffer
	if err := WriteVerdicts(&b, slices.Values(vs), node); err != nil {
		t.Fatal(err)
	}
	got, err := ReadVerdicts(bytes.NewReader(b.Bytes()), node)
	if err != nil || len(got) != len(vs) {
		t.Fatalf("%d verdicts, %v", len(got), err)
	}
	for i := range vs {
		if got[i] != vs[i] && !(got[i].Checked.Equal(vs[i].Checked) && got[i].Addr == vs[i].Addr && got[i].Node == vs[i].Node) {
			t.Fatalf("verdict %d: %+v, want %+v", i, got[i], vs[i])
		}
	}
	for name, data := range map[string][]byte{
		"another node's": func() []byte {
			var o bytes.Buffer
			WriteVerdicts(&o, slices.Values(vs), crdtKey("other"))
			return o.Bytes()
		}(),
		"a flipped bit":   func() []byte { c := bytes.Clone(b.Bytes()); c[100] ^= 1; return c }(),
		"cut short":       b.Bytes()[:b.Len()-50],
		"a verdict short": append(bytes.Clone(b.Bytes()[:b.Len()-32]), 0),
		"empty":           nil,
	} {
		if vs, err := ReadVerdicts(bytes.NewReader(data), node); !errors.Is(err, ErrVerdictsCorrupt) || vs != nil {
			t.Errorf("%s: %d verdicts, %v", name, len(vs), err)
		}
	}
}

// A node upgraded from reachability.json keeps its verdicts: read once,
// removed by the first save.
func TestLegacyVerdictsAreReadOnce(t *testing.T) {
	dir := t.TempDir()
	vs := someVerdicts(5)
	b, _ := json.Marshal(vs)
	if err := os.WriteFile(filepath.Join(dir, legacyVerdicts), b, 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if got := loadVerdicts(dir, crdtKey("node"), log); len(got) != len(vs) {
		t.Fatalf("legacy: %d verdicts", len(got))
	}
	if err := WriteVerdictsFile(filepath.Join(dir, VerdictsFile), slices.Values(vs[:2]), crdtKey("node")); err != nil {
		t.Fatal(err)
	}
	if got := loadVerdicts(dir, crdtKey("node"), log); len(got) != 2 {
		t.Fatalf("the new file wins: %d verdicts", len(got))
	}
	if got := loadVerdicts(dir, crdtKey("other"), log); got != nil {
		t.Fatalf("another node's key: %d verdicts trusted", len(got))
	}
}

// BenchmarkLoadVerdicts reads 100,000 verdicts from the binary file and,
// in the same run, from the JSON the agent wrote before.
func BenchmarkLoadVerdicts(b *testing.B) {
	vs := someVerdicts(100000)
	node := crdtKey("node")
	var bin bytes.Buffer
	WriteVerdicts(&bin, slices.Values(vs), node)
	js, _ := json.Marshal(vs)
	b.Run("binary", func(b *testing.B) {
		b.SetBytes(int64(bin.Len()))
		for b.Loop() {
			if _, err := ReadVerdicts(bytes.NewReader(bin.Bytes()), node); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			var out []mesh.Verdict
			if err := json.NewDecoder(bytes.NewReader(js)).Decode(&out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
