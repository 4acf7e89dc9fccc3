package main

import (
	"fmt"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/spf13/cobra"
)

func versionCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "version [--json]",
		Short: "print the version",
		Long: `Prints the version of dm-agent and of the data format it reads and
writes (also: dm-agent --version).`,
		Args: noArgs(nil),
	}
	asJSON := c.Flags().Bool("json", false, "print JSON: version, data_format")
	c.RunE = func(c *cobra.Command, _ []string) error {
		if *asJSON {
			return printJSON(c.OutOrStdout(), struct {
				Version    string `json:"version"`
				DataFormat string `json:"data_format"`
			}{agent.Version, agent.DataFormat})
		}
		fmt.Fprintf(c.OutOrStdout(), "dm-agent %s (data format %s)\n", agent.Version, agent.DataFormat)
		return nil
	}
	return c
}
