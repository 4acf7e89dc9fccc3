package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// manPage is the file `dm-agent man` writes for a command.
func manPage(c *cobra.Command) string { return strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1" }

// The man pages come from the commands' definitions: one page per
// command a person can run, each with the command's synopsis and every
// one of its flags, and no page for a command that does not exist. groff
// reads them without a warning.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	r := dmEnv(t, []string{"SOURCE_DATE_EPOCH=315532800"}, "man", dir)
	if r.code != 0 {
		t.Fatalf("dm-agent man: exit %d: %s", r.code, r.stderr)
	}
	var want []string
	for _, c := range allCommands(newRoot(nil, nil, nil)) {
		if !c.IsAvailableCommand() && c.Parent() != nil {
			continue // hidden: __complete, help, man
		}
		want = append(want, manPage(c))
		b, err := os.ReadFile(filepath.Join(dir, manPage(c)))
		if err != nil {
			t.Errorf("no man page for %s: %v", c.CommandPath(), err)
			continue
		}
		page := string(b)
		if !strings.Contains(page, `.TH "DM-AGENT" "1" "Jan 1980"`) || !strings.Contains(page, `\fB`+c.CommandPath()) {
			t.Errorf("%s: no header or synopsis:\n%s", manPage(c), page)
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if !strings.Contains(page, `\fB--`+f.Name+`\fP`) {
				t.Errorf("%s does not document --%s", manPage(c), f.Name)
			}
		})
		if groff, err := exec.LookPath("groff"); err == nil {
			out, err := exec.Command(groff, "-k", "-man", "-Tutf8", "-ww", "-z", filepath.Join(dir, manPage(c))).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("groff on %s: %v %s", manPage(c), err, out)
			}
		}
	}
	got, _ := filepath.Glob(filepath.Join(dir, "*"))
	for i := range got {
		got[i] = filepath.Base(got[i])
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("man pages %v, want one per command: %v", got, want)
	}
	if page, _ := os.ReadFile(filepath.Join(dir, "dm-agent.1")); !strings.Contains(string(page), `"resolve": the name does not resolve here`) {
		t.Errorf("dm-agent.1 does not document the exit status")
	}
}

// The completion scripts are generated for bash, zsh and fish, and they
// complete from the same definitions: every command, every flag of a
// command, the shells of completion.
func TestCompletions(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := dm(t, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "dm-agent") || !strings.Contains(r.stdout, "__complete") {
			t.Errorf("completion %s: exit %d: %.200s %s", shell, r.code, r.stdout, r.stderr)
			continue
		}
		// The shell reads it (where the shell is installed).
		if sh, err := exec.LookPath(shell); err == nil {
			script := filepath.Join(t.TempDir(), "dm-agent."+shell)
			os.WriteFile(script, []byte(r.stdout), 0o644)
			if out, err := exec.Command(sh, "-n", script).CombinedOutput(); err != nil {
				t.Errorf("%s -n on the completion script: %v %s", shell, err, out)
			}
		} else {
			t.Logf("%s is not installed: its script is generated, not parsed", shell)
		}
	}
	if r := dm(t, "completion", "powershell"); r.code != exitUsage {
		t.Errorf("completion powershell: exit %d, want 2", r.code)
	}

	// complete returns the candidates the shells would offer for args.
	complete := func(args ...string) []string {
		r := dm(t, append([]string{"__complete"}, args...)...)
		var out []string
		for _, l := range lines(r.stdout) {
			if strings.HasPrefix(l, ":") {
				break // the directive
			}
			name, _, _ := strings.Cut(l, "\t")
			out = append(out, name)
		}
		return out
	}
	root := newRoot(nil, nil, nil)
	var commands []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			commands = append(commands, c.Name())
		}
	}
	commands = append(commands, "help") // cobra completes its help command too
	slices.Sort(commands)
	if got := complete(""); !slices.Equal(got, commands) {
		t.Errorf("completing a command gives %v, want %v", got, commands)
	}
	settings, _, _ := root.Find([]string{"settings"})
	var flags []string
	settings.Flags().VisitAll(func(f *pflag.Flag) {
		flags = append(flags, "--"+f.Name)
	})
	got := complete("settings", "--")
	for _, f := range flags {
		if !slices.Contains(got, f) {
			t.Errorf("completing settings' flags gives %v, without %s", got, f)
		}
	}
	if got := complete("completion", ""); !slices.Equal(got, []string{"bash", "zsh", "fish"}) {
		t.Errorf("completing completion's shell gives %v", got)
	}
	if got := complete("network", ""); !slices.Equal(got, []string{"create"}) {
		t.Errorf("completing network gives %v", got)
	}
}

// The Nix package installs the man pages and completions: flake.nix's
// postInstall, run as the build runs it (with $out holding the binary),
// leaves a man page per command and a completion script per shell where
// man and the shells look in $out/share.
func TestNixPostInstall(t *testing.T) {
	flake, err := os.ReadFile(filepath.Join("..", "..", "flake.nix"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)postInstall = ''\n(.*?)\n\s*'';`).FindSubmatch(flake)
	if m == nil {
		t.Fatal("flake.nix has no postInstall")
	}
	script := string(m[1])
	if strings.Contains(script, "${") {
		t.Fatalf("postInstall uses Nix interpolation, which this test cannot run:\n%s", script)
	}
	out := t.TempDir()
	os.MkdirAll(filepath.Join(out, "bin"), 0o755)
	bin, err := os.ReadFile(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out, "bin", "dm-agent"), bin, 0o755)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "out="+out, "SOURCE_DATE_EPOCH=315532800")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("postInstall: %v\n%s\n%s", err, b, script)
	}
	files := []string{"share/bash-completion/completions/dm-agent.bash", "share/zsh/site-functions/_dm-agent", "share/fish/vendor_completions.d/dm-agent.fish"}
	for _, c := range allCommands(newRoot(nil, nil, nil)) {
		if c.IsAvailableCommand() || c.Parent() == nil {
			files = append(files, "share/man/man1/"+manPage(c))
		}
	}
	for _, f := range files {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("postInstall did not install %s: %v", f, err)
		}
	}
}
