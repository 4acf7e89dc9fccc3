package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/control"
)

// The data commands on a running agent: the admin declares namespaces, the
// node puts, gets, lists and deletes; "get" of a key that holds nothing
// exits 3; a write the namespace does not admit is refused with its reason
// and exits 1; --json gives the control API's objects.
func TestDataCommands(t *testing.T) {
	n, adminKey := soloNode(t)
	run := func(args ...string) result {
		t.Helper()
		return dm(t, append(args, "--config", n.config)...)
	}
	if r := run("settings", "--network", "t", "--admin-key", adminKey, "--force",
		"--namespace", "notes writers=owner policy=lww", "--namespace", "dns.aliases writers=admin policy=lww",
		"--namespace", "tags writers=members policy=orset lifetime=24h"); r.code != 0 {
		t.Fatalf("declaring namespaces: exit %d: %s", r.code, r.stderr)
	}
	if r := run("data", "list"); r.code != 0 || !strings.Contains(r.stdout, "notes") || !strings.Contains(r.stdout, "orset") {
		t.Fatalf("data list: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run("data", "put", "notes", "motd", "hello mesh"); r.code != 0 {
		t.Fatalf("put: exit %d: %s", r.code, r.stderr)
	}
	if r := run("data", "get", "notes", "motd"); r.code != 0 || r.stdout != "hello mesh" {
		t.Fatalf("get: exit %d: %q %s", r.code, r.stdout, r.stderr)
	}
	var l control.DataList
	if r := run("data", "get", "notes", "motd", "--json"); json.Unmarshal([]byte(r.stdout), &l) != nil || len(l.Keys) != 1 || l.Keys[0].Owner != n.key.Public().AuthorizedKey() {
		t.Fatalf("get --json: %s", r.stdout)
	}
	if r := run("data", "delete", "notes", "motd"); r.code != 0 {
		t.Fatalf("delete: exit %d: %s", r.code, r.stderr)
	}
	if r := run("data", "get", "notes", "motd"); r.code != exitNoSuchName || !strings.Contains(r.stderr, "holds nothing") {
		t.Fatalf("get after delete: exit %d: %q %s", r.code, r.stdout, r.stderr)
	}
	// Sets: two elements, one line each; a delete removes both.
	run("data", "put", "tags", "role", "web")
	run("data", "put", "tags", "role", "db")
	if r := run("data", "get", "tags", "role"); r.code != 0 || strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("a set's elements: exit %d: %q", r.code, r.stdout)
	}
	// The admin's namespace: a node may not write it; the admin may.
	if r := run("data", "put", "dns.aliases", "wiki", "solo"); r.code != 1 || !strings.Contains(r.stderr, "not-writer") {
		t.Fatalf("a node writing the admin's namespace: exit %d: %s", r.code, r.stderr)
	}
	if r := run("data", "put", "dns.aliases", "wiki", "solo", "--admin-key", adminKey); r.code != 0 {
		t.Fatalf("the admin writing its namespace: exit %d: %s", r.code, r.stderr)
	}
	eventually(t, 10*time.Second, "wiki.t to resolve as an alias", func() bool {
		return strings.Contains(run("resolve", "wiki.t").stdout, "CNAME solo.t.")
	})
	if r := run("data", "get", "nope", "x"); r.code != 1 || !strings.Contains(r.stderr, `no namespace "nope"`) {
		t.Fatalf("an undeclared namespace: exit %d: %s", r.code, r.stderr)
	}
}

// "data watch" prints a JSON line per change, and exits 0 on SIGTERM.
func TestDataWatchCommand(t *testing.T) {
	n, adminKey := soloNode(t)
	if r := dm(t, "settings", "--network", "t", "--admin-key", adminKey, "--force", "--namespace", "notes writers=owner policy=lww",
		"--config", n.config); r.code != 0 {
		t.Fatalf("declaring a namespace: exit %d: %s", r.code, r.stderr)
	}
	cmd := exec.Command(binary(t), "data", "watch", "notes", "--config", n.config)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The watch may begin after a first write: write until a line comes.
	var first string
	eventually(t, 10*time.Second, "a line from the watch", func() bool {
		dm(t, "data", "put", "notes", "k", "v"+time.Now().String(), "--config", n.config)
		select {
		case first = <-lines:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	var ch control.DataChange
	if err := json.Unmarshal([]byte(first), &ch); err != nil || ch.Namespace != "notes" || ch.Change.Key != "k" {
		t.Fatalf("the watch's line: %q (%v)", first, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("watch after SIGTERM: %v, want exit 0", err)
	}
}
