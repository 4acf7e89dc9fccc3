//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/wg"
)

// The harness brings up 8 nodes and tears them down leaving no namespace,
// process or mount (Up checks it at cleanup; here we also check by hand).
func TestTestbedLeavesNothing(t *testing.T) {
	requireE2E(t)
	var b *Bed
	t.Run("eight nodes", func(t *testing.T) {
		b = Up(t, 8)
		out := b.MustExec(8, "ping", "-c", "1", "-W", "2", Tunnel(1))
		if !strings.Contains(out, "1 received") {
			t.Fatalf("node 8 cannot reach node 1 through the tunnel:\n%s", out)
		}
		b.Start(3, "sleeper", "sleep", "300")
	})
	if out, err := exec.Command(testbed, "check", b.Dir, b.Prefix).CombinedOutput(); err != nil {
		t.Fatalf("left behind:\n%s", out)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), b.Prefix) {
		t.Fatalf("namespaces left: %s", out)
	}
}

func TestWGReadsInterfaceAndPeers(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	probe := build(t, dir, "scripts/wgprobe")
	b := Up(t, 3)
	var ifc wg.Interface
	if err := json.Unmarshal([]byte(b.MustExec(2, probe)), &ifc); err != nil {
		t.Fatal(err)
	}
	if ifc.Kind != "tuntap" || ifc.DeviceType != "userspace" || !ifc.Up {
		t.Errorf("interface: kind %q, device %q, up %v", ifc.Kind, ifc.DeviceType, ifc.Up)
	}
	if len(ifc.Addrs) != 1 || ifc.Addrs[0] != netip.MustParsePrefix(Tunnel(2)+"/64") {
		t.Errorf("addresses %v, want %s/64", ifc.Addrs, Tunnel(2))
	}
	if len(ifc.Peers) != 2 {
		t.Fatalf("%d peers, want 2", len(ifc.Peers))
	}
	seen := map[string]bool{}
	for _, p := range ifc.Peers {
		for _, a := range p.TunnelAddrs() {
			seen[a.String()] = true
		}
		if !p.Endpoint.IsValid() {
			t.Errorf("peer without endpoint: %+v", p)
		}
	}
	if !seen[Tunnel(1)] || !seen[Tunnel(3)] {
		t.Errorf("peer tunnel addresses %v", seen)
	}
	if got := wg.Seeds(ifc.Peers, 7946); len(got) != 2 || got[0] != "["+Tunnel(1)+"]:7946" {
		t.Errorf("seeds %v", got)
	}
}

// A peer added with `wg set` shows up without restarting anything.
func TestWGSeesNewPeer(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	probe := build(t, dir, "scripts/wgprobe")
	b := Up(t, 2, "--no-peers")
	b.Start(1, "watch", probe, "-watch")
	peers := func() int {
		lines := strings.Split(strings.TrimSpace(b.Log(1, "watch")), "\n")
		var last wg.Interface
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
			return -1
		}
		return len(last.Peers)
	}
	eventually(t, 10*time.Second, "the first snapshot", func() bool { return peers() == 0 })
	start := time.Now()
	b.Testbed("peer", "1", "2")
	eventually(t, 10*time.Second, "the new peer in the watch", func() bool { return peers() == 1 })
	t.Logf("peer seen %v after wg set", time.Since(start).Round(time.Millisecond))
	// And an address added to the interface (netlink notification).
	b.MustExec(1, "ip", "addr", "add", "fd6d:6573::99/64", "dev", "wg0", "nodad")
	eventually(t, 10*time.Second, "the new address in the watch", func() bool {
		return strings.Contains(b.Log(1, "watch"), fmt.Sprintf("%q", "fd6d:6573::99/64"))
	})
}
