package nixos_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/data-mesher/data-mesher/admin"
	"github.com/data-mesher/data-mesher/crdt"
)

// adminRig runs an admin unit's script (nixos/admin.nix) as NixOS would
// (bash -e, seq and sleep from PATH, the unit's state directory and the
// admin key as a credential) against a stand-in dm-agent. The stand-in
// keeps what a real agent would in files of dir: whether it has synced
// (the file "alone" says not), whether it holds settings, and the
// dns.aliases entries (aliases/<name>). Like dm-agent, it refuses a
// settings edit before the agent has synced, unless the edit changes
// nothing (the file "unchanged").
type adminRig struct {
	t                  *testing.T
	dir, state, script string
}

func newAdminRig(t *testing.T, script string) *adminRig {
	t.Helper()
	needJQ(t)
	r := &adminRig{t: t, dir: t.TempDir()}
	r.state = filepath.Join(r.dir, "state")
	for _, d := range []string{r.state, filepath.Join(r.dir, "bin"), filepath.Join(r.dir, "aliases")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Polls do not wait.
	if err := os.WriteFile(filepath.Join(r.dir, "bin", "sleep"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.setScript(script)
	return r
}

// setScript replaces the script (a new configuration of the same
// machine), keeping the state and the agent's.
func (r *adminRig) setScript(script string) {
	d := r.dir
	r.script = standIns(r.t, d, script, map[string]string{
		"data-mesher/bin/dm-agent": `log() { echo "$*" >> ` + d + `/calls; }
case "$*" in
  status) exit 0 ;;
  "status --json")
    echo >> ` + d + `/polls
    if [ -e ` + d + `/alone ]; then echo '{"synced":false}'; else echo '{"synced":true}'; fi ;;
  *--show) [ -e ` + d + `/has-settings ] ;;
  "network create"*--publish*) log "$@"; touch ` + d + `/has-settings ;;
  "network create"*--out*) log "$@"; while [ "$1" != --out ]; do shift; done; echo '{}' > "$2" ;;
  settings*--from*) log "$@"; touch ` + d + `/has-settings ;;
  settings*)
    if [ -e ` + d + `/alone ] && [ ! -e ` + d + `/unchanged ]; then
      echo "refused: the agent has not synced with a peer since it started" >&2; exit 1
    fi
    log "$@" ;;
  "data get --network "*" dns.aliases "*) [ -e ` + d + `/aliases/"$6" ] || exit 3; cat ` + d + `/aliases/"$6" ;;
  "data put --network "*" dns.aliases "*) log "$@"; printf %s "$7" > ` + d + `/aliases/"$6" ;;
  "data delete --network "*" dns.aliases "*) log "$@"; rm ` + d + `/aliases/"$6" ;;
  *) echo "stand-in dm-agent: unexpected call: $*" >&2; exit 1 ;;
esac`,
		"jq/bin/jq": `exec jq "$@"`,
	})
}

// quickPolls makes the script's waits end after one poll (a seq that
// counts to 1), for runs where how long it waits is not the point.
func (r *adminRig) quickPolls() {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, "bin", "seq"), []byte("#!/bin/sh\necho 1\n"), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

func (r *adminRig) touch(name string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), nil, 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *adminRig) remove(name string) { os.Remove(filepath.Join(r.dir, name)) }

// setAlias is a change of an alias by someone else.
func (r *adminRig) setAlias(name, target string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, "aliases", name), []byte(target), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// aliases are the dns.aliases entries the agent holds, "name target".
func (r *adminRig) aliases() []string {
	r.t.Helper()
	es, err := os.ReadDir(filepath.Join(r.dir, "aliases"))
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(r.dir, "aliases", e.Name()))
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, e.Name()+" "+string(b))
	}
	return out
}

// run runs the script once and returns the calls that change something
// (not status, --show or data get), how often it asked whether the agent
// has synced, and its error with its output.
func (r *adminRig) run() ([]string, int, error) {
	r.t.Helper()
	r.remove("calls")
	r.remove("polls")
	cmd := exec.Command("bash", "-e", "-c", r.script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(r.dir, "bin")+":"+os.Getenv("PATH"),
		"STATE_DIRECTORY="+r.state, "CREDENTIALS_DIRECTORY=/creds")
	out, err := cmd.CombinedOutput()
	calls, _ := os.ReadFile(filepath.Join(r.dir, "calls"))
	polls, _ := os.ReadFile(filepath.Join(r.dir, "polls"))
	if err != nil {
		err = fmt.Errorf("%w: %s", err, out)
	}
	var list []string
	if s := strings.TrimSpace(string(calls)); s != "" {
		list = strings.Split(s, "\n")
	}
	return list, strings.Count(string(polls), "\n"), err
}

// wellKnown are the namespaces an admin declares by default, as the unit
// passes them to dm-agent settings (sorted by name).
var wellKnown = []string{
	"--namespace dns.aliases writers=admin policy=lww",
	"--namespace dns.records writers=admin policy=lww",
	"--namespace dns.services writers=owner policy=lww",
	"--namespace ssh.host-keys writers=owner policy=lww",
}

// testCreatingScript runs the clan admin's script (create = true, the
// aliases wiki → gate and www → example.org.): a new network gets its
// settings created once, with the namespaces in the same signed record:
// at once when the agent has synced with the mesh and found none, after
// five minutes of polls when it finds no peer. A machine that created
// them before never creates them again, even when its agent has not
// synced them (it fails and retries); existing settings get the edits
// (host TTL, witnesses) and the namespaces, and the aliases are written
// only from an agent that has synced (or on the settings just created).
func testCreatingScript(t *testing.T, script, network, edits string) {
	t.Helper()
	r := newAdminRig(t, script)
	fresh := filepath.Join(r.state, network+".new.json")
	create := []string{
		"network create --domain clan --admin-key /creds/network-key --out " + fresh + " " + edits,
		"settings --network " + network + " --admin-key /creds/network-key --from " + fresh + " " + strings.Join(wellKnown, " "),
	}
	puts := []string{
		"data put --network " + network + " dns.aliases wiki gate --admin-key /creds/network-key",
		"data put --network " + network + " dns.aliases www example.org. --admin-key /creds/network-key",
	}
	want := slices.Concat(create, puts)

	// Alone: no peer to sync with; created after five minutes of polls.
	r.touch("alone")
	calls, n, err := r.run()
	if err != nil || !slices.Equal(calls, want) || n != 300 {
		t.Fatalf("new network, no peers: calls %q after %d polls, err %v; want %q after 300", calls, n, err, want)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the signed settings file is left behind: %v", err)
	}
	if err := os.Remove(filepath.Join(r.state, network+".created")); err != nil {
		t.Fatalf("no marker of the creation: %v", err)
	}
	r.quickPolls()
	// Synced with the mesh, which has no settings: created at once.
	r.remove("alone")
	r.remove("has-settings")
	os.RemoveAll(filepath.Join(r.dir, "aliases"))
	os.Mkdir(filepath.Join(r.dir, "aliases"), 0o700)
	calls, n, err = r.run()
	if err != nil || !slices.Equal(calls, want) || n != 1 {
		t.Fatalf("new network, synced: calls %q after %d polls, err %v; want %q at once", calls, n, err, want)
	}
	// Created here before, settings not (yet) in the agent: never again.
	r.remove("has-settings")
	calls, _, err = r.run()
	if err == nil || len(calls) != 0 {
		t.Errorf("created before, settings not synced: calls %q, err %v; want a failure and nothing written", calls, err)
	}
	// Existing settings, synced: the edits and namespaces; the aliases
	// hold what they should, so nothing more.
	r.touch("has-settings")
	edit := "settings --network " + network + " --admin-key /creds/network-key " + edits + " " + strings.Join(wellKnown, " ")
	calls, _, err = r.run()
	if err != nil || !slices.Equal(calls, []string{edit}) {
		t.Errorf("existing settings: calls %q, err %v; want %q", calls, err, edit)
	}
	// Not synced: the edit is refused, and no alias is written.
	r.setAlias("wiki", "beta")
	r.touch("alone")
	if calls, _, err = r.run(); err == nil || len(calls) != 0 {
		t.Errorf("not synced, settings to change: calls %q, err %v; want a failure and nothing written", calls, err)
	}
	// Not synced, and the settings already say it all (dm-agent publishes
	// nothing, synced or not): the aliases still wait for the sync.
	r.touch("unchanged")
	if calls, _, err = r.run(); err == nil || !strings.Contains(err.Error(), "the aliases wait") || !slices.Equal(calls, []string{edit}) {
		t.Errorf("not synced, settings unchanged: calls %q, err %v; want the edit, then a failure before the aliases", calls, err)
	}
	// Synced again: the alias someone changed is set back.
	r.remove("alone")
	calls, _, err = r.run()
	if err != nil || !slices.Equal(calls, []string{edit, puts[0]}) {
		t.Errorf("an alias changed elsewhere: calls %q, err %v; want %q", calls, err, []string{edit, puts[0]})
	}
	if got := r.aliases(); !slices.Equal(got, []string{"wiki gate", "www example.org."}) {
		t.Errorf("the agent holds the aliases %q", got)
	}
}

// adminMachine is a machine administering network clan (the README's
// example) with its admin key, two aliases, a namespace of its own with
// every limit and writer keys, and dns.records left to dm-agent.
const adminMachine = `services.data-mesher.networks.clan.admin = {
  keyFile = "/run/keys/clan-admin";
  aliases = { wiki = "gate"; www = "example.org."; };
  namespaces."git.mirrors" = {
    writers = "keys"; policy = "orset";
    keys = [ "` + gateKey + `" "` + ghostKey + `" ];
    maxValue = 4096; maxEntriesPerWriter = 16; lifetime = "720h";
  };
  namespaces."dns.records".enable = false;
  namespaces."dns.services".lifetime = "24h";
};`

// TestNixAdminNamespaces checks the admin's namespaces as dm-agent reads
// them: each --namespace of the unit's script, parsed by dm-agent's own
// parser (admin.ParseNamespace), declares what the options say: the
// well-known ones by default, a changed default, one turned off, and one
// with every limit and writer keys (given as OpenSSH keys, passed as
// dm-agent takes them).
func TestNixAdminNamespaces(t *testing.T) {
	n := newNix(t)
	m := evalMachine(t, n, example("data-mesher", adminMachine))
	if len(m.FailedAssertions) > 0 {
		t.Fatalf("failed assertions: %v", m.FailedAssertions)
	}
	u, ok := m.Units["data-mesher-settings-clan"]
	if !ok || len(m.Units) != 1 {
		t.Fatalf("units %v, want data-mesher-settings-clan", m.Units)
	}
	var got []crdt.Namespace
	for _, f := range strings.Split(u.Script, "--namespace '")[1:] {
		spec, _, _ := strings.Cut(f, "'")
		ns, err := admin.ParseNamespace(spec)
		if err != nil {
			t.Fatalf("dm-agent does not read %q: %v", spec, err)
		}
		got = append(got, ns)
	}
	key := func(s string) crdt.PublicKey {
		k, err := crdt.ParsePublicKey(s)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	want := []crdt.Namespace{
		{Name: "dns.aliases", Writers: crdt.WritersAdmin, Policy: crdt.PolicyLWW},
		{Name: "dns.services", Writers: crdt.WritersOwner, Policy: crdt.PolicyLWW, Lifetime: 24 * time.Hour},
		{Name: "git.mirrors", Writers: crdt.WritersKeys, Policy: crdt.PolicyORSet, WriterKeys: []crdt.PublicKey{key(gateKey), key(ghostKey)},
			MaxValue: 4096, MaxEntriesPerWriter: 16, Lifetime: 720 * time.Hour},
		{Name: "ssh.host-keys", Writers: crdt.WritersOwner, Policy: crdt.PolicyLWW},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the unit declares\n  %v\nwant\n  %v", got, want)
	}
}

// TestNixAdminUnit checks the admin unit of a plain NixOS machine: its
// key is a credential of that unit only, it runs after the agent and with
// it, and its script (run against the stand-in dm-agent) declares the
// namespaces and writes the aliases only once the agent has synced; it
// creates no settings (the admin does, with dm-agent network create) and
// fails until they exist; and an alias dropped from the configuration is
// deleted, unless someone changed it since.
func TestNixAdminUnit(t *testing.T) {
	n := newNix(t)
	m := evalMachine(t, n, example("data-mesher", adminMachine))
	u := m.Units["data-mesher-settings-clan"]
	if lc := strs(u.ServiceConfig["LoadCredential"]); !slices.Equal(lc, []string{"network-key:/run/keys/clan-admin"}) {
		t.Errorf("LoadCredential = %v", lc)
	}
	if !slices.Equal(u.Requires, []string{"data-mesher.service"}) || !slices.Equal(u.After, []string{"data-mesher.service"}) ||
		!slices.Equal(u.WantedBy, []string{"multi-user.target"}) || u.ServiceConfig["Type"] != "oneshot" || u.ServiceConfig["RemainAfterExit"] != true {
		t.Errorf("unit %+v", u)
	}
	if slices.ContainsFunc(strings.Split(u.Script, "\n"), func(l string) bool {
		return !strings.HasPrefix(strings.TrimSpace(l), "#") && strings.Contains(l, "--force")
	}) {
		t.Errorf("the admin's script forces an edit:\n%s", u.Script)
	}
	if err := exec.Command("bash", "-n", "-c", u.Script).Run(); err != nil {
		t.Fatalf("the script is not valid shell: %v\n%s", err, u.Script)
	}
	// Without an admin key there is no unit; the agent's unit keeps no
	// admin key either.
	if m := evalMachine(t, n, example("data-mesher", "")); len(m.Units) != 0 {
		t.Errorf("no admin key, yet units %v", m.Units)
	}

	r := newAdminRig(t, u.Script)
	r.quickPolls()
	ns := []string{
		"--namespace dns.aliases writers=admin policy=lww",
		"--namespace dns.services writers=owner policy=lww lifetime=24h",
		"--namespace git.mirrors writers=keys policy=orset keys=" + rawKey(t, gateKey) + "," + rawKey(t, ghostKey) +
			" max-value=4096 max-entries=16 lifetime=720h",
		"--namespace ssh.host-keys writers=owner policy=lww",
	}
	edit := "settings --network clan --admin-key /creds/network-key " + strings.Join(ns, " ")
	put := func(name, target string) string {
		return "data put --network clan dns.aliases " + name + " " + target + " --admin-key /creds/network-key"
	}
	// No settings yet: nothing is created, the unit fails (and retries).
	calls, _, err := r.run()
	if err == nil || !strings.Contains(err.Error(), "the agent has no settings for it yet") || len(calls) != 0 {
		t.Fatalf("no settings: calls %q, err %v; want a failure saying so", calls, err)
	}
	// Not synced: the edit is refused; nothing is written.
	r.touch("has-settings")
	r.touch("alone")
	if calls, _, err := r.run(); err == nil || len(calls) != 0 {
		t.Errorf("not synced: calls %q, err %v", calls, err)
	}
	r.remove("alone")
	calls, _, err = r.run()
	if want := []string{edit, put("wiki", "gate"), put("www", "example.org.")}; err != nil || !slices.Equal(calls, want) {
		t.Fatalf("synced: calls %q, err %v; want %q", calls, err, want)
	}

	// The next configuration drops www and wiki, and adds docs; someone
	// has pointed wiki elsewhere meanwhile, so it stays.
	m = evalMachine(t, n, example("data-mesher", strings.Replace(adminMachine,
		`aliases = { wiki = "gate"; www = "example.org."; };`, `aliases = { docs = "gate"; };`, 1)))
	r.setScript(m.Units["data-mesher-settings-clan"].Script)
	r.setAlias("wiki", "beta")
	calls, _, err = r.run()
	del := "data delete --network clan dns.aliases www --admin-key /creds/network-key"
	if want := []string{edit, del, put("docs", "gate")}; err != nil || !slices.Equal(calls, want) {
		t.Errorf("aliases changed: calls %q, err %v; want %q", calls, err, want)
	}
	if got := r.aliases(); !slices.Equal(got, []string{"docs gate", "wiki beta"}) {
		t.Errorf("the agent holds the aliases %q", got)
	}
	// Without any alias left, the last one it wrote goes too.
	m = evalMachine(t, n, example("data-mesher", strings.Replace(adminMachine,
		`aliases = { wiki = "gate"; www = "example.org."; };`, "", 1)))
	r.setScript(m.Units["data-mesher-settings-clan"].Script)
	calls, _, err = r.run()
	if want := []string{edit, "data delete --network clan dns.aliases docs --admin-key /creds/network-key"}; err != nil || !slices.Equal(calls, want) {
		t.Errorf("no aliases: calls %q, err %v; want %q", calls, err, want)
	}
	if calls, _, err = r.run(); err != nil || !slices.Equal(calls, []string{edit}) {
		t.Errorf("nothing left to do: calls %q, err %v", calls, err)
	}
}

// rawKey is an OpenSSH ed25519 key as data.json writes it.
func rawKey(t *testing.T, s string) string {
	t.Helper()
	k, err := crdt.ParsePublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k.String()
}

// TestNixAdminRefuses gives the admin's options what they must refuse.
func TestNixAdminRefuses(t *testing.T) {
	n := newNix(t)
	for _, c := range []struct{ name, def, want string }{
		{"policy", `services.data-mesher.networks.clan.admin.namespaces.x = { writers = "owner"; policy = "newest"; };`,
			"A definition for option `services.data-mesher.networks.clan.admin.namespaces.x.policy' is not of type `one of \"lww\", \"fww\", \"gset\", \"orset\", \"log\"'"},
		{"lifetime", `services.data-mesher.networks.clan.admin.namespaces.x = { writers = "owner"; policy = "lww"; lifetime = "a month"; };`,
			"is not of type `null or duration"},
		{"alias target", `services.data-mesher.networks.clan.admin.aliases.wiki = "gate; reboot";`,
			"A definition for option `services.data-mesher.networks.clan.admin.aliases.wiki' is not of type `DNS name"},
		{"writer key", `services.data-mesher.networks.clan.admin.namespaces.x = { writers = "keys"; policy = "lww"; keys = [ "ssh-rsa AAAA" ]; };`,
			"is not of type `OpenSSH ed25519 public key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stderr := n.fails(t, moduleExpr(example("data-mesher", `services.data-mesher.networks.clan.admin.keyFile = "/k"; `+c.def)))
			if !strings.Contains(stderr, c.want) {
				t.Errorf("the error does not say %q:\n%s", c.want, stderr)
			}
		})
	}
	for _, c := range []struct{ name, def, want string }{
		{"namespace name", `namespaces."Git_Mirrors" = { writers = "owner"; policy = "lww"; };`,
			`services.data-mesher.networks."clan".admin.namespaces: "Git_Mirrors" is not a namespace name`},
		{"keys without writers keys", `namespaces.x = { writers = "owner"; policy = "lww"; keys = [ "` + gateKey + `" ]; };`,
			`services.data-mesher.networks."clan".admin.namespaces."x": keys go with writers = "keys"`},
		{"writers keys without keys", `namespaces.x = { writers = "keys"; policy = "lww"; };`,
			`services.data-mesher.networks."clan".admin.namespaces."x": keys go with writers = "keys"`},
		{"alias name", `aliases."Wiki" = "gate";`,
			`services.data-mesher.networks."clan".admin.aliases: "Wiki" is not a name relative to the domain`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := evalMachine(t, n, example("data-mesher", `services.data-mesher.networks.clan.admin = { keyFile = "/k"; `+c.def+` };`))
			if len(m.FailedAssertions) != 1 || !strings.Contains(m.FailedAssertions[0], c.want) {
				t.Errorf("failed assertions %q, want one saying %q", m.FailedAssertions, c.want)
			}
		})
	}
}
