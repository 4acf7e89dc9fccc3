// Command dm-agent is the data-mesher daemon and its command line: it gives
// a WireGuard mesh names without a central DNS server.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // arguments after the name
	help    string // what it does, with examples
	run     func(ctx *cli, args []string) error
}

type cli struct {
	stdout, stderr io.Writer
}

var commands []*command

func init() {
	commands = []*command{runCmd, keygenCmd, networkCreateCmd, settingsCmd, statusCmd, hostsCmd, resolveCmd, exportCmd, doctorCmd, versionCmd}
}

// errUsage marks a command-line mistake (exit code 2).
var errUsage = errors.New("usage")

// errFailed marks an outcome that is not an error of the command itself
// but should exit non-zero (doctor found a problem).
var errFailed = errors.New("failed")

func main() {
	os.Exit(mainArgs(os.Args[1:], os.Stdout, os.Stderr))
}

func mainArgs(args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			if cmd := find(args[1:]); cmd != nil {
				printHelp(stdout, cmd)
				return 0
			}
		}
		printTop(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := find(args)
	if cmd == nil {
		fmt.Fprintf(stderr, "dm-agent: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
		printTop(stderr)
		return 2
	}
	rest := args[len(strings.Fields(cmd.name)):]
	for _, a := range rest {
		if a == "-h" || a == "--help" || a == "-help" {
			printHelp(stdout, cmd)
			return 0
		}
	}
	err := cmd.run(c, rest)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errFailed):
		return 1
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "dm-agent %s: %v\n\n", cmd.name, err)
		printHelp(stderr, cmd)
		return 2
	default:
		fmt.Fprintf(stderr, "dm-agent %s: %v\n", cmd.name, err)
		return 1
	}
}

func find(args []string) *command {
	// Two-word commands first ("network create").
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c
		}
	}
	return nil
}

func printTop(w io.Writer) {
	fmt.Fprint(w, `dm-agent gives a WireGuard mesh names without a central DNS server.

Usage: dm-agent COMMAND [options]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "dm-agent COMMAND --help" for a command's options and examples.
Configuration: /etc/data-mesher/config.json (--config, $DM_CONFIG).
`)
}

func printHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: dm-agent %s %s\n\n%s\n", c.name, c.usage, strings.TrimSpace(c.help))
	fs := flagsFor(c)
	if fs != nil {
		fmt.Fprintln(w, "\nOptions:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}
