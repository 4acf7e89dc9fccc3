//go:build e2e

package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dbBed is a test bed for the database: nodes 1–3 are the mesh's honest
// nodes (1 and 2 its witnesses, 2 and 3 run sshd and publish their host
// keys), node 4 a member that tries what an untrusted node can.
type dbBed struct {
	*Bed
	t            *testing.T
	bin, helper  string
	work         string
	net, admin   string // the network key, the admin key file
	keys         map[int]string
	sshd, client string // sshd's binary; the ssh client key
}

const dbNodes = 4

func (d *dbBed) dir(i int) string  { return filepath.Join(d.Dir, fmt.Sprint(i)) }
func (d *dbBed) sock(i int) string { return filepath.Join(d.dir(i), "control.sock") }

type cli struct {
	out, errs string
	code      int
}

// dm runs the command line against node i's agent.
func (d *dbBed) dm(i int, args ...string) cli {
	d.t.Helper()
	cmd := exec.Command(d.bin, append(args, "--control-socket", d.sock(i))...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return cli{out.String(), errb.String(), code}
}

func (d *dbBed) mustDM(i int, args ...string) string {
	d.t.Helper()
	r := d.dm(i, args...)
	if r.code != 0 {
		d.t.Fatalf("node %d: dm-agent %s: exit %d\n%s%s", i, strings.Join(args, " "), r.code, r.out, r.errs)
	}
	return r.out
}

func (d *dbBed) config(i int) {
	d.t.Helper()
	n := map[string]any{"pubkey": d.net, "hostnames": []string{fmt.Sprintf("node%d", i)}}
	if i != 1 {
		n["bootstrap_peers"] = []string{"http://[" + Tunnel(1) + "]:7331"}
	}
	if i == 2 || i == 3 {
		n["publish"] = []map[string]string{{"namespace": "ssh.host-keys", "key": "ssh-ed25519", "value_file": filepath.Join(d.dir(i), "ssh_host_ed25519_key.pub")}}
	}
	cfg := map[string]any{
		"interface": "wg0", "state_dir": filepath.Join(d.dir(i), "state"), "key_file": filepath.Join(d.dir(i), "node.key"),
		"control_socket": d.sock(i), "metrics_listen": "off", "sync_interval": "1s", "reachability_ttl": "20s",
		"networks": map[string]any{"db": n},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(d.dir(i), "config.json"), b, 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// on waits until check holds on every listed node.
func (d *dbBed) on(timeout time.Duration, what string, nodes []int, check func(i int) bool) {
	d.t.Helper()
	waitOn(d.t, timeout, what, nodes, check, func(i int) string { return tail(d.Log(i, "agent"), 2500) })
}

// get is what node i's `data get` prints and its exit code.
func (d *dbBed) get(i int, ns, key string, extra ...string) (string, int) {
	r := d.dm(i, append([]string{"data", "get", ns, key, "--network", "db"}, extra...)...)
	return r.out, r.code
}

// ownerDir is an owner's directory in the files view.
func ownerDir(key string) string {
	f := strings.Fields(key)
	raw, _ := base64.StdEncoding.DecodeString(f[1])
	return base64.RawURLEncoding.EncodeToString(raw[len(raw)-32:])
}

// watcher runs `data watch` on node i and collects its lines.
type watcher struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
}

func (d *dbBed) watch(i int, ns string) *watcher {
	w := &watcher{cmd: exec.Command(d.bin, "data", "watch", ns, "--network", "db", "--control-socket", d.sock(i))}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			w.mu.Unlock()
		}
	}()
	d.t.Cleanup(func() { _ = w.cmd.Process.Kill(); _ = w.cmd.Wait() })
	return w
}

func (w *watcher) saw(parts ...string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

// stop sends SIGTERM and returns the watch's exit error.
func (w *watcher) stop() error {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	return w.cmd.Wait()
}

func (d *dbBed) kdig(i int, name, qtype string) string {
	out, _ := d.Exec(i, "kdig", "@"+Tunnel(i), name, qtype, "+short", "+timeout=2", "+retry=0")
	return strings.TrimSpace(out)
}

// startSSHD runs sshd on node i's tunnel address with the host key in
// keyFile, letting the test's client key log in as root.
func (d *dbBed) startSSHD(i int, keyFile string) {
	d.t.Helper()
	cfg := filepath.Join(d.dir(i), "sshd_config")
	text := fmt.Sprintf("ListenAddress %s\nPort 22\nHostKey %s\nPidFile %s\nAuthorizedKeysFile %s\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n",
		Tunnel(i), keyFile, filepath.Join(d.dir(i), "sshd.pid"), filepath.Join(d.dir(i), "authorized_keys"))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		d.t.Fatal(err)
	}
	d.Start(i, "sshd", d.sshd, "-D", "-e", "-f", cfg)
}

// ssh connects from node from to name as root with StrictHostKeyChecking
// and only the agent's known_hosts, never prompting.
func (d *dbBed) ssh(from int, name string) (string, error) {
	return d.Exec(from, "ssh", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
		"-o", "UserKnownHostsFile="+filepath.Join(d.dir(from), "state", "known_hosts"), "-o", "GlobalKnownHostsFile=/dev/null",
		"-i", d.client, "root@"+name, "echo", "hello-from-"+name)
}

func TestDatabase(t *testing.T) {
	requireE2E(t)
	for _, tool := range []string{"kdig", "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/test installs knot-dnsutils and openssh-server)", tool)
		}
	}
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
		if _, err := os.Stat(sshd); err != nil {
			t.Fatal("sshd is needed (scripts/test installs openssh-server)")
		}
	}
	work := t.TempDir()
	d := &dbBed{t: t, bin: build(t, work, "cmd/dm-agent"), helper: build(t, work, "scripts/e2ehelper"), work: work,
		keys: map[int]string{}, sshd: sshd, client: filepath.Join(work, "client")}
	d.Bed = Up(t, dbNodes)
	d.admin = filepath.Join(work, "admin.key")
	for i := 1; i <= dbNodes; i++ {
		d.keys[i] = strings.TrimSpace(runOK(t, d.bin, "keygen", "--out", filepath.Join(d.dir(i), "node.key")))
	}
	out := runOK(t, d.bin, "network", "create", "--domain", "db", "--admin-key", d.admin, "--witness", d.keys[1], "--witness", d.keys[2],
		"--out", d.admin+".json")
	for _, l := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(l, "pubkey: "); ok {
			d.net = k
		}
	}
	// Host keys for the two sshd nodes, and the client's key.
	runOK(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d.client)
	for _, i := range []int{2, 3} {
		runOK(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", fmt.Sprintf("root@node%d", i), "-f", filepath.Join(d.dir(i), "ssh_host_ed25519_key"))
		pub, _ := os.ReadFile(d.client + ".pub")
		os.WriteFile(filepath.Join(d.dir(i), "authorized_keys"), pub, 0o600)
	}
	os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory
	for i := 1; i <= dbNodes; i++ {
		d.config(i)
		d.Start(i, "agent", d.bin, "run", "--config", filepath.Join(d.dir(i), "config.json"))
	}
	all, honest := []int{1, 2, 3, 4}, []int{1, 2, 3}
	d.on(30*time.Second, "every agent's control socket", all, func(i int) bool { return d.dm(i, "status").code == 0 })
	d.mustDM(1, "settings", "--network", "db", "--admin-key", d.admin, "--from", d.admin+".json")
	d.on(60*time.Second, "node 1 synced with the mesh", []int{1}, func(i int) bool {
		var s struct{ Synced bool }
		json.Unmarshal([]byte(d.dm(1, "status", "--json").out), &s)
		return s.Synced
	})
	spaces := []string{"notes writers=owner policy=lww", "claims writers=members policy=fww", "tags writers=members policy=orset lifetime=24h",
		"seen writers=members policy=gset", "dns.aliases writers=admin policy=lww", "dns.services writers=owner policy=lww",
		"ssh.host-keys writers=owner policy=lww", "dns.records writers=admin policy=lww"}
	args := []string{"settings", "--network", "db", "--admin-key", d.admin}
	for _, s := range spaces {
		args = append(args, "--namespace", s)
	}
	d.mustDM(1, args...)
	d.on(60*time.Second, "the namespaces declared on every node", all, func(i int) bool {
		return strings.Count(d.dm(i, "data", "list", "--network", "db").out, "\n") == len(spaces)+1
	})
	d.on(90*time.Second, "every node resolving every node", all, func(i int) bool {
		for j := 1; j <= dbNodes; j++ {
			if d.kdig(i, fmt.Sprintf("node%d.db", j), "AAAA") != Tunnel(j) {
				return false
			}
		}
		return true
	})

	t.Run("a put is visible everywhere: get, the files view, watch; a delete removes it everywhere", func(t *testing.T) {
		watchers := map[int]*watcher{}
		for _, i := range []int{1, 3, 4} {
			watchers[i] = d.watch(i, "notes")
		}
		// The watches start before the put; wait until each answers one
		// change of its own (a key nobody else reads).
		d.on(30*time.Second, "the watches running", []int{1, 3, 4}, func(i int) bool {
			d.dm(i, "data", "put", "notes", fmt.Sprintf("ready-%d", i), "x", "--network", "db")
			return watchers[i].saw(fmt.Sprintf(`"key":"ready-%d"`, i))
		})
		put := time.Now()
		d.mustDM(2, "data", "put", "notes", "motd", "hello mesh", "--network", "db")
		file := func(i int) string {
			return filepath.Join(d.dir(i), "state", "data", "db", "notes", ownerDir(d.keys[2]), "motd")
		}
		d.on(60*time.Second, "the put in get, the files view and the watch", []int{1, 3, 4}, func(i int) bool {
			v, code := d.get(i, "notes", "motd", "--owner", d.keys[2])
			b, _ := os.ReadFile(file(i))
			return code == 0 && v == "hello mesh" && string(b) == "hello mesh" && watchers[i].saw(`"key":"motd"`, `"value":"hello mesh"`)
		})
		t.Logf("a put on node 2 was in get, the files view and the watch of nodes 1, 3 and 4 %v later", time.Since(put).Round(100*time.Millisecond))
		d.mustDM(2, "data", "delete", "notes", "motd", "--network", "db")
		d.on(60*time.Second, "the delete everywhere", []int{1, 3, 4}, func(i int) bool {
			_, code := d.get(i, "notes", "motd", "--owner", d.keys[2])
			_, err := os.Stat(file(i))
			return code == 3 && os.IsNotExist(err) && watchers[i].saw(`"key":"motd"`, `"deleted":true`)
		})
		for i, w := range watchers {
			if err := w.stop(); err != nil {
				t.Errorf("node %d: data watch after SIGTERM: %v, want exit 0", i, err)
			}
		}
	})

	t.Run("forged and unauthorized writes are refused with their reasons and not forwarded", func(t *testing.T) {
		var peers []string
		for _, i := range honest {
			peers = append(peers, "http://["+Tunnel(i)+"]:7331")
		}
		out := d.MustExec(4, append([]string{d.helper, "forge-entry", "--key", filepath.Join(d.dir(4), "node.key"), "--network", d.net,
			"--victim", d.keys[2]}, peers...)...)
		if strings.Count(out, "200 OK") != len(honest) {
			t.Fatalf("the forged pushes did not reach the peers:\n%s", out)
		}
		d.on(30*time.Second, "each refusal logged with its reason", honest, func(i int) bool {
			log := d.Log(i, "agent")
			return strings.Contains(log, "reason=bad-signature") && strings.Contains(log, "reason=not-writer")
		})
		for _, i := range all {
			if _, code := d.get(i, "dns.aliases", "evil"); code != 3 {
				t.Errorf("node %d holds the forged alias", i)
			}
			if _, code := d.get(i, "notes", "forged", "--owner", d.keys[2]); code != 3 {
				t.Errorf("node %d holds the entry forged in node 2's name", i)
			}
		}
		// Through the agents: a writer the namespace does not admit, and a
		// delete by one who may not delete.
		if r := d.dm(3, "data", "put", "dns.aliases", "x", "node3", "--network", "db"); r.code != 1 || !strings.Contains(r.errs, "not-writer") {
			t.Errorf("a node writing the admin's namespace: exit %d: %s", r.code, r.errs)
		}
		d.mustDM(2, "data", "put", "tags", "role", "web", "--network", "db")
		d.on(60*time.Second, "node 2's tag on node 3", []int{3}, func(i int) bool { v, _ := d.get(3, "tags", "role"); return v == "web\n" })
		if r := d.dm(3, "data", "delete", "tags", "role", "--owner", d.keys[2], "--network", "db"); r.code != 1 || !strings.Contains(r.errs, "may-not-delete") {
			t.Errorf("a delete of another writer's element: exit %d: %s", r.code, r.errs)
		}
	})

	t.Run("a rival write on a first-writer-wins key is stored but loses, the same on every node", func(t *testing.T) {
		d.mustDM(2, "data", "put", "claims", "leader", "node2", "--network", "db")
		d.on(60*time.Second, "node 2 holding the key everywhere", all, func(i int) bool { v, _ := d.get(i, "claims", "leader"); return v == "node2" })
		d.mustDM(3, "data", "put", "claims", "leader", "node3", "--network", "db")
		d.on(60*time.Second, "the rival stored, attested and losing everywhere", all, func(i int) bool {
			var l struct {
				Keys []struct {
					Items []struct {
						Value    string
						Standing string
					}
				}
			}
			json.Unmarshal([]byte(d.dm(i, "data", "get", "claims", "leader", "--network", "db", "--json").out), &l)
			return len(l.Keys) == 1 && len(l.Keys[0].Items) == 2 && l.Keys[0].Items[0].Value == "node2" && l.Keys[0].Items[0].Standing == "holds" &&
				l.Keys[0].Items[1].Value == "node3" && l.Keys[0].Items[1].Standing == "later"
		})
	})

	t.Run("a tombstone replayed after a later add leaves the add standing", func(t *testing.T) {
		d.mustDM(2, "data", "put", "tags", "color", "red", "--network", "db")
		d.mustDM(2, "data", "delete", "tags", "color", "--network", "db")
		stale := filepath.Join(work, "stale.json")
		export := d.mustDM(2, "export", "--network", "db")
		if !strings.Contains(export, `"removes"`) {
			t.Fatalf("the export holds no tombstone to replay:\n%s", export)
		}
		os.WriteFile(stale, []byte(export), 0o644)
		d.mustDM(2, "data", "put", "tags", "color", "red", "--network", "db") // a later add
		d.on(60*time.Second, "the later add everywhere", all, func(i int) bool { v, _ := d.get(i, "tags", "color"); return v == "red\n" })
		var peers []string
		for _, i := range all {
			peers = append(peers, "http://["+Tunnel(i)+"]:7331")
		}
		// Each peer ingests the pushed records before it answers the push.
		if out := d.MustExec(3, append([]string{d.helper, "push", "--file", stale}, peers...)...); strings.Count(out, "200 OK") != len(all) {
			t.Fatalf("the replay did not reach every node:\n%s", out)
		}
		for _, i := range all {
			if v, code := d.get(i, "tags", "color"); code != 0 || v != "red\n" {
				t.Errorf("node %d after the replayed tombstone: %q (exit %d)", i, v, code)
			}
		}
	})

	t.Run("services answer SRV; two admins' edits of different names at once both stand", func(t *testing.T) {
		d.mustDM(2, "data", "put", "dns.services", "_ssh._tcp", "22", "--network", "db")
		d.on(60*time.Second, "the SRV of node 2's ssh everywhere", all, func(i int) bool {
			return d.kdig(i, "_ssh._tcp.node2.db", "SRV") == "0 0 22 node2.db."
		})
		// The admin key on two machines, two aliases and two records at the
		// same moment: each name is its own entry, so neither erases the
		// other (the settings are one record: the later would).
		var wg sync.WaitGroup
		for _, e := range []struct {
			node int
			args []string
		}{
			{1, []string{"data", "put", "dns.aliases", "wiki", "node1", "--admin-key", d.admin, "--network", "db"}},
			{3, []string{"data", "put", "dns.aliases", "mail", "node3", "--admin-key", d.admin, "--network", "db"}},
			{1, []string{"settings", "--network", "db", "--admin-key", d.admin, "--extra", "printer AAAA fd00::99"}},
			{3, []string{"settings", "--network", "db", "--admin-key", d.admin, "--extra", "scanner AAAA fd00::98"}},
		} {
			wg.Add(1)
			go func() { defer wg.Done(); d.mustDM(e.node, e.args...) }()
		}
		wg.Wait()
		d.on(60*time.Second, "both aliases and both records on every node", all, func(i int) bool {
			return strings.Contains(d.kdig(i, "wiki.db", "CNAME"), "node1.db.") && strings.Contains(d.kdig(i, "mail.db", "CNAME"), "node3.db.") &&
				d.kdig(i, "printer.db", "AAAA") == "fd00::99" && d.kdig(i, "scanner.db", "AAAA") == "fd00::98"
		})
	})

	t.Run("ssh to a mesh name connects with its published key, and refuses a swapped one", func(t *testing.T) {
		for _, i := range []int{2, 3} {
			d.startSSHD(i, filepath.Join(d.dir(i), "ssh_host_ed25519_key"))
		}
		// ssh on node 1 resolves through node 1's agent.
		netnsDir := filepath.Join("/etc/netns", d.Prefix+"-1")
		if err := os.MkdirAll(netnsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(netnsDir) })
		os.WriteFile(filepath.Join(netnsDir, "resolv.conf"), []byte("nameserver "+Tunnel(1)+"\n"), 0o644)
		known := filepath.Join(d.dir(1), "state", "known_hosts")
		d.on(60*time.Second, "node 2's and 3's keys in node 1's known_hosts", []int{1}, func(int) bool {
			b, _ := os.ReadFile(known)
			return strings.Contains(string(b), "node2.db,"+Tunnel(2)+" ssh-ed25519 ") && strings.Contains(string(b), "node3.db,"+Tunnel(3)+" ssh-ed25519 ")
		})
		var out string
		d.on(30*time.Second, "ssh node2.db from node 1", []int{1}, func(int) bool {
			var err error
			out, err = d.ssh(1, "node2.db")
			return err == nil && strings.Contains(out, "hello-from-node2.db")
		})
		// A host key that was never published: ssh refuses.
		d.Stop(2, "sshd", "TERM")
		other := filepath.Join(d.dir(2), "other_host_key")
		runOK(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other)
		d.startSSHD(2, other)
		d.on(30*time.Second, "ssh refusing node 2's swapped key", []int{1}, func(int) bool {
			out, err = d.ssh(1, "node2.db")
			return err != nil && strings.Contains(out, "Host key verification failed")
		})
		t.Logf("ssh node2.db with a key node 2 never published: %s", strings.TrimSpace(out))
		// A host that fails the reachability challenge has no line: node 3
		// claims an address no WireGuard peer routes to it.
		d.MustExec(3, "ip", "addr", "add", "fd6d:6573::33/64", "dev", "wg0", "nodad")
		d.on(60*time.Second, "node 3's line gone from node 1's known_hosts", []int{1}, func(int) bool {
			b, _ := os.ReadFile(known)
			return !strings.Contains(string(b), "node3.db")
		})
		d.MustExec(3, "ip", "addr", "del", "fd6d:6573::33/64", "dev", "wg0")
		d.on(60*time.Second, "node 3's line back", []int{1}, func(int) bool {
			b, _ := os.ReadFile(known)
			return strings.Contains(string(b), "node3.db,"+Tunnel(3))
		})
	})
}

// runOK runs a command on the host and returns its output.
func runOK(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
