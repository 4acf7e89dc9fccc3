// Command dm-agent is the data-mesher daemon and its command line: it gives
// a WireGuard mesh names without a central DNS server.
//
// The command line is built with spf13/cobra from one definition per
// command (root.go and one file per command); the same definitions give
// --help, the man pages (`dm-agent man DIR`, hidden) and the shell
// completions (`dm-agent completion bash|zsh|fish`).
//
// Exit status: 0 success; 1 failure (and doctor found a problem); 2 a
// mistake on the command line; 3 resolve: the name does not resolve here.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// The exit codes, documented in the root command's help and the man page.
const (
	exitOK         = 0
	exitFailure    = 1
	exitUsage      = 2
	exitNoSuchName = 3
)

// usageError is a mistake on the command line: it exits 2, with the
// command's usage line and where to read more, not the whole help.
type usageError struct {
	cmd *cobra.Command
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usageErr(c *cobra.Command, format string, args ...any) error {
	return &usageError{cmd: c, msg: fmt.Sprintf(format, args...)}
}

// exitCode ends a command that has said what it had to (doctor's table,
// resolve's explanation) with a status other than 0.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	os.Exit(mainArgs(os.Args[1:], os.Stdout, os.Stderr))
}

// mainArgs runs the command line and returns its exit status; only main
// exits.
func mainArgs(args []string, stdout, stderr io.Writer) int {
	if args == nil {
		args = []string{} // cobra reads os.Args for nil
	}
	root := newRoot(stdout, stderr, args)
	root.SetArgs(singleDash(root, args))
	cmd, err := root.ExecuteC()
	return report(cmd, err, stderr)
}

// report prints err for a person and picks the exit status.
func report(cmd *cobra.Command, err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	var ue *usageError
	if errors.As(err, &ue) {
		c := ue.cmd
		if c == nil {
			c = cmd
		}
		fmt.Fprintf(stderr, "%s: %s\n", c.CommandPath(), ue.msg)
		fmt.Fprintf(stderr, "Usage: %s\nRun '%s --help' for its options and examples.\n", usageLine(c), c.CommandPath())
		return exitUsage
	}
	name := "dm-agent"
	if cmd != nil {
		name = cmd.CommandPath()
	}
	lines := strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
	fmt.Fprintf(stderr, "%s: %s\n", name, lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintf(stderr, "  %s\n", l)
	}
	return exitFailure
}

// firstLine is the first line of an error, for a message that goes on.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// singleDash turns "-json" into "--json" where the command has a flag of
// that name: the hand-rolled command line took Go's single-dash flags, and
// scripts written for it keep working. Anything else is left for the
// parser (and its error).
func singleDash(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && cmd.Flags().Lookup(name) != nil {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}
