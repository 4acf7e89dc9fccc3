package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/data-mesher/data-mesher/control"
	"github.com/data-mesher/data-mesher/crdt"
	"github.com/data-mesher/data-mesher/mesh"
	"github.com/miekg/dns"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds dm-agent once per test run. DM_AGENT_BINARY runs the
// tests against another build instead (an older one, to see which of them
// it fails).
func binary(t testing.TB) string {
	if p := os.Getenv("DM_AGENT_BINARY"); p != "" {
		return p
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dm-agent-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "dm-agent")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestBadConfigNamesField(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"interface": "wg0", "networks": {"clan": {"pubkey": "not a key"}}}`), 0o644)
	out, err := exec.Command(binary(t), "run", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `networks."clan".pubkey`) {
		t.Fatalf("bad config: %v\n%s", err, out)
	}
}

func freePort(t testing.TB) int {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			u.Close()
			return p
		}
	}
}

// loopNode is a dm-agent process on loopback, with its files in dir.
type loopNode struct {
	dir, config, socket string
	dnsPort, httpPort   int
	metrics             string // loopback metrics and pprof
	key                 crdt.PrivateKey
	cmd                 *exec.Cmd
	log                 *syncBuffer
}

// syncBuffer is a log that tests read while the process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newLoopNode makes a node of the network whose admin key is admin, on
// 127.0.0.1, claiming "solo"; boot are its bootstrap peers.
func newLoopNode(t testing.TB, admin crdt.PublicKey, boot ...string) *loopNode {
	dir := t.TempDir()
	n := &loopNode{dir: dir, config: filepath.Join(dir, "config.json"), socket: filepath.Join(dir, "control.sock"), dnsPort: freePort(t),
		httpPort: freePort(t), metrics: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	var err error
	if n.key, err = agent.WriteKey(filepath.Join(dir, "node.key"), ""); err != nil {
		t.Fatal(err)
	}
	bootJSON, _ := json.Marshal(append([]string{}, boot...))
	cfg := fmt.Sprintf(`{"interface": "lo", "state_dir": %q, "hostnames": ["solo"], "bind_address": "127.0.0.1",
  "ports": {"gossip": %d, "http": %d, "dns": %d}, "control_socket": %q, "metrics_listen": %q, "log": {"level": "warn"},
  "networks": {"t": {"pubkey": %q, "bootstrap_peers": %s}}}`, dir, freePort(t), n.httpPort, n.dnsPort, n.socket, n.metrics, admin.AuthorizedKey(), bootJSON)
	if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *loopNode) start(t testing.TB) {
	n.cmd = exec.Command(binary(t), "run", "--config", n.config)
	n.cmd.Env = append(os.Environ(), os.Getenv("DM_CHILD_ENV"))
	n.log = &syncBuffer{}
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// client waits until the agent runs its mesh and returns a client of it.
func (n *loopNode) client(t testing.TB) *control.Client {
	c := control.NewClient(n.socket)
	deadline := time.Now().Add(15 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		s, err := c.Status(context.Background())
		if err == nil && s.Waiting == "" {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent never got ready: %v %+v\n%s", err, s, n.log)
		}
		time.Sleep(wait)
	}
}

func (n *loopNode) kill(sig syscall.Signal) {
	_ = n.cmd.Process.Signal(sig)
	_ = n.cmd.Wait()
}

// SIGKILL the agent 100 times while it takes writes: every time, the state
// file loads, and every record acknowledged before the kill is in it.
func TestKillDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("100 kills")
	}
	admin := crdtKey("admin")
	n := newLoopNode(t, admin.Public())
	set := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: time.Now(), Domain: "t", HostTTL: time.Hour}, admin))
	var acked []crdt.Hash
	seq := 0
	kills := 100
	if v := os.Getenv("DM_KILLS"); v != "" {
		kills, _ = strconv.Atoi(v)
	}
	for round := range kills {
		n.start(t)
		c := n.client(t)
		if round == 0 {
			if _, err := c.Publish(context.Background(), set); err != nil {
				t.Fatal(err)
			}
			acked = append(acked, set.Hash())
		}
		// Heavy writes: batches of new host records, each acknowledged only
		// once on disk; killed at a random moment.
		killAt := time.Now().Add(time.Duration(5+rand.IntN(60)) * time.Millisecond)
		var mu sync.Mutex
		writerDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			for time.Now().Before(killAt.Add(200 * time.Millisecond)) {
				var batch []*crdt.Record
				var hashes []crdt.Hash
				for range 5 {
					seq++
					k := crdtKey(fmt.Sprint("w", seq))
					h := must(crdt.SignHost(crdt.Host{Network: admin.Public(), Node: k.Public(), Heartbeat: time.Now(),
						Addresses: []netip.Addr{netip.AddrFrom16([16]byte{0xfd, 13: byte(seq >> 16), 14: byte(seq >> 8), 15: byte(seq)})}}, k))
					batch = append(batch, h)
					hashes = append(hashes, h.Hash())
				}
				if _, err := c.Publish(context.Background(), batch...); err != nil {
					return // killed mid-call: not acknowledged
				}
				mu.Lock()
				acked = append(acked, hashes...)
				mu.Unlock()
			}
		}()
		time.Sleep(time.Until(killAt))
		n.kill(syscall.SIGKILL)
		<-writerDone
		c.Close()
		// The state file loads, with its MAC, and holds every
		// acknowledged record.
		b, err := os.ReadFile(filepath.Join(n.dir, "state.bin"))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		entries, _, err := agent.DecodeState(b, n.key)
		if err != nil {
			t.Fatalf("round %d: state file does not load after SIGKILL: %v", round, err)
		}
		held := map[crdt.Hash]bool{}
		for _, e := range entries {
			held[e.Record.Hash()] = true
		}
		mu.Lock()
		for _, h := range acked {
			if !held[h] {
				t.Fatalf("round %d: acknowledged record %s lost", round, h.Short())
			}
		}
		mu.Unlock()
	}
	left, _ := filepath.Glob(filepath.Join(n.dir, ".state.bin.tmp-*"))
	// The next start clears what the kills left.
	n.start(t)
	n.client(t)
	n.kill(syscall.SIGTERM)
	after, _ := filepath.Glob(filepath.Join(n.dir, ".*.tmp-*"))
	if len(after) != 0 {
		t.Fatalf("temporary files survive a start: %v", after)
	}
	t.Logf("%d kills, %d acknowledged records, all kept; %d temporary files left by the kills, removed at the next start", kills, len(acked), len(left))
}

func crdtKey(name string) crdt.PrivateKey {
	seed := make([]byte, 32)
	copy(seed, name)
	return must(crdt.NewPrivateKeyFromSeed(seed))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkStartup10k: a node whose state file holds 10,000 hosts (each
// with a claim and a witness attestation). Reports the time from starting
// the process to its first DNS answer for one of those names (goal ≤ 1 s)
// and its resident memory once running (goal ≤ 64 MB).
func BenchmarkStartup10k(b *testing.B) {
	admin, w := crdtKey("admin"), crdtKey("witness")
	n := newLoopNode(b, admin.Public())
	now := time.Now()
	st := crdt.NewState(crdt.DefaultOptions(), admin.Public())
	set := must(crdt.SignSettings(crdt.Settings{Network: admin.Public(), Updated: now, Domain: "t", HostTTL: 24 * time.Hour,
		DNSTTL: time.Minute, Witnesses: []crdt.PublicKey{w.Public()}}, admin))
	recs := []*crdt.Record{set}
	for i := range 10000 {
		k := crdtKey(fmt.Sprint("host", i))
		addr := netip.AddrFrom16([16]byte{0xfd, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		c := must(crdt.SignClaim(crdt.Claim{Network: admin.Public(), Node: k.Public(), Name: fmt.Sprint("h", i), Created: now}, k))
		recs = append(recs, must(crdt.SignHost(crdt.Host{Network: admin.Public(), Node: k.Public(), Heartbeat: now,
			Addresses: []netip.Addr{addr}, HTTPPort: 7331}, k)), c, must(crdt.WitnessClaim(admin.Public(), c.Hash(), now, w)))
	}
	if res := st.IngestAll(recs, now); len(res.Rejected) > 0 {
		b.Fatal(res.Rejected[0])
	}
	if err := agent.WriteFileAtomic(filepath.Join(n.dir, "state.bin"), agent.EncodeState(st.Verified(admin.Public()), n.key), 0o600); err != nil {
		b.Fatal(err)
	}
	// A node that had been running: it had verified its peers.
	var verdicts []mesh.Verdict
	for _, h := range st.Hosts(admin.Public()) {
		verdicts = append(verdicts, mesh.Verdict{Network: admin.Public(), Node: h.Host().Node, Addr: h.Host().Addresses[0], Port: 7331, Checked: now})
	}
	if err := agent.WriteVerdictsFile(filepath.Join(n.dir, agent.VerdictsFile), slices.Values(verdicts), n.key); err != nil {
		b.Fatal(err)
	}
	var firsts []time.Duration
	var rssMBs []float64
	var first time.Duration
	var rssMB float64
	for b.Loop() {
		start := time.Now()
		n.start(b)
		q := new(dns.Msg)
		q.SetQuestion("h4242.t.", dns.TypeAAAA)
		for {
			m, _, err := (&dns.Client{Timeout: 200 * time.Millisecond}).Exchange(q, "127.0.0.1:"+strconv.Itoa(n.dnsPort))
			if err == nil && len(m.Answer) == 1 {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("no answer after 30 s\n%s", n.log)
			}
			time.Sleep(2 * time.Millisecond)
		}
		first = time.Since(start)
		firsts = append(firsts, first)
		// Resident memory once the node has settled (past the first heap
		// bound, 10 s after start).
		ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
		<-ctx.Done()
		cancel()
		if p := os.Getenv("DM_HEAP_PROFILE"); p != "" {
			if out, err := exec.Command("curl", "-s", "-o", p, "http://"+n.metrics+"/debug/pprof/heap").CombinedOutput(); err != nil {
				b.Logf("heap profile: %v %s", err, out)
			}
		}
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.Atoi(f[1])
				rssMB = float64(kb) / 1024
			}
		}
		rssMBs = append(rssMBs, rssMB)
		n.kill(syscall.SIGTERM)
	}
	if os.Getenv("DM_CHILD_ENV") != "" {
		b.Log(n.log.String())
	}
	slices.Sort(firsts)
	slices.Sort(rssMBs)
	b.ReportMetric(float64(firsts[len(firsts)/2].Milliseconds()), "median-ms-to-first-answer")
	b.ReportMetric(rssMBs[len(rssMBs)/2], "median-RSS-MB")
}

// TestKeygenNeverOverwrites: keygen refuses to replace a key, and
// --if-missing keeps the existing one and prints its public half (the
// NixOS unit runs it before every start).
func TestKeygenNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	run := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := mainArgs(append([]string{"keygen", "--out", path}, args...), &out, &errb)
		return strings.TrimSpace(out.String() + errb.String()), code
	}
	first, code := run("--comment", "mors")
	if code != 0 || !strings.HasPrefix(first, "ssh-ed25519 ") {
		t.Fatalf("first keygen: exit %d, %s", code, first)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if out, code := run(); code == 0 {
		t.Errorf("keygen over an existing key succeeded: %s", out)
	}
	again, code := run("--if-missing")
	if code != 0 || !strings.HasPrefix(first, again) {
		t.Errorf("--if-missing: exit %d, printed %q, want the existing key %q", code, again, first)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the key file changed")
	}
}

// `network create --publish` never silently replaces settings the agent
// already has (they carry the network's bans, overrides and extra
// records); --replace does, on purpose, and only once the agent has
// synced with a peer, or with --force.
func TestNetworkCreateKeepsExistingSettings(t *testing.T) {
	dir := t.TempDir()
	adminKey := filepath.Join(dir, "admin.key")
	admin, err := agent.WriteKey(adminKey, "admin")
	if err != nil {
		t.Fatal(err)
	}
	n := newLoopNode(t, admin.Public())
	n.start(t)
	defer n.kill(syscall.SIGTERM)
	n.client(t)

	run := func(args ...string) (string, int) {
		r := dm(t, append([]string{"network", "create", "--domain", "t", "--admin-key", adminKey, "--config", n.config, "--publish"}, args...)...)
		return r.stdout + r.stderr, r.code
	}
	show := func() string {
		r := dm(t, "settings", "--network", "t", "--config", n.config, "--show", "--json")
		if r.code != 0 {
			t.Fatalf("settings --show: exit %d: %s", r.code, r.stderr)
		}
		var v struct {
			Updated   time.Time `json:"updated"`
			Witnesses []string  `json:"witnesses"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("settings --show --json: %v\n%s", err, r.stdout)
		}
		return fmt.Sprint(v.Updated.UnixNano(), v.Witnesses)
	}

	pub := n.key.Public().AuthorizedKey()
	if out, code := run("--witness", pub); code != 0 {
		t.Fatalf("first network create: exit %d: %s", code, out)
	}
	first := show()
	if !strings.Contains(first, pub) {
		t.Fatalf("the published settings do not name the witness: %s", first)
	}
	out, code := run()
	if code == 0 || !strings.Contains(out, "already has settings") || !strings.Contains(out, "--replace") {
		t.Errorf("second network create: exit %d: %s; want a refusal naming --replace", code, out)
	}
	if again := show(); again != first {
		t.Errorf("refused, yet the settings changed: %s, was %s", again, first)
	}
	// A lone agent has synced with nobody: --replace alone is refused.
	out, code = run("--replace")
	if code != 1 || !strings.Contains(out, "has not synced with a peer since it started") || !strings.Contains(out, "--force") {
		t.Errorf("network create --replace on an unsynced agent: exit %d: %s; want a refusal naming --force", code, out)
	}
	if again := show(); again != first {
		t.Errorf("refused, yet the settings changed: %s, was %s", again, first)
	}
	if out, code := run("--replace", "--force"); code != 0 {
		t.Fatalf("network create --replace --force: exit %d: %s", code, out)
	}
	if replaced := show(); replaced == first || strings.Contains(replaced, pub) {
		t.Errorf("--replace did not publish the new settings (without the witness): %s", replaced)
	}
}

// result is what a run of the dm-agent binary did.
type result struct {
	stdout, stderr string
	code           int
}

// dm runs the real binary with args, with DM_* variables and NO_COLOR
// cleared unless env sets them.
func dm(t testing.TB, args ...string) result {
	t.Helper()
	return dmEnv(t, nil, args...)
}

func dmEnv(t testing.TB, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "DM_") && !strings.HasPrefix(e, "NO_COLOR=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("dm-agent %s: %v", strings.Join(args, " "), err)
	}
	return result{out.String(), errb.String(), code}
}
