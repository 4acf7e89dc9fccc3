package nixos_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type flakeMachine struct {
	Package struct {
		Pname, BuiltWith string
	}
	ExecStart        string
	FailedAssertions []string
}

type vmNode struct {
	HostName         string
	FailedAssertions []string
	Warnings         []string
	ConfigFile       string
	Wireguard        map[string]struct {
		Ips            []string
		ListenPort     int
		PrivateKeyFile string
		Peers          []struct {
			PublicKey, Endpoint string
			AllowedIPs          []string
		}
	}
	Unit struct {
		After, BindsTo, WantedBy, ExecStartPost []string
	}
	Resolved bool
	Firewall map[string]struct {
		AllowedTCPPorts, AllowedUDPPorts []int
	}
	UDPPorts        []int
	Etc             []string
	Packages        []string
	Units           []string
	KnownHostsFiles []string
}

type flakeReport struct {
	Package struct {
		Pname, BuiltWith, VendorHash, Version string
		SubPackages, Ldflags, CheckFlags      []string
		Meta                                  struct{ MainProgram string }
	}
	DefaultIsPackage, DefaultIsDataMesher bool
	Overlay                               string
	NixosDefault, NixosDmAgent            flakeMachine
	ClanClass                             string
	VM                                    struct {
		Name, TestScript string
		Nodes            map[string]vmNode
		SameAsFlake      bool
	}
}

func evalFlake(t *testing.T) flakeReport {
	t.Helper()
	n := newNix(t)
	out, _ := n.eval(t, "{ libPath }: import ./testdata/flake-outputs.nix { lib = import libPath; }")
	var r flakeReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("testdata/flake-outputs.nix: %v\n%s", err, out)
	}
	return r
}

// TestNixFlake evaluates flake.nix's outputs with nixpkgs' lib and a
// stand-in for the rest of nixpkgs, and checks their wiring: the package
// builds dm-agent with Go 1.26 and its version; the NixOS modules set the
// package to the flake's without touching nixpkgs (no overlay:
// runNixOSTest's pkgs is read-only) and count once when imported twice;
// the overlay and the clan service are there; and vendorHash is the NAR
// hash of `go mod vendor`.
func TestNixFlake(t *testing.T) {
	got := evalFlake(t)
	p := got.Package
	if p.Pname != "data-mesher" || p.BuiltWith != "buildGo126Module" || !slices.Equal(p.SubPackages, []string{"cmd/dm-agent"}) ||
		p.Meta.MainProgram != "dm-agent" || !got.DefaultIsPackage || !slices.Equal(p.CheckFlags, []string{"-short"}) {
		t.Errorf("package: %+v", p)
	}
	if !slices.Contains(p.Ldflags, "-X github.com/data-mesher/data-mesher/agent.Version="+p.Version) {
		t.Errorf("ldflags %v do not set agent.Version", p.Ldflags)
	}
	if got.Overlay != "data-mesher-"+p.Version {
		t.Errorf("overlays.default gives %q", got.Overlay)
	}
	for service, m := range map[string]flakeMachine{"data-mesher": got.NixosDefault, "dm-agent": got.NixosDmAgent} {
		if m.Package.Pname != "data-mesher" || m.Package.BuiltWith != "buildGo126Module" {
			t.Errorf("services.%s.package = %+v, want the flake's package", service, m.Package)
		}
		if want := fmt.Sprintf("-data-mesher-%s/bin/dm-agent run --config /etc/data-mesher/config.json", p.Version); !strings.HasSuffix(m.ExecStart, want) {
			t.Errorf("services.%s: ExecStart %q does not run the flake's package", service, m.ExecStart)
		}
		if len(m.FailedAssertions) > 0 {
			t.Errorf("services.%s: assertions fail: %v", service, m.FailedAssertions)
		}
	}
	if !got.DefaultIsDataMesher || got.ClanClass != "clan.service" {
		t.Errorf("default module is data-mesher: %v; clan service %q", got.DefaultIsDataMesher, got.ClanClass)
	}

	// vendorHash: the NAR hash of the vendor tree, as buildGoModule makes
	// it; go.sum changes without it fail the Nix build only later.
	goBin, err := exec.LookPath("go")
	if err != nil {
		unavailable(t, "go is not on PATH")
	}
	vendor := filepath.Join(t.TempDir(), "vendor")
	cmd := exec.Command(goBin, "mod", "vendor", "-o", vendor)
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	h := exec.Command(filepath.Join(filepath.Dir(nixInstantiate(t)), "nix-hash"), "--type", "sha256", vendor)
	h.Env = nixEnv(t)
	hexOut, err := h.Output()
	if err != nil {
		t.Fatalf("nix-hash: %v", err)
	}
	sum, err := hex.DecodeString(strings.TrimSpace(string(hexOut)))
	if err != nil {
		t.Fatalf("nix-hash printed %q: %v", hexOut, err)
	}
	if want := "sha256-" + base64.StdEncoding.EncodeToString(sum); p.VendorHash != want {
		t.Errorf("flake.nix vendorHash = %s, but the vendor tree's NAR hash is %s: update it", p.VendorHash, want)
	}
}

// TestNixVMTest evaluates the VM test of `nix flake check` short of
// building it: each node as a NixOS machine (the flake's module, the
// WireGuard interface, resolved) with the real module system; dm-agent
// accepts each node's configuration, the nodes are peers of each other on
// wg0, split DNS is on gamma only, and the test script is valid Python.
func TestNixVMTest(t *testing.T) {
	got := evalFlake(t)
	vm := got.VM
	if vm.Name != "data-mesher" || !vm.SameAsFlake {
		t.Errorf("VM test %q; the flake's check is test.nix: %v", vm.Name, vm.SameAsFlake)
	}
	names := []string{"alpha", "beta", "gamma"}
	if len(vm.Nodes) != len(names) {
		t.Fatalf("nodes %v, want %v", len(vm.Nodes), names)
	}
	adminPub, err := os.ReadFile(filepath.Join("test-keys", "admin.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		nd, ok := vm.Nodes[name]
		if !ok {
			t.Fatalf("no node %s", name)
		}
		if nd.HostName != name || len(nd.FailedAssertions) > 0 || len(nd.Warnings) > 0 {
			t.Errorf("%s: host name %q, failed assertions %v, warnings %v", name, nd.HostName, nd.FailedAssertions, nd.Warnings)
		}
		c := parseConfig(t, nd.ConfigFile)
		j := c.JoinedNetworks()
		if len(j) != 1 || j[0].Label != "test" || !strings.HasPrefix(string(adminPub), j[0].ID.AuthorizedKey()+" ") ||
			!slices.Equal(j[0].Hostnames, []string{name}) {
			t.Errorf("%s: dm-agent joins %+v", name, j)
		}
		// Everybody but alpha bootstraps from alpha.
		if wantPeers := []string{"http://[fd42::1]:7331"}; name == "alpha" && len(j[0].Bootstrap) != 0 ||
			name != "alpha" && !slices.Equal(j[0].Bootstrap, wantPeers) {
			t.Errorf("%s: bootstrap peers %v", name, j[0].Bootstrap)
		}
		wg, ok := nd.Wireguard["wg0"]
		if !ok || !slices.Equal(wg.Ips, []string{fmt.Sprintf("fd42::%d/64", i+1)}) || wg.ListenPort != 51820 || len(wg.Peers) != 2 ||
			!strings.HasSuffix(wg.PrivateKeyFile, fmt.Sprintf("/test-keys/wg%d.key", i+1)) || !isFile(wg.PrivateKeyFile) {
			t.Errorf("%s: wg0 = %+v", name, wg)
		}
		for _, p := range wg.Peers {
			k := strings.TrimSuffix(strings.TrimPrefix(p.AllowedIPs[0], "fd42::"), "/128")
			pub, err := os.ReadFile(filepath.Join("test-keys", "wg"+k+".pub"))
			if err != nil || strings.TrimSpace(string(pub)) != p.PublicKey || p.Endpoint != "192.168.1."+k+":51820" || k == fmt.Sprint(i+1) {
				t.Errorf("%s: peer %+v (key file: %v)", name, p, err)
			}
		}
		if !slices.Equal(nd.Unit.BindsTo, []string{"wireguard-wg0.service"}) || !slices.Contains(nd.Unit.After, "wireguard-wg0.service") {
			t.Errorf("%s: the agent is not bound to wg0's unit: %+v", name, nd.Unit)
		}
		if split := name == "gamma"; nd.Resolved != split || (len(nd.Unit.ExecStartPost) == 1) != split {
			t.Errorf("%s: resolved %v, split DNS %v; want both only on gamma", name, nd.Resolved, nd.Unit.ExecStartPost)
		}
		if fw := nd.Firewall["wg0"]; !slices.Equal(fw.AllowedTCPPorts, []int{7946, 7331, 53}) || !slices.Contains(nd.UDPPorts, 51820) {
			t.Errorf("%s: firewall %+v, udp %v", name, nd.Firewall, nd.UDPPorts)
		}
		if hasKey := slices.Contains(nd.Etc, "dm-admin.key"); hasKey != (name == "alpha") || !slices.Contains(nd.Packages, "dnsutils") {
			t.Errorf("%s: /etc %v, packages %v; the admin key belongs on alpha only", name, nd.Etc, nd.Packages)
		}
		// alpha administers the network from its options and declares
		// its sshd; every node publishes its host keys and trusts the
		// mesh's.
		wantUnits, wantPublished := []string(nil), []string{
			"ssh.host-keys ssh-rsa file=/etc/ssh/ssh_host_rsa_key.pub",
			"ssh.host-keys ssh-ed25519 file=/etc/ssh/ssh_host_ed25519_key.pub",
		}
		if name == "alpha" {
			wantUnits, wantPublished = []string{"data-mesher-settings-test"}, append(wantPublished, "dns.services _ssh._tcp value=0 0 22")
		}
		if got := published(t, c, "test"); !slices.Equal(nd.Units, wantUnits) || !slices.Equal(got, wantPublished) ||
			!slices.Equal(nd.KnownHostsFiles, []string{c.KnownHostsFile}) {
			t.Errorf("%s: units %v, publishes %q, known hosts files %v", name, nd.Units, got, nd.KnownHostsFiles)
		}
	}

	for _, want := range []string{"start_all()", `wait_for_unit("data-mesher.service")`, "dm-agent network create --domain test", "resolvectl query",
		"restart data-mesher-settings-test.service", "wiki.test CNAME", "_ssh._tcp.alpha.test SRV", "ssh -o StrictHostKeyChecking=yes",
		"SupplementaryGroups=data-mesher", "dm-agent doctor"} {
		if !strings.Contains(vm.TestScript, want) {
			t.Errorf("the test script does not %s", want)
		}
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		unavailable(t, "python3 is not installed: the VM test script is not compiled")
	}
	cmd := exec.Command(py, "-c", "import sys; compile(sys.stdin.read(), 'testScript', 'exec')")
	cmd.Stdin = strings.NewReader(vm.TestScript)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the VM test script is not valid Python: %v\n%s", err, out)
	}
}
