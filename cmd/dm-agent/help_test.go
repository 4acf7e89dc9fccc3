package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/help from the commands")

// helpCommands are the commands a person can ask --help of: all of them
// but cobra's own plumbing (__complete) and the hidden help command.
func helpCommands() []*cobra.Command {
	var out []*cobra.Command
	for _, c := range allCommands(newRoot(nil, nil, nil)) {
		if strings.HasPrefix(c.Name(), "__") || c.Name() == "help" {
			continue
		}
		out = append(out, c)
	}
	return out
}

// goldenName is a command's file in testdata/help: dm-agent-network-create.txt.
func goldenName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "-") + ".txt"
}

// Every command's --help, as a person sees it, against testdata/help
// (go test -run TestHelpGolden -update rewrites them after a change).
func TestHelpGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range helpCommands() {
		args := append(strings.Fields(strings.TrimPrefix(c.CommandPath(), "dm-agent")), "--help")
		var out, errb bytes.Buffer
		if code := mainArgs(args, &out, &errb); code != 0 || errb.Len() > 0 {
			t.Errorf("dm-agent %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
		name := goldenName(c)
		seen[name] = true
		path := filepath.Join("testdata", "help", name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (go test -run TestHelpGolden -update writes it)", c.CommandPath(), err)
			continue
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("dm-agent %s differs from %s (go test -run TestHelpGolden -update, then read the diff):\n%s", strings.Join(args, " "), path, out.String())
		}
		for i, l := range strings.Split(out.String(), "\n") {
			if len([]rune(l)) > 80 {
				t.Errorf("%s: line %d is wider than 80 columns: %q", path, i+1, l)
			}
		}
		if !strings.Contains(out.String(), "Usage:\n  dm-agent") {
			t.Errorf("%s has no usage line", path)
		}
	}
	// No golden file of a command that is gone.
	files, _ := filepath.Glob(filepath.Join("testdata", "help", "*.txt"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			if *update {
				os.Remove(f)
			} else {
				t.Errorf("%s is the help of no command", f)
			}
		}
	}
}

// Each command that does something shows how, and each group lists its
// commands.
func TestHelpHasExamples(t *testing.T) {
	for _, c := range helpCommands() {
		switch {
		case c.HasAvailableSubCommands():
			continue
		case c.Name() == "version" || c.Hidden:
			continue
		case c.Example == "":
			t.Errorf("%s --help has no example", c.CommandPath())
		}
	}
}
