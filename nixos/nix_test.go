// Package nixos_test evaluates the NixOS module, the clan service, the
// flake and the VM test of this folder with the real module system:
// nixpkgs' lib (lib.evalModules, lib.types) and clan-core's own service
// evaluator, with typed stand-ins (testdata/) only for the NixOS options
// and packages those files touch. It checks that dm-agent accepts and reads
// the configuration the module renders (agent.ParseConfig, Validate).
//
// nixpkgs' lib comes from DM_NIXPKGS_LIB if set, else from <nixpkgs> when
// the Nix search path has one, else from ../shared/vendor/nixpkgs-lib
// beside the repository; clan-core from DM_CLAN_CORE, else
// ../shared/vendor/clan-core. Each test logs which it used. Without a lib
// (or clan-core) the tests skip, saying why. Without the tools
// scripts/test installs (nix-instantiate, jq, python3) they skip too, but
// fail with CI=true, where scripts/test has installed them.
package nixos_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// source is a Nix source tree a test evaluates with, and where it was
// found.
type source struct {
	path, from string
	err        error
}

var (
	findLib  = sync.OnceValue(locateLib)
	findClan = sync.OnceValue(locateClan)
)

// inCI reports whether missing tools are failures (scripts/test and .ci
// install them) rather than reasons to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// unavailable skips the test, or fails it in CI.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf(format+" (CI=true: this is a failure)", args...)
	}
	t.Skipf(format, args...)
}

// nixInstantiate finds nix-instantiate (Debian's nix-bin; scripts/test
// installs it).
func nixInstantiate(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("nix-instantiate")
	if err != nil {
		unavailable(t, "nix-instantiate is not installed (Debian: nix-bin): %v", err)
	}
	return p
}

// repoRoot is the repository's top folder (the tests run in nixos/).
func repoRoot() string {
	root, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	return root
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// libDir accepts a nixpkgs checkout or its lib folder.
func libDir(p string) string {
	if isFile(filepath.Join(p, "lib", "default.nix")) {
		return filepath.Join(p, "lib")
	}
	return p
}

func locateLib() source {
	if p := os.Getenv("DM_NIXPKGS_LIB"); p != "" {
		d := libDir(p)
		if !isFile(filepath.Join(d, "default.nix")) {
			return source{from: "DM_NIXPKGS_LIB", err: fmt.Errorf("DM_NIXPKGS_LIB=%s holds no nixpkgs lib (lib/default.nix)", p)}
		}
		return source{path: d, from: "DM_NIXPKGS_LIB"}
	}
	var why []string
	if bin, err := exec.LookPath("nix-instantiate"); err == nil {
		// The user's own search path (NIX_PATH, nix.conf), read without a
		// store.
		cmd := exec.Command(bin, "--store", "dummy://", "--find-file", "nixpkgs")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if d := libDir(strings.TrimSpace(string(out))); err == nil && isFile(filepath.Join(d, "default.nix")) {
			return source{path: d, from: "<nixpkgs>"}
		}
		why = append(why, "the Nix search path has no <nixpkgs>")
	}
	d := filepath.Join(filepath.Dir(repoRoot()), "shared", "vendor", "nixpkgs-lib", "lib")
	if isFile(filepath.Join(d, "default.nix")) {
		return source{path: d, from: "../shared/vendor/nixpkgs-lib"}
	}
	why = append(why, "../shared/vendor/nixpkgs-lib is not beside the repository")
	return source{err: errors.New("no nixpkgs lib: DM_NIXPKGS_LIB is unset, " + strings.Join(why, ", "))}
}

func locateClan() source {
	if p := os.Getenv("DM_CLAN_CORE"); p != "" {
		if !isFile(filepath.Join(p, "lib", "default.nix")) {
			return source{from: "DM_CLAN_CORE", err: fmt.Errorf("DM_CLAN_CORE=%s holds no clan-core (lib/default.nix)", p)}
		}
		return source{path: p, from: "DM_CLAN_CORE"}
	}
	d := filepath.Join(filepath.Dir(repoRoot()), "shared", "vendor", "clan-core")
	if isFile(filepath.Join(d, "lib", "default.nix")) {
		return source{path: d, from: "../shared/vendor/clan-core"}
	}
	return source{err: errors.New("no clan-core: DM_CLAN_CORE is unset and ../shared/vendor/clan-core is not beside the repository")}
}

// nix evaluates Nix expressions with nixpkgs' lib (and clan-core, for the
// tests that ask for it).
type nix struct {
	bin       string
	lib, clan string
}

// newNix finds nix-instantiate and nixpkgs' lib, logs which lib the test
// uses, and skips (fails in CI) without them.
func newNix(t *testing.T) *nix {
	t.Helper()
	bin := nixInstantiate(t)
	lib := findLib()
	if lib.err != nil {
		// Not a tool scripts/test can install: a third-party source. The
		// issue's rule: skip, saying why (scripts/test prints it too).
		t.Skipf("%v", lib.err)
	}
	t.Logf("nixpkgs lib from %s: %s", lib.from, lib.path)
	return &nix{bin: bin, lib: lib.path}
}

// withClan also finds clan-core.
func (n *nix) withClan(t *testing.T) *nix {
	t.Helper()
	c := findClan()
	if c.err != nil {
		t.Skipf("%v", c.err)
	}
	t.Logf("clan-core from %s: %s", c.from, c.path)
	m := *n
	m.clan = c.path
	return &m
}

// env is an environment without a Nix search path, with Nix's state in a
// private temporary home, so evaluations see only what they are given and
// leave nothing behind.
func nixEnv(t *testing.T) []string {
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NIX_PATH=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home, "NIX_STATE_DIR="+filepath.Join(home, "state"),
		"NIX_LOG_DIR="+filepath.Join(home, "log"), "NIX_CONF_DIR="+home)
}

// command runs nix-instantiate without a store (the dummy store evaluates
// pure expressions). The expression is a function of libPath (and
// clanPath), both strings.
func (n *nix) command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	base := []string{"--store", "dummy://", "--argstr", "libPath", n.lib}
	if n.clan != "" {
		base = append(base, "--argstr", "clanPath", n.clan)
	}
	cmd := exec.Command(n.bin, append(base, args...)...)
	cmd.Env = nixEnv(t)
	return cmd
}

// try evaluates expr (strictly, as JSON) and returns its value, what Nix
// printed on stderr (warnings, traces, errors) and the error.
func (n *nix) try(t *testing.T, expr string) ([]byte, string, error) {
	t.Helper()
	cmd := n.command(t, "--eval", "--strict", "--json", "--expr", expr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return out, stderr.String(), err
}

// eval evaluates expr and fails the test on an error.
func (n *nix) eval(t *testing.T, expr string) ([]byte, string) {
	t.Helper()
	out, stderr, err := n.try(t, expr)
	if err != nil {
		t.Fatalf("evaluating %s: %v\n%s", expr, err, stderr)
	}
	return out, stderr
}

// fails evaluates expr, which must fail, and returns the error Nix printed.
func (n *nix) fails(t *testing.T, expr string) string {
	t.Helper()
	out, stderr, err := n.try(t, expr)
	if err == nil {
		t.Fatalf("evaluating %s succeeded, want an error:\n%s\n%s", expr, out, stderr)
	}
	return stderr
}

// TestNixFilesParse parses every Nix file of the repository: a syntax error
// in the module, the clan service, the VM test, the flake or the test
// harness fails here rather than on a user's machine.
func TestNixFilesParse(t *testing.T) {
	bin := nixInstantiate(t)
	var files []string
	err := filepath.WalkDir(repoRoot(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != repoRoot() {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".nix") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"flake.nix", "nixos/agent.nix", "nixos/settings.nix", "nixos/clan-service.nix", "nixos/test.nix"} {
		if !isFile(filepath.Join(repoRoot(), want)) {
			t.Errorf("%s is missing", want)
		}
	}
	for _, f := range files {
		cmd := exec.Command(bin, "--store", "dummy://", "--parse", f)
		cmd.Env = nixEnv(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v\n%s", f, err, out)
		}
	}
	if len(files) < 10 {
		t.Errorf("found only %d Nix files: %v", len(files), files)
	}
}

// needJQ skips a test whose script needs jq where it is missing (fails in
// CI: scripts/test installs it).
func needJQ(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("jq"); err != nil {
		unavailable(t, "jq is not installed: %v", err)
	}
}

// stubStore is the store path prefix of testdata/pkgs.nix's packages.
const stubStore = "/nix/store/00000000000000000000000000000000-"

// scriptText is the text of a script written with testdata/pkgs.nix's
// writeShellScript or writeScript: its made-up path, a newline, the text.
func scriptText(t *testing.T, path string) string {
	t.Helper()
	p, text, ok := strings.Cut(path, "\n")
	if !ok || !strings.HasPrefix(p, stubStore) {
		t.Fatalf("not a script of the stand-in pkgs: %q", path)
	}
	return text
}

// standIns replaces each program a rendered script calls from the stub
// store (stubStore+path) with a shell script in dir running the given
// body, and fails if the script still calls something from the store.
func standIns(t *testing.T, dir, script string, fakes map[string]string) string {
	t.Helper()
	for path, fake := range fakes {
		bin := filepath.Join(dir, strings.ReplaceAll(path, "/", "_"))
		if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+fake+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		script = strings.ReplaceAll(script, stubStore+path, bin)
	}
	if strings.Contains(script, "/nix/store/") {
		t.Fatalf("the script calls a program the test does not stand in for:\n%s", script)
	}
	return script
}

// TestNixLibChoice checks where the tests take nixpkgs' lib from:
// DM_NIXPKGS_LIB first (a nixpkgs checkout or its lib folder), then
// <nixpkgs> from the Nix search path, then the copy beside the repository.
func TestNixLibChoice(t *testing.T) {
	nixInstantiate(t)
	mk := func() string {
		d := t.TempDir()
		if err := os.MkdirAll(filepath.Join(d, "lib"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "lib", "default.nix"), []byte("{ }\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	env, path := mk(), mk()
	for _, c := range []struct {
		libEnv, nixPath string
		want            source
	}{
		{env, "nixpkgs=" + path, source{path: filepath.Join(env, "lib"), from: "DM_NIXPKGS_LIB"}},
		{filepath.Join(env, "lib"), "", source{path: filepath.Join(env, "lib"), from: "DM_NIXPKGS_LIB"}},
		{"", "nixpkgs=" + path, source{path: filepath.Join(path, "lib"), from: "<nixpkgs>"}},
		{"", "nixpkgs=" + filepath.Join(path, "nowhere"), source{from: "../shared/vendor/nixpkgs-lib"}},
	} {
		t.Setenv("DM_NIXPKGS_LIB", c.libEnv)
		t.Setenv("NIX_PATH", c.nixPath)
		got := locateLib()
		if c.want.from == "../shared/vendor/nixpkgs-lib" && !isFile(filepath.Join(filepath.Dir(repoRoot()), "shared", "vendor", "nixpkgs-lib", "lib", "default.nix")) {
			// No copy beside the repository: no lib, and the reason.
			c.want.from = ""
			if got.err == nil || !strings.Contains(got.err.Error(), "no nixpkgs lib") {
				t.Errorf("without any lib: %+v", got)
			}
		}
		if got.from != c.want.from || c.want.path != "" && got.path != c.want.path {
			t.Errorf("DM_NIXPKGS_LIB=%q NIX_PATH=%q: lib %+v, want %+v", c.libEnv, c.nixPath, got, c.want)
		}
	}
	t.Setenv("DM_NIXPKGS_LIB", filepath.Join(env, "nowhere"))
	if got := locateLib(); got.err == nil || !strings.Contains(got.err.Error(), "holds no nixpkgs lib") {
		t.Errorf("a DM_NIXPKGS_LIB without a lib: %+v", got)
	}
}
