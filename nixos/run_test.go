package nixos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// eventually calls cond until it holds or the time is up, then fails
// with what cond last said.
func eventually(t *testing.T, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePorts returns n ports of 127.0.0.1 that are free for TCP and UDP
// now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var held []func() error
	defer func() {
		for _, c := range held {
			c()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l.Close)
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		held = append(held, u.Close)
		ports = append(ports, p)
	}
	return ports
}

// machineOnLoopback is one machine of network test (the VM test's admin
// key) with the module's features on: an SSH host key published, a
// service, the admin's unit with an alias, creating the settings. Its
// agent runs on loopback, unprivileged, on the given ports.
func machineOnLoopback(hostKey string, ports []int) string {
	adminPub := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBiMK63N64sS+q+qiVle4yBXisk1ZK9GRUT62Ik968DI"
	return fmt.Sprintf(`service = "data-mesher"; config = { ... }: {
	  services.openssh = { enable = true; hostKeys = [ { type = "ed25519"; path = %q; } ]; };
	  services.data-mesher = {
	    enable = true;
	    interface = "lo";
	    ports = { gossip = %d; http = %d; dns = %d; };
	    metricsListen = "off";
	    settings.bind_address = "127.0.0.1";
	    services.ssh.port = 22;
	    networks.test = {
	      pubkey = %q;
	      admin = { keyFile = "/run/keys/test-admin"; createSettings = true; aliases.wiki = "gate"; };
	    };
	  };
	};`, hostKey, ports[0], ports[1], ports[2], adminPub)
}

// TestNixAgentAsTheModuleRunsIt runs the real dm-agent (built from this
// repository) with the configuration the module renders and the unit's
// state directory mode and umask, on loopback, and the admin's unit
// script against it with the real command line: the script creates the
// network's settings with the well-known namespaces and writes the alias;
// the agent then publishes the machine's SSH host key and its service
// from the configuration; and the files it writes have the modes that let
// the agent's group read dns.json and the files view, everyone read
// known_hosts, and nobody but the agent read node.key and state.bin. Run
// again on an agent that has not synced with a peer, the script declares
// nothing new and leaves the aliases alone (it fails, to retry).
func TestNixAgentAsTheModuleRunsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs dm-agent")
	}
	n := newNix(t)
	needJQ(t)
	dir := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		unavailable(t, "go is not on PATH")
	}
	bin := filepath.Join(dir, "dm-agent")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/dm-agent")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if err := os.WriteFile(hostKey+".pub", []byte(gateKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 3)
	m := evalMachine(t, n, machineOnLoopback(hostKey, ports))
	if len(m.FailedAssertions) > 0 {
		t.Fatalf("failed assertions: %v", m.FailedAssertions)
	}
	sc := m.Unit.ServiceConfig

	// The unit's directories, here instead of /var/lib and /run.
	state, run := filepath.Join(dir, "var-lib-data-mesher"), filepath.Join(dir, "run-data-mesher")
	local := strings.NewReplacer("/var/lib/data-mesher", state, "/run/data-mesher", run, stubStore+"data-mesher/bin/dm-agent", bin)
	for d, mode := range map[string]any{state: sc["StateDirectoryMode"], run: sc["RuntimeDirectoryMode"]} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, fs.FileMode(octal(t, mode))); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(local.Replace(m.ConfigFile.Text)), 0o644); err != nil {
		t.Fatal(err)
	}
	// As the unit runs them: its umask, ExecStartPre, then ExecStart.
	umask := fmt.Sprint(sc["UMask"])
	unitCmd := func(ctx context.Context, line string) *exec.Cmd {
		line = strings.Replace(local.Replace(line), "/etc/data-mesher/config.json", cfg, 1)
		return exec.CommandContext(ctx, "sh", "-c", "umask "+umask+"; exec "+line)
	}
	for _, pre := range strs(sc["ExecStartPre"]) {
		if out, err := unitCmd(context.Background(), pre).CombinedOutput(); err != nil {
			t.Fatalf("ExecStartPre %s: %v\n%s", pre, err, out)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	agent := unitCmd(ctx, strs(sc["ExecStart"])[0])
	var log bytes.Buffer
	agent.Stdout, agent.Stderr = &log, &log
	agent.Cancel = func() error { return agent.Process.Signal(syscall.SIGTERM) }
	agent.WaitDelay = 10 * time.Second
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		agent.Wait()
		if t.Failed() {
			t.Logf("dm-agent's log:\n%s", log.String())
		}
	})
	dm := func(args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), "DM_CONFIG="+cfg)
		out, err := c.Output()
		return string(out), err
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		_, err := dm("status")
		return err == nil, fmt.Sprintf("dm-agent status: %v", err)
	})

	// The admin's unit, with the admin key as its credential.
	creds, adminState := filepath.Join(dir, "creds"), filepath.Join(dir, "admin-state")
	for _, d := range []string{creds, adminState} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	key, err := os.ReadFile(filepath.Join("test-keys", "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(creds, "network-key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	u := m.Units["data-mesher-settings-test"]
	if lc := strs(u.ServiceConfig["LoadCredential"]); !slices.Equal(lc, []string{"network-key:/run/keys/test-admin"}) {
		t.Errorf("LoadCredential = %v", lc)
	}
	shims := filepath.Join(dir, "shims")
	if err := os.Mkdir(shims, 0o755); err != nil {
		t.Fatal(err)
	}
	// A lone agent never syncs: its five minutes of polls are one here.
	for name, body := range map[string]string{"sleep": "", "seq": "echo 1"} {
		if err := os.WriteFile(filepath.Join(shims, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := standIns(t, shims, u.Script, map[string]string{
		"data-mesher/bin/dm-agent": `exec ` + bin + ` "$@"`,
		"jq/bin/jq":                `exec jq "$@"`,
	})
	runAdmin := func() (string, error) {
		c := exec.Command("bash", "-e", "-c", script)
		c.Env = append(os.Environ(), "PATH="+shims+":"+os.Getenv("PATH"), "DM_CONFIG="+cfg,
			"STATE_DIRECTORY="+adminState, "CREDENTIALS_DIRECTORY="+creds)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := runAdmin(); err != nil {
		t.Fatalf("the admin's script: %v\n%s", err, out)
	}

	// The settings it created declare the well-known namespaces.
	out, err := dm("settings", "--network", "test", "--show", "--json")
	if err != nil {
		t.Fatalf("settings --show: %v", err)
	}
	var set struct {
		Domain     string
		Namespaces []struct{ Name, Writers, Policy string }
	}
	if err := json.Unmarshal([]byte(out), &set); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(set.Namespaces); set.Domain != "test" ||
		got != "[{dns.aliases admin lww} {dns.records admin lww} {dns.services owner lww} {ssh.host-keys owner lww}]" {
		t.Errorf("the settings: domain %s, namespaces %s", set.Domain, got)
	}
	if v, err := dm("data", "get", "--network", "test", "dns.aliases", "wiki"); err != nil || v != "gate" {
		t.Errorf("dns.aliases wiki holds %q (%v), want gate", v, err)
	}
	// What the configuration publishes, once the namespaces exist.
	for _, e := range [][3]string{{"dns.services", "_ssh._tcp", "0 0 22"}, {"ssh.host-keys", "ssh-ed25519", gateKey + "\n"}} {
		eventually(t, 20*time.Second, func() (bool, string) {
			v, err := dm("data", "get", "--network", "test", e[0], e[1])
			return err == nil && v == e[2], fmt.Sprintf("%s %s holds %q (%v), want %q", e[0], e[1], v, err, e[2])
		})
	}

	// The files, and who may read them.
	node, err := crdt.ParsePublicKey(strings.TrimSpace(string(must(os.ReadFile(filepath.Join(state, "node.key.pub"))))))
	if err != nil {
		t.Fatal(err)
	}
	owner := strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(node.String()), "=")
	data := filepath.Join(state, "data")
	want := map[string]fs.FileMode{
		state:                              0o751 | fs.ModeDir,
		"node.key":                         0o600,
		"state.bin":                        0o600,
		"dns.json":                         0o640,
		"known_hosts":                      0o644,
		data:                               0o750 | fs.ModeDir,
		"data/test":                        0o750 | fs.ModeDir,
		"data/test/dns.aliases":            0o750 | fs.ModeDir,
		"data/test/dns.aliases/wiki":       0o640,
		"data/test/dns.services/" + owner:  0o750 | fs.ModeDir,
		"data/test/ssh.host-keys/" + owner: 0o750 | fs.ModeDir,
		"data/test/dns.services/" + owner + "/_ssh._tcp": 0o640,
	}
	for p, mode := range want {
		if !filepath.IsAbs(p) {
			p = filepath.Join(state, p)
		}
		eventually(t, 20*time.Second, func() (bool, string) {
			st, err := os.Stat(p)
			return err == nil && st.Mode() == mode, fmt.Sprintf("%s: %v, want %v (%v)", p, modeOf(st), mode, err)
		})
	}
	// The group reads what the agent writes for other services; others
	// pass through the state directory to known_hosts only.
	if got := string(must(os.ReadFile(filepath.Join(data, "test", "dns.aliases", "wiki")))); got != "gate" {
		t.Errorf("the files view's dns.aliases/wiki holds %q", got)
	}
	if !slices.Equal(m.KnownHostsFiles, []string{"/var/lib/data-mesher/known_hosts"}) {
		t.Errorf("ssh reads %v", m.KnownHostsFiles)
	}

	// Again, on an agent that has not synced with a peer since it started
	// (it has none): nothing new to declare, so dm-agent publishes
	// nothing, and the aliases wait.
	before, _ := dm("data", "get", "--network", "test", "dns.aliases", "wiki", "--json")
	out, err = runAdmin()
	if err == nil || !strings.Contains(out, "nothing signed, nothing published") || !strings.Contains(out, "the aliases wait") {
		t.Errorf("second run, not synced: %v\n%s", err, out)
	}
	if after, _ := dm("data", "get", "--network", "test", "dns.aliases", "wiki", "--json"); after != before {
		t.Errorf("the alias was written again:\n%s\n%s", before, after)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func modeOf(st fs.FileInfo) string {
	if st == nil {
		return "missing"
	}
	return st.Mode().String() + " (" + strconv.FormatUint(uint64(st.Mode().Perm()), 8) + ")"
}
