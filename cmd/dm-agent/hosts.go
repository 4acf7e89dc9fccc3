package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/control"
	"github.com/spf13/cobra"
)

func hostsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "hosts [--json]",
		Short: "list the mesh's hosts and their names",
		Long: `Lists every host of the joined networks: its key (the 8 characters of
its "ssh-ed25519 AAAA…" form that tell keys apart), addresses, how long
ago it sent a heartbeat, whether it passes the reachability challenge
here, the names it holds and the ones it claims but does not hold.

--json prints the control API's hosts, with full keys.`,
		Example: `  dm-agent hosts
  dm-agent hosts --json | jq -r '.[] | select(.reachable | not) | .node'`,
		Args: noArgs(nil),
	}
	asJSON := c.Flags().Bool("json", false, "print JSON (the control API's field names)")
	cf := addConfig(c, true)
	cf.addWait()
	c.RunE = func(c *cobra.Command, _ []string) error {
		hs, err := cf.client().Hosts(c.Context())
		if err != nil {
			return agentError(err)
		}
		if *asJSON {
			return printJSON(c.OutOrStdout(), hs)
		}
		return writeHosts(c.OutOrStdout(), hs, time.Now())
	}
	return c
}

// writeHosts prints a table per network: a full tunnel address (39
// characters) still leaves room for the names within 80 columns. SEEN is
// how long ago the host's last heartbeat was signed; why a host is not
// reachable goes below the table.
func writeHosts(w io.Writer, hs []control.HostInfo, now time.Time) error {
	if len(hs) == 0 {
		_, err := fmt.Fprintln(w, "no hosts yet")
		return err
	}
	p := newPainter(w)
	var failures []string
	var networks []string
	byNetwork := map[string][]control.HostInfo{}
	for _, h := range hs {
		if _, ok := byNetwork[h.Network]; !ok {
			networks = append(networks, h.Network)
		}
		byNetwork[h.Network] = append(byNetwork[h.Network], h)
	}
	for i, network := range networks {
		if i > 0 {
			fmt.Fprintln(w)
		}
		count := fmt.Sprintf("%d hosts", len(byNetwork[network]))
		if len(byNetwork[network]) == 1 {
			count = "1 host"
		}
		fmt.Fprintf(w, "%s: %s\n", p.paint(bold, network), count)
		t := &table{p: p}
		t.row(txt("NODE"), txt("ADDRESSES"), txt("SEEN"), txt("REACH"), txt("NAMES"))
		for _, h := range byNetwork[network] {
			reach := tint("yes", green)
			switch {
			case h.Self:
				reach = txt("self")
			case !h.Reachable && h.Challenge != "":
				failures = append(failures, fmt.Sprintf("%s (%s) fails the reachability challenge: %s", shortKey(h.Node), network, h.Challenge))
				reach = tint("no", red)
			case !h.Reachable:
				failures = append(failures, fmt.Sprintf("%s (%s): not checked yet", shortKey(h.Node), network))
				reach = tint("-", yellow)
			}
			names := strings.Join(h.Names, ", ")
			if len(h.Lost) > 0 {
				if names != "" {
					names += "; "
				}
				names += "lost: " + strings.Join(h.Lost, ", ")
			}
			if names == "" {
				names = "-"
			}
			addrs := h.Addresses
			if len(addrs) == 0 {
				addrs = []string{"-"}
			}
			t.row(txt(shortKey(h.Node)), txt(addrs[0]), txt(age(now.Sub(h.Heartbeat))), reach, txt(names))
			for _, a := range addrs[1:] {
				t.row(txt(""), txt(a))
			}
		}
		if err := t.write(w); err != nil {
			return err
		}
	}
	if len(failures) > 0 {
		fmt.Fprintln(w)
		for _, f := range failures {
			for i, l := range wrap(f, 80-4) {
				if i > 0 {
					l = "    " + l
				}
				fmt.Fprintln(w, l)
			}
		}
	}
	return nil
}
