package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func completionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "print a shell completion script",
		Long: `Prints the completion script of a shell: commands, flags, file names,
and the running agent's networks and names where a command takes one.
The Nix package installs them; elsewhere:

  bash:  dm-agent completion bash > /etc/bash_completion.d/dm-agent
  zsh:   dm-agent completion zsh > "${fpath[1]}/_dm-agent"
  fish:  dm-agent completion fish > ~/.config/fish/completions/dm-agent.fish`,
		Example:   `  source <(dm-agent completion bash)`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 || !strings.Contains(" bash zsh fish ", " "+args[0]+" ") {
				return usageErr(c, "want one shell: bash, zsh or fish")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			root, w := c.Root(), c.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(w, true)
			case "zsh":
				return root.GenZshCompletion(w)
			}
			return root.GenFishCompletion(w, true)
		},
	}
}

// manCmd writes the man pages, one per command, from the same
// definitions as --help (the Nix package runs it at build time).
func manCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "write the man pages into DIR",
		Hidden: true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr(c, "want the DIR to write the man pages into")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			// Reproducible builds set SOURCE_DATE_EPOCH; the date in
			// the pages is that one.
			date := time.Now()
			if v, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
				date = time.Unix(v, 0).UTC()
			}
			root := c.Root()
			for _, cmd := range allCommands(root) {
				cmd.DisableAutoGenTag = true
			}
			header := &doc.GenManHeader{Title: "DM-AGENT", Section: "1", Date: &date,
				Source: "dm-agent " + root.Version, Manual: "data-mesher"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("writing the man pages: %w", err)
			}
			return nil
		},
	}
}

// completeNetworks completes a --network flag from the running agent.
func completeNetworks(cf *configFlags) cobra.CompletionFunc {
	return func(c *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := cf.client().Status(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, n := range s.Networks {
			out = append(out, cobra.CompletionWithDesc(n.Label, n.Domain))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeNames completes resolve's NAME from the hosts the agent knows.
func completeNames(cf *configFlags) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs, err := cf.client().Hosts(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		seen := map[string]bool{}
		var out []cobra.Completion
		for _, h := range hs {
			for _, n := range h.Names {
				if !seen[n] {
					seen[n] = true
					out = append(out, n)
				}
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
