package main

import (
	"github.com/spf13/cobra"
)

func exportCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "export [--network NAME]",
		Short: "print data.json of the joined networks",
		Long: `Prints the signed records of the joined networks as data.json: a
backup, or a bootstrap file any web server can serve. data.json is the
mesh's own format (keys in base64, as every node reads them); it is
always JSON.`,
		Example: `  dm-agent export --network clan > /srv/www/clan/data.json`,
		Args:    noArgs(func(arg string) string { return "name a network with --network " + arg }),
	}
	var network string
	c.Flags().StringVar(&network, "network", "", "only this network: its `NAME` in the configuration, or its key")
	c.Flags().Bool("json", false, "accepted for symmetry: the output is JSON (data.json) anyway")
	cf := addConfig(c, true)
	cf.addWait()
	_ = c.RegisterFlagCompletionFunc("network", completeNetworks(cf))
	c.RunE = func(c *cobra.Command, _ []string) error {
		cl := cf.client()
		data, err := cl.Export(c.Context(), network)
		if err != nil {
			return networkError(c.Context(), cl, network, err)
		}
		_, err = c.OutOrStdout().Write(data)
		return err
	}
	return c
}
