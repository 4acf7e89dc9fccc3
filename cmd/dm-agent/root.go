package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const rootLong = `dm-agent gives a WireGuard mesh names without a central DNS server. It
runs on every machine of the mesh ("dm-agent run"), keeps a replicated
database of signed records, and answers DNS for the mesh's domains on the
tunnel address. The other commands talk to the running agent over its
control socket, or make and sign a network's settings.

Configuration: /etc/data-mesher/config.json (--config, $DM_CONFIG).

Exit status:
  0  success
  1  failure (and "doctor" found a problem)
  2  a mistake on the command line
  3  "resolve": the name does not resolve here`

// The help and usage layout: the usage line, the commands or the
// options, the examples; wrapped for 80 columns.
const usageTemplate = `Usage:
  {{if .HasAvailableSubCommands}}{{.CommandPath}} COMMAND [options]{{else}}{{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if .IsAvailableCommand}}
  {{rpad .Name .NamePadding}}  {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Options:
{{.LocalFlags.FlagUsagesWrapped 80 | trimTrailingWhitespaces}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Run "{{.CommandPath}} COMMAND --help" for a command's options and examples.{{end}}
`

const helpTemplate = `{{with (or .Long .Short)}}{{. | trimTrailingWhitespaces}}

{{end}}{{.UsageString}}`

// newRoot builds the whole command line. args are the arguments it will
// run with, for the error of a misspelt command followed by flags.
func newRoot(stdout, stderr io.Writer, args []string) *cobra.Command {
	root := &cobra.Command{
		Use:     "dm-agent",
		Short:   "names for a WireGuard mesh without a central DNS server",
		Long:    rootLong,
		Version: agent.Version,
		// Errors and usage are printed by report, once, in one form.
		SilenceErrors:         true,
		SilenceUsage:          true,
		DisableFlagsInUseLine: true,
		Args:                  cobra.ArbitraryArgs,
		RunE:                  runGroup,
		CompletionOptions:     cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("dm-agent {{.Version}} (data format " + agent.DataFormat + ")\n")
	root.SetUsageTemplate(usageTemplate)
	root.SetHelpTemplate(helpTemplate)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return flagError(c, err, args) })
	root.SetHelpCommand(helpCommand())
	root.Flags().Bool("version", false, "print the version and exit")

	network := &cobra.Command{
		Use:   "network",
		Short: "create a network (admin)",
		Long: `Commands for a network as a whole. "network create" makes a new
network's admin key and first settings; "settings" changes them later.`,
		Args: cobra.ArbitraryArgs,
		RunE: runGroup,
	}
	network.AddCommand(networkCreateCmd())
	root.AddCommand(runCmd(), statusCmd(), hostsCmd(), resolveCmd(), doctorCmd(), exportCmd(),
		keygenCmd(), network, settingsCmd(), dataCmd(), versionCmd(), completionCmd(), manCmd())
	for _, c := range allCommands(root) {
		c.DisableFlagsInUseLine = true
		c.Flags().BoolP("help", "h", false, "show this help")
	}
	return root
}

// allCommands lists c and every command under it.
func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, s := range c.Commands() {
		out = append(out, allCommands(s)...)
	}
	return out
}

// runGroup runs a command that only groups others ("dm-agent",
// "dm-agent network"): without a command it shows what there is, with an
// unknown one it says what was meant.
func runGroup(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		c.SetOut(c.ErrOrStderr())
		_ = c.Help()
		return exitCode(exitUsage)
	}
	return unknownCommand(c, args[0])
}

func unknownCommand(c *cobra.Command, name string) error {
	var names []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	msg := fmt.Sprintf("unknown command %q", name)
	if s := closest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else {
		msg += "; the commands are " + strings.Join(names, ", ")
	}
	return usageErr(c, "%s", msg)
}

// closest is the name nearest to typed, if one is close enough to be a
// slip: a prefix of it, or within a third of its letters.
func closest(typed string, names []string) string {
	best, bestD := "", max(1, len(typed)/3)+1
	for _, n := range names {
		d := editDistance(typed, n)
		if strings.HasPrefix(n, typed) && len(typed) >= 2 {
			d = 1
		}
		if d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// usageLine is a command's usage, as the help's first line shows it.
func usageLine(c *cobra.Command) string {
	if c.HasAvailableSubCommands() {
		return c.CommandPath() + " COMMAND [options]"
	}
	return c.UseLine()
}

// helpCommand is "dm-agent help [COMMAND]", kept out of the lists (every
// command has --help).
func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "help [COMMAND]",
		Short:  "show a command's help",
		Hidden: true,
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || target == nil || len(rest) > 0 {
				return unknownCommand(c.Root(), strings.Join(args, " "))
			}
			target.SetOut(c.OutOrStdout())
			return target.Help()
		},
	}
}

// flagError puts pflag's errors in the words of the help (two dashes) and
// suggests the flag that was meant.
func flagError(c *cobra.Command, err error, args []string) error {
	// "dm-agent stauts --json": the misspelt command is the mistake, not
	// the flag the root command does not have.
	if c == c.Root() {
		for _, a := range args {
			if !strings.HasPrefix(a, "-") {
				return unknownCommand(c, a)
			}
		}
	}
	msg := err.Error()
	var name string
	switch {
	case strings.HasPrefix(msg, "unknown flag: --"):
		name = strings.TrimPrefix(msg, "unknown flag: --")
		msg = "unknown flag --" + name
	case strings.HasPrefix(msg, "unknown shorthand flag: "):
		// pflag read "-jsn" as -j -s -n; the user meant a long flag.
		_, written, _ := strings.Cut(msg, " in ")
		name = strings.TrimLeft(written, "-")
		name, _, _ = strings.Cut(name, "=")
		if c.Flags().Lookup(name) != nil {
			return usageErr(c, "unknown flag %s: flags take two dashes (--%s)", written, name)
		}
		if s := closestFlag(c, name); s != "" {
			return usageErr(c, "unknown flag %s: flags take two dashes; did you mean --%s?", written, s)
		}
		return usageErr(c, "unknown flag %s (flags take two dashes)", written)
	case strings.HasPrefix(msg, "invalid argument "):
		// invalid argument "5x" for "--host-ttl" flag: why
		var value, flagName, why string
		rest := strings.TrimPrefix(msg, "invalid argument ")
		if v, after, ok := strings.Cut(rest, " for "); ok {
			value = v
			if f, w, ok := strings.Cut(after, " flag: "); ok {
				flagName, why = strings.Trim(f, `"`), w
				if _, long, ok := strings.Cut(flagName, ", "); ok {
					flagName = long
				}
				return usageErr(c, "%s %s: %s", flagName, value, why)
			}
		}
		return usageErr(c, "%s", msg)
	case strings.HasPrefix(msg, "flag needs an argument: "):
		f := strings.Trim(strings.TrimPrefix(msg, "flag needs an argument: "), "'")
		if !strings.HasPrefix(f, "-") {
			if fl := c.Flags().ShorthandLookup(f); fl != nil {
				f = fl.Name
			}
			f = "--" + f
		}
		msg = fmt.Sprintf("%s needs a value", f)
		if fl := c.Flags().Lookup(strings.TrimLeft(f, "-")); fl != nil {
			if v, _ := pflag.UnquoteUsage(fl); v != "" {
				msg += fmt.Sprintf(" (%s %s)", f, v)
			}
		}
		return usageErr(c, "%s", msg)
	default:
		return usageErr(c, "%s", msg)
	}
	if s := closestFlag(c, name); s != "" {
		msg += fmt.Sprintf("; did you mean --%s?", s)
	}
	return usageErr(c, "%s", msg)
}

// closestFlag is the command's flag nearest to name, if one is close.
func closestFlag(c *cobra.Command, name string) string {
	var names []string
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	slices.Sort(names)
	return closest(name, names)
}

// editDistance counts insertions, deletions, substitutions and swaps of
// neighbours ("jsno" is one from "json").
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// noArgs refuses positional arguments; hint says what to write instead.
func noArgs(hint func(arg string) string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unexpected argument %q", args[0])
		if len(args) > 1 {
			msg = fmt.Sprintf("unexpected arguments %q", args)
		}
		if hint != nil {
			msg += ": " + hint(args[0])
		} else {
			msg += ": " + c.Name() + " takes none"
		}
		return usageErr(c, "%s", msg)
	}
}
