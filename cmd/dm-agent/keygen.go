package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/spf13/cobra"
)

// keygenResult is keygen's --json output.
type keygenResult struct {
	KeyFile   string `json:"key_file"`
	PublicKey string `json:"public_key"`
	Created   bool   `json:"created"`
}

func keygenCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "keygen [--out FILE] [--comment TEXT] [--if-missing] [--json]",
		Short: "make a node or admin key",
		Long: `Creates an ed25519 key in OpenSSH format, readable only by its owner,
and FILE.pub beside it; prints the public key ("ssh-ed25519 AAAA…"). It
never overwrites a key: --if-missing keeps an existing one and prints its
public key (for first-start scripts); without it, an existing key is an
error.`,
		Example: `  dm-agent keygen --out /var/lib/data-mesher/node.key --comment mors
  dm-agent keygen --out admin.key --comment "clan admin"`,
		Args: noArgs(func(arg string) string { return "the key file is given with --out: dm-agent keygen --out " + arg }),
	}
	var out, comment string
	var ifMissing, asJSON bool
	c.Flags().StringVar(&out, "out", "", "key `FILE` to create (default: the configuration's key_file)")
	c.Flags().StringVar(&comment, "comment", "", "`TEXT` at the end of the public key (e.g. the host name)")
	c.Flags().BoolVar(&ifMissing, "if-missing", false, "keep an existing key (print its public key) instead of failing")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON: key_file, public_key, created")
	cf := addConfig(c, false)
	c.RunE = func(c *cobra.Command, _ []string) error {
		path := out
		if path == "" {
			cfg, err := cf.load()
			if err != nil {
				return usageErr(c, "no key file: give --out FILE, or a configuration that names one (%v)", firstLine(err))
			}
			path = cfg.KeyPath()
		}
		res := keygenResult{KeyFile: path}
		if _, err := os.Stat(path); err == nil && ifMissing {
			k, err := agent.LoadKey(path)
			if err != nil {
				return err
			}
			res.PublicKey = k.Public().AuthorizedKey()
		} else {
			if err == nil {
				return fmt.Errorf("%s exists; keygen never overwrites a key (--if-missing keeps it; or move it away first)", path)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			k, err := agent.WriteKey(path, comment)
			if err != nil {
				return err
			}
			res.PublicKey, res.Created = k.Public().AuthorizedKey(), true
		}
		if asJSON {
			return printJSON(c.OutOrStdout(), res)
		}
		fmt.Fprintln(c.OutOrStdout(), res.PublicKey)
		return nil
	}
	return c
}
