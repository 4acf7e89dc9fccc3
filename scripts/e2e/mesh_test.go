//go:build e2e

package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mesh is the end-to-end test bed: real dm-agent binaries on wireguard-go in
// namespaces, queried with kdig.
type mesh struct {
	*Bed
	t                  *testing.T
	bin, helper        string
	netA, netB, netC   string // network keys
	adminA, adminC     string // admin key files
	keys               map[int]string
	hostsA, hostsB, hC map[int][]string
	boot               map[int][]string
	started            map[int]bool
}

const (
	nodes    = 8
	fresh    = 9 // the node that joins last, from a static data.json
	tsaNode  = 8
	tsaPort  = 8318
	filePort = 8080
)

func (m *mesh) dir(i int) string { return filepath.Join(m.Dir, strconv.Itoa(i)) }

func (m *mesh) dm(args ...string) (string, error) {
	out, err := exec.Command(m.bin, args...).CombinedOutput()
	return string(out), err
}

func (m *mesh) mustDM(args ...string) string {
	m.t.Helper()
	out, err := m.dm(args...)
	if err != nil {
		m.t.Fatalf("dm-agent %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (m *mesh) sock(i int) string { return filepath.Join(m.dir(i), "control.sock") }

func (m *mesh) writeConfig(i int) {
	m.t.Helper()
	nets := map[string]any{
		"demo":  map[string]any{"pubkey": m.netA, "priority": 1, "hostnames": m.hostsA[i], "bootstrap_peers": m.boot[i]},
		"demo2": map[string]any{"pubkey": m.netB, "priority": 2, "hostnames": orEmpty(m.hostsB[i])},
		"tsa":   map[string]any{"pubkey": m.netC, "priority": 1, "hostnames": orEmpty(m.hC[i])},
	}
	cfg := map[string]any{
		"interface": "wg0", "state_dir": filepath.Join(m.dir(i), "state"), "key_file": filepath.Join(m.dir(i), "node.key"),
		"control_socket": m.sock(i), "metrics_listen": "off", "hostnames": []string{},
		"sync_interval": "1s", "reachability_ttl": "20s", "tsa_retry": "2s", "networks": nets,
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(m.dir(i), "config.json"), b, 0o644); err != nil {
		m.t.Fatal(err)
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (m *mesh) start(i int) {
	m.t.Helper()
	m.writeConfig(i)
	m.Start(i, "agent", m.bin, "run", "--config", filepath.Join(m.dir(i), "config.json"))
	m.started[i] = true
	eventually(m.t, 20*time.Second, fmt.Sprintf("node %d's control socket", i), func() bool {
		_, err := m.dm("status", "--control-socket", m.sock(i))
		return err == nil
	})
}

// reload rewrites node i's configuration and sends SIGHUP.
func (m *mesh) reload(i int) {
	m.t.Helper()
	m.writeConfig(i)
	pid, err := os.ReadFile(filepath.Join(m.dir(i), "agent.pid"))
	if err != nil {
		m.t.Fatal(err)
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err := syscall.Kill(p, syscall.SIGHUP); err != nil {
		m.t.Fatal(err)
	}
}

var statusRE = regexp.MustCompile(`status: (\w+)`)

// dig asks node i's DNS, on its own tunnel address, and returns the rcode
// and the answer data.
func (m *mesh) dig(i int, name, qtype string) (string, []string) {
	out, _ := m.Exec(i, "kdig", "@"+Tunnel(i), name, qtype, "+timeout=2", "+retry=0", "+noall", "+answer", "+header")
	rcode := "TIMEOUT"
	if s := statusRE.FindStringSubmatch(out); s != nil {
		rcode = s[1]
	}
	var ans []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		if f := strings.Fields(line); len(f) >= 5 {
			ans = append(ans, f[3]+" "+strings.Join(f[4:], " "))
		}
	}
	slices.Sort(ans)
	return rcode, ans
}

func (m *mesh) resolvesTo(i int, name, addr string) bool {
	rc, ans := m.dig(i, name, "AAAA")
	return rc == "NOERROR" && len(ans) == 1 && ans[0] == "AAAA "+addr
}

func (m *mesh) absent(i int, name string) bool {
	rc, ans := m.dig(i, name, "AAAA")
	return rc == "NXDOMAIN" || (rc == "NOERROR" && len(ans) == 0)
}

// everywhere waits until check holds on every listed node; on a timeout it
// says which nodes are behind and shows what their agents logged.
func (m *mesh) everywhere(timeout time.Duration, what string, on []int, check func(i int) bool) {
	m.t.Helper()
	waitOn(m.t, timeout, what, on, check, func(i int) string {
		st, _ := m.dm("status", "--control-socket", m.sock(i))
		hosts, _ := m.dm("hosts", "--control-socket", m.sock(i))
		return fmt.Sprintf("%s\n%s\nlog tail:\n%s", st, hosts, tail(m.Log(i, "agent"), 3000))
	})
}

func span(from, to int, except ...int) []int {
	var out []int
	for i := from; i <= to; i++ {
		if !slices.Contains(except, i) {
			out = append(out, i)
		}
	}
	return out
}

func (m *mesh) status(i int) map[string]any {
	var s map[string]any
	json.Unmarshal([]byte(m.mustDM("status", "--json", "--control-socket", m.sock(i))), &s)
	return s
}

func settingsUpdated(s map[string]any, label string) string {
	nets, _ := s["networks"].([]any)
	for _, n := range nets {
		nm := n.(map[string]any)
		if nm["label"] == label {
			return fmt.Sprint(nm["settings_updated"])
		}
	}
	return ""
}

func TestMesh(t *testing.T) {
	requireE2E(t)
	for _, tool := range []string{"kdig", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/test installs knot-dnsutils and openssl)", tool)
		}
	}
	work := t.TempDir()
	m := &mesh{t: t, bin: build(t, work, "cmd/dm-agent"), helper: build(t, work, "scripts/e2ehelper"),
		keys: map[int]string{}, hostsA: map[int][]string{}, hostsB: map[int][]string{}, hC: map[int][]string{},
		boot: map[int][]string{}, started: map[int]bool{}}
	m.Bed = Up(t, fresh)
	for i := 1; i <= fresh; i++ {
		m.keys[i] = strings.TrimSpace(m.mustDM("keygen", "--out", filepath.Join(m.dir(i), "node.key")))
		m.hostsA[i] = []string{fmt.Sprint("node", i)}
		if i != 1 {
			m.boot[i] = []string{"http://[" + Tunnel(1) + "]:7331"} // one bootstrap peer between them
		}
	}
	m.hostsA[3] = append(m.hostsA[3], "dup") // priority 1
	m.hostsB[2] = []string{"dup"}            // priority 2
	m.hC[6] = []string{"stamped"}            // attested by the TSA only
	// The timestamp authority, in node 8's namespace, down for now.
	tsaDir := filepath.Join(work, "tsa")
	os.MkdirAll(tsaDir, 0o700)
	m.Start(tsaNode, "tsa", m.helper, "tsa", "--listen", fmt.Sprintf("[%s]:%d", Tunnel(tsaNode), tsaPort), "--dir", tsaDir, "--down")
	eventually(t, 20*time.Second, "the TSA's root certificate", func() bool {
		_, err := os.Stat(filepath.Join(tsaDir, "root.pem"))
		return err == nil
	})
	network := func(domain, admin string, extra ...string) string {
		out := m.mustDM(append([]string{"network", "create", "--domain", domain, "--admin-key", admin, "--out", admin + ".json"}, extra...)...)
		for _, l := range strings.Split(out, "\n") {
			if k, ok := strings.CutPrefix(l, "pubkey: "); ok {
				return k
			}
		}
		t.Fatalf("no pubkey in %s", out)
		return ""
	}
	witnesses := []string{"--witness", m.keys[1], "--witness", m.keys[5]}
	m.adminA, m.adminC = filepath.Join(work, "adminA.key"), filepath.Join(work, "adminC.key")
	adminB := filepath.Join(work, "adminB.key")
	m.netA = network("demo", m.adminA, witnesses...)
	m.netB = network("demo", adminB, witnesses...)
	m.netC = network("tsa", m.adminC, "--tsa-root", filepath.Join(tsaDir, "root.pem"), "--tsa-url", fmt.Sprintf("http://[%s]:%d", Tunnel(tsaNode), tsaPort))

	start := time.Now()
	for i := 1; i <= nodes; i++ {
		m.start(i)
	}
	// The admins hand the settings to node 1; gossip takes them on.
	for _, a := range []string{m.adminA, adminB, m.adminC} {
		m.mustDM("settings", "--network", map[string]string{m.adminA: m.netA, adminB: m.netB, m.adminC: m.netC}[a],
			"--admin-key", a, "--from", a+".json", "--control-socket", m.sock(1))
	}
	all := span(1, nodes)

	t.Run("1 every node resolves every other node, forward and reverse", func(t *testing.T) {
		for j := 1; j <= nodes; j++ {
			name := fmt.Sprintf("node%d.demo", j)
			m.everywhere(90*time.Second, name+" everywhere", all, func(i int) bool { return m.resolvesTo(i, name, Tunnel(j)) })
		}
		t.Logf("8 nodes converged: every node resolves all 8 names %v after the agents started", time.Since(start).Round(100*time.Millisecond))
		for _, i := range all {
			rc, ans := m.dig(i, Tunnel(i%nodes+1), "PTR")
			if len(ans) == 0 {
				out, _ := m.Exec(i, "kdig", "@"+Tunnel(i), "-x", Tunnel(i%nodes+1), "+short")
				ans = strings.Fields(out)
			}
			if !slices.ContainsFunc(ans, func(a string) bool { return strings.Contains(a, fmt.Sprintf("node%d.demo.", i%nodes+1)) }) {
				t.Fatalf("node %d: PTR of %s: %s %v", i, Tunnel(i%nodes+1), rc, ans)
			}
		}
	})

	t.Run("8 the priority-1 network wins a name both networks give", func(t *testing.T) {
		m.everywhere(60*time.Second, "dup.demo from the priority-1 network", all, func(i int) bool { return m.resolvesTo(i, "dup.demo", Tunnel(3)) })
	})

	t.Run("11 not an open resolver", func(t *testing.T) {
		for _, i := range all {
			if rc, _ := m.dig(i, "example.org", "A"); rc != "REFUSED" {
				t.Fatalf("node %d answers example.org with %s", i, rc)
			}
		}
	})

	t.Run("2 a name two nodes claim goes to the earliest attested claim", func(t *testing.T) {
		m.hostsA[4] = append(m.hostsA[4], "shared")
		m.reload(4)
		m.everywhere(60*time.Second, "shared.demo → node 4", all, func(i int) bool { return m.resolvesTo(i, "shared.demo", Tunnel(4)) })
		m.hostsA[5] = append(m.hostsA[5], "shared")
		m.reload(5)
		// Node 5's claim is attested, later; node 4 keeps the name.
		eventually(t, 60*time.Second, "node 5's claim to be attested", func() bool {
			out, _ := m.dm("resolve", "shared.demo", "--json", "--control-socket", m.sock(1))
			return strings.Count(out, `"attested": true`) == 2
		})
		for _, i := range all {
			if !m.resolvesTo(i, "shared.demo", Tunnel(4)) {
				t.Fatalf("node %d: shared.demo no longer goes to node 4", i)
			}
		}
		out, _ := m.Exec(5, m.bin, "doctor", "--config", filepath.Join(m.dir(5), "config.json"))
		if !strings.Contains(out, "shared (demo) is held by "+m.keys[4]) {
			t.Fatalf("doctor on the loser does not say who holds shared.demo:\n%s", out)
		}
	})

	t.Run("10 a host failing the reachability challenge stays out", func(t *testing.T) {
		others6 := span(1, nodes, 6)
		// Node 6 claims an address no WireGuard peer routes to it.
		m.MustExec(6, "ip", "addr", "add", "fd6d:6573::66/64", "dev", "wg0", "nodad")
		m.everywhere(60*time.Second, "node6.demo out of the other nodes' views", others6, func(i int) bool { return m.absent(i, "node6.demo") })
		m.MustExec(6, "ip", "addr", "del", "fd6d:6573::66/64", "dev", "wg0")
		m.everywhere(60*time.Second, "node6.demo back", others6, func(i int) bool { return m.resolvesTo(i, "node6.demo", Tunnel(6)) })
		// Node 7 claims node 2's tunnel address: node 2 answers there, with
		// node 2's key.
		others7 := span(1, nodes, 7)
		m.MustExec(7, "ip", "addr", "add", Tunnel(2)+"/128", "dev", "wg0", "nodad")
		m.everywhere(60*time.Second, "node7.demo out of the other nodes' views", others7, func(i int) bool { return m.absent(i, "node7.demo") })
		for _, i := range others7 {
			if !m.resolvesTo(i, "node2.demo", Tunnel(2)) {
				t.Fatalf("node %d lost node2.demo", i)
			}
		}
		m.MustExec(7, "ip", "addr", "del", Tunnel(2)+"/128", "dev", "wg0")
		m.everywhere(60*time.Second, "node7.demo back", others7, func(i int) bool { return m.resolvesTo(i, "node7.demo", Tunnel(7)) })
		// A host whose agent is stopped is not accepted; when it starts,
		// it is.
		others3 := span(1, nodes, 3)
		m.Stop(3, "agent", "TERM")
		m.everywhere(90*time.Second, "node3.demo out while its agent is stopped", others3, func(i int) bool { return m.absent(i, "node3.demo") })
		m.start(3)
		m.everywhere(90*time.Second, "node3.demo back once its agent runs", others3, func(i int) bool { return m.resolvesTo(i, "node3.demo", Tunnel(3)) })
	})

	t.Run("7 a claim waits for the TSA and activates when it returns", func(t *testing.T) {
		eventually(t, 60*time.Second, "node 6's claim on stamped.tsa everywhere", func() bool {
			for _, i := range all {
				out, _ := m.dm("resolve", "stamped.tsa", "--json", "--control-socket", m.sock(i))
				if !strings.Contains(out, `"claims"`) {
					return false
				}
			}
			return true
		})
		for _, i := range all {
			if !m.absent(i, "stamped.tsa") {
				t.Fatalf("node %d answers stamped.tsa while the TSA is down", i)
			}
		}
		pid, _ := os.ReadFile(filepath.Join(m.dir(tsaNode), "tsa.pid"))
		p, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
		syscall.Kill(p, syscall.SIGUSR2)
		up := time.Now()
		// The stamper retries every tsa_retry (2 s here), backing off to at
		// most ten times that: the claim is stamped within one retry of the
		// authority's return, then spreads.
		m.everywhere(90*time.Second, "stamped.tsa active everywhere", all, func(i int) bool { return m.resolvesTo(i, "stamped.tsa", Tunnel(6)) })
		t.Logf("stamped.tsa active on every node %v after the TSA came back (retry 2 s, back-off at most 20 s)", time.Since(up).Round(100*time.Millisecond))
	})

	t.Run("5 a partition heals into one view", func(t *testing.T) {
		left, right := span(1, 4), span(5, 8)
		m.Testbed("split", "5", "6", "7", "8", "9")
		m.hostsA[2] = append(m.hostsA[2], "alpha")
		m.reload(2)
		m.hostsA[6] = append(m.hostsA[6], "beta")
		m.reload(6)
		m.everywhere(60*time.Second, "alpha on the left", left, func(i int) bool { return m.resolvesTo(i, "alpha.demo", Tunnel(2)) })
		m.everywhere(60*time.Second, "beta on the right", right, func(i int) bool { return m.resolvesTo(i, "beta.demo", Tunnel(6)) })
		for _, i := range right {
			if rc, ans := m.dig(i, "alpha.demo", "AAAA"); !m.absent(i, "alpha.demo") {
				t.Fatalf("node %d answers alpha.demo across the cut: %s %v", i, rc, ans)
			}
		}
		m.Testbed("unsplit")
		healed := time.Now()
		names := []string{"alpha.demo", "beta.demo", "shared.demo", "dup.demo", "stamped.tsa"}
		for j := 1; j <= nodes; j++ {
			names = append(names, fmt.Sprintf("node%d.demo", j))
		}
		view := func(i int) string {
			var b strings.Builder
			for _, n := range names {
				rc, ans := m.dig(i, n, "AAAA")
				fmt.Fprintf(&b, "%s %s %v; ", n, rc, ans)
			}
			return b.String()
		}
		eventually(t, 120*time.Second, "one view on every node after the heal", func() bool {
			want := view(1)
			if !strings.Contains(want, "alpha.demo NOERROR") || !strings.Contains(want, "beta.demo NOERROR") {
				return false
			}
			for _, i := range all[1:] {
				if view(i) != want {
					return false
				}
			}
			return true
		})
		t.Logf("after the heal, all 8 nodes agree in %v", time.Since(healed).Round(100*time.Millisecond))
	})

	t.Run("6 a node killed mid-sync serves its old view at once and catches up", func(t *testing.T) {
		m.Stop(4, "agent", "KILL")
		m.hostsA[1] = append(m.hostsA[1], "later")
		m.reload(1)
		m.everywhere(60*time.Second, "later.demo on the running nodes", span(1, nodes, 4), func(i int) bool { return m.resolvesTo(i, "later.demo", Tunnel(1)) })
		m.Start(4, "agent", m.bin, "run", "--config", filepath.Join(m.dir(4), "config.json"))
		// It answers from its state before it has synced with anybody (the
		// log below says how soon after starting).
		eventually(t, 10*time.Second, "node 4 to answer from its state after restarting", func() bool { return m.resolvesTo(4, "node8.demo", Tunnel(8)) })
		// The line comes just after the first answers.
		startLine := regexp.MustCompile(`msg="answering DNS".* restored_records=(\d+) .*since_start=(\S+)`)
		var starts [][]string
		eventually(t, 10*time.Second, "node 4's start-up line", func() bool {
			starts = startLine.FindAllStringSubmatch(m.Log(4, "agent"), -1)
			return len(starts) >= 2
		})
		last := starts[len(starts)-1]
		t.Logf("restarted node 4 answered DNS from %s restored records %s after starting", last[1], last[2])
		eventually(t, 60*time.Second, "node 4 to catch up", func() bool { return m.resolvesTo(4, "later.demo", Tunnel(1)) })
	})

	t.Run("9 a fresh node bootstraps from a static file, then gossips", func(t *testing.T) {
		static := filepath.Join(work, "static")
		os.MkdirAll(static, 0o755)
		os.WriteFile(filepath.Join(static, "data.json"), []byte(m.mustDM("export", "--control-socket", m.sock(1))), 0o644)
		m.Start(tsaNode, "files", m.helper, "files", "--listen", fmt.Sprintf("[%s]:%d", Tunnel(tsaNode), filePort), "--dir", static)
		m.boot[fresh] = []string{fmt.Sprintf("http://[%s]:%d/data.json", Tunnel(tsaNode), filePort)}
		m.start(fresh)
		eventually(t, 60*time.Second, "the fresh node to bootstrap from the file", func() bool {
			return strings.Contains(m.Log(fresh, "agent"), "bootstrapped") && strings.Contains(m.Log(fresh, "agent"), "data.json")
		})
		eventually(t, 60*time.Second, "the fresh node to resolve the mesh", func() bool { return m.resolvesTo(fresh, "node1.demo", Tunnel(1)) })
		eventually(t, 60*time.Second, "the mesh to resolve the fresh node", func() bool { return m.resolvesTo(1, "node9.demo", Tunnel(9)) })
		if members, _ := m.status(fresh)["members"].(float64); members < nodes-1 {
			t.Fatalf("the fresh node has %v gossip members", members)
		}
	})

	t.Run("3 an untrusted node damages nothing", func(t *testing.T) {
		before := settingsUpdated(m.status(1), "demo")
		var peers []string
		for i := 1; i <= 7; i++ {
			peers = append(peers, "http://["+Tunnel(i)+"]:7331")
		}
		out := m.MustExec(8, append([]string{m.helper, "forge", "--key", filepath.Join(m.dir(8), "node.key"), "--network", m.netA, "--victim", m.keys[2]}, peers...)...)
		if strings.Count(out, "200 OK") != 7 {
			t.Fatalf("the forged pushes did not reach the peers:\n%s", out)
		}
		// And a claim of node 2's name, through its own agent.
		m.hostsA[8] = append(m.hostsA[8], "node2")
		m.reload(8)
		eventually(t, 60*time.Second, "node 8's claim on node2.demo to be attested", func() bool {
			out, _ := m.dm("resolve", "node2.demo", "--json", "--control-socket", m.sock(1))
			return strings.Count(out, `"attested": true`) == 2
		})
		for _, i := range span(1, 7) {
			// Each peer got the forgeries, refused them, and said why.
			log := m.Log(i, "agent")
			if !strings.Contains(log, `msg=refused`) || !strings.Contains(log, "reason=bad-signature") {
				t.Fatalf("node %d did not log refusing the forged records", i)
			}
			if !m.resolvesTo(i, "node2.demo", Tunnel(2)) {
				t.Fatalf("node %d: node2.demo changed", i)
			}
			if got := settingsUpdated(m.status(i), "demo"); got != before {
				t.Fatalf("node %d: the network's settings changed: %s → %s", i, before, got)
			}
			hosts := m.mustDM("hosts", "--json", "--control-socket", m.sock(i))
			if strings.Contains(hosts, "fd6d:6573::bad") {
				t.Fatalf("node %d stores the forged host record", i)
			}
		}
	})

	t.Run("12 a member that cannot prove its key is refused", func(t *testing.T) {
		members := func(i int) float64 { n, _ := m.status(i)["members"].(float64); return n }
		before := map[int]float64{}
		for _, i := range all {
			before[i] = members(i)
		}
		name := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
		m.Start(tsaNode, "impostor", m.helper, "impostor", "--listen", fmt.Sprintf("[%s]:7947", Tunnel(tsaNode)), "--name", name,
			"["+Tunnel(1)+"]:7946", "["+Tunnel(2)+"]:7946")
		defer m.Stop(tsaNode, "impostor", "TERM")
		m.everywhere(60*time.Second, "the impostor refused, and the refusal logged", []int{1, 2}, func(i int) bool {
			return strings.Contains(m.Log(i, "agent"), "reason=bad-member-proof")
		})
		for _, i := range all {
			if got := members(i); got != before[i] {
				t.Errorf("node %d has %v gossip members with the impostor about, %v before", i, got, before[i])
			}
		}
	})

	t.Run("13 a removed WireGuard peer's names stop resolving at once, and come back with it", func(t *testing.T) {
		var pub, endpoint, allowed string
		for _, line := range strings.Split(m.MustExec(1, "wg", "show", "wg0", "dump"), "\n") {
			if f := strings.Fields(line); len(f) >= 4 && strings.Contains(f[3], Tunnel(3)+"/128") {
				pub, endpoint, allowed = f[0], f[2], f[3]
			}
		}
		if pub == "" {
			t.Fatal("node 1 has no WireGuard peer for node 3")
		}
		m.MustExec(1, "wg", "set", "wg0", "peer", pub, "remove")
		removed := time.Now()
		m.everywhere(60*time.Second, "node3.demo out of node 1's view after its peer was removed", []int{1}, func(i int) bool { return m.absent(1, "node3.demo") })
		t.Logf("node 1 stopped answering node3.demo %v after its WireGuard peer was removed", time.Since(removed).Round(100*time.Millisecond))
		m.MustExec(1, "wg", "set", "wg0", "peer", pub, "endpoint", endpoint, "allowed-ips", allowed)
		back := time.Now()
		m.everywhere(60*time.Second, "node3.demo back at node 1 with its peer", []int{1}, func(i int) bool { return m.resolvesTo(1, "node3.demo", Tunnel(3)) })
		t.Logf("node 1 answered node3.demo again %v after the peer came back", time.Since(back).Round(100*time.Millisecond))
	})

	t.Run("4 a banned key's names disappear everywhere", func(t *testing.T) {
		m.mustDM("settings", "--network", "demo", "--admin-key", m.adminA, "--ban", m.keys[7], "--control-socket", m.sock(1))
		m.everywhere(60*time.Second, "node7.demo gone everywhere", span(1, 6), func(i int) bool { return m.absent(i, "node7.demo") })
		for _, i := range span(1, 6) {
			if !m.resolvesTo(i, "node6.demo", Tunnel(6)) {
				t.Fatalf("node %d lost node6.demo with the ban", i)
			}
		}
	})
	t.Run("14 the tunnel address moves and the listeners follow, without a restart", func(t *testing.T) {
		moved := "fd6d:6573::55"
		// The other nodes route the new address to node 5's WireGuard peer
		// too; then node 5's interface trades its address for it.
		for _, i := range span(1, 6, 5) {
			for _, line := range strings.Split(m.MustExec(i, "wg", "show", "wg0", "dump"), "\n") {
				if f := strings.Fields(line); len(f) >= 4 && strings.Contains(f[3], Tunnel(5)+"/128") {
					m.MustExec(i, "wg", "set", "wg0", "peer", f[0], "allowed-ips", f[3]+","+moved+"/128")
				}
			}
		}
		pid := m.MustExec(5, "cat", filepath.Join(m.dir(5), "agent.pid"))
		m.MustExec(5, "ip", "addr", "add", moved+"/64", "dev", "wg0", "nodad")
		m.MustExec(5, "ip", "addr", "del", Tunnel(5)+"/64", "dev", "wg0")
		start := time.Now()
		m.everywhere(90*time.Second, "node5.demo at its new address", span(1, 6, 5), func(i int) bool { return m.resolvesTo(i, "node5.demo", moved) })
		t.Logf("node5.demo resolved to its new address everywhere %v after the move", time.Since(start).Round(100*time.Millisecond))
		eventually(t, 30*time.Second, "node 5 answering DNS on its new address", func() bool {
			out, _ := m.Exec(5, "kdig", "@"+moved, "node1.demo", "AAAA", "+short", "+timeout=2", "+retry=0")
			return strings.TrimSpace(out) == Tunnel(1)
		})
		if now := m.MustExec(5, "cat", filepath.Join(m.dir(5), "agent.pid")); now != pid {
			t.Fatalf("node 5's agent was restarted (pid %s, was %s)", now, pid)
		}
		if st := m.status(5); st["bind"] != moved {
			t.Fatalf("node 5's status: bind %v", st["bind"])
		}
	})
	// Up's cleanup tears the bed down and fails if anything is left.
}
