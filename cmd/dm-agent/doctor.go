package main

import (
	"errors"
	"io/fs"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/data-mesher/data-mesher/doctor"
	"github.com/spf13/cobra"
)

func doctorCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "doctor [--json]",
		Short: "check everything and say what to fix",
		Long: `Checks the configuration, the key, the WireGuard interface and peers,
the running agent and its ports, DNS on the tunnel address, the state
file, the networks' settings and attestors, clocks, reachability, split
DNS, and this node's names; prints each with a status and what to do.
Exits 1 when a check fails. Run it as root (reading WireGuard needs
CAP_NET_ADMIN). The DM_* variables of "dm-agent run" apply here too.`,
		Example: `  sudo dm-agent doctor
  sudo dm-agent doctor --json | jq '.[] | select(.status != "ok")'`,
		Args: noArgs(nil),
	}
	asJSON := c.Flags().Bool("json", false, "print JSON: name, status, detail, remedy of each check")
	cf := addConfig(c, true)
	c.RunE = func(c *cobra.Command, _ []string) error {
		load := func() (*agent.Config, error) {
			c, err := cf.load()
			var ce *agent.ConfigError
			if errors.Is(err, fs.ErrNotExist) && errors.As(err, &ce) {
				return nil, ce // doctor's remedy says what to do
			}
			return c, err
		}
		results := doctor.Run(doctor.System(cf.file(), load))
		if err := doctor.Write(c.OutOrStdout(), results, *asJSON); err != nil {
			return err
		}
		if doctor.Failed(results) {
			return exitCode(exitFailure)
		}
		return nil
	}
	return c
}
