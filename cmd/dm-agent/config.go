package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/agent"
	"github.com/data-mesher/data-mesher/control"
	"github.com/spf13/cobra"
)

// A setting's flag, environment variable, field of the file, and help
// live together; run has them all.
type setting struct {
	flag, env, field, help string
	apply                  func(c *agent.Config, v string)
}

var settings = []setting{
	{"interface", "DM_INTERFACE", "interface", "WireGuard interface `NAME` of the mesh (default wg0)", func(c *agent.Config, v string) { c.Interface = v }},
	{"state-dir", "DM_STATE_DIR", "state_dir", "state directory `DIR` (default /var/lib/data-mesher)", func(c *agent.Config, v string) { c.StateDir = v }},
	{"key-file", "DM_KEY_FILE", "key_file", "node key `FILE` (default <state-dir>/node.key)", func(c *agent.Config, v string) { c.KeyFile = v }},
	{"hostnames", "DM_HOSTNAMES", "hostnames", "`NAMES` to claim, comma-separated (e.g. mors,gate)", func(c *agent.Config, v string) { c.Hostnames = splitList(v) }},
	{"bind-address", "DM_BIND_ADDRESS", "bind_address", "tunnel `ADDRESS` to use (default: the interface's first)", func(c *agent.Config, v string) { c.BindAddress = v }},
	{"control-socket", "DM_CONTROL_SOCKET", "control_socket", "control `SOCKET` (default /run/data-mesher/control.sock)", func(c *agent.Config, v string) { c.ControlSocket = v }},
	{"metrics-listen", "DM_METRICS_LISTEN", "metrics_listen", "loopback `ADDR:PORT` for Prometheus metrics, or off (default 127.0.0.1:9103)", func(c *agent.Config, v string) { c.MetricsListen = v }},
	{"log-level", "DM_LOG_LEVEL", "log.level", "log `LEVEL`: debug, info, warn or error (default info)", func(c *agent.Config, v string) { c.Log.Level = v }},
	{"log-format", "DM_LOG_FORMAT", "log.format", "log `FORMAT`: text or json (default text)", func(c *agent.Config, v string) { c.Log.Format = v }},
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

const defaultConfig = "/etc/data-mesher/config.json"

// configFlags are a command's --config, and --control-socket or all of
// run's settings, and how they make a configuration or find the agent.
type configFlags struct {
	cmd    *cobra.Command
	path   string
	values map[string]*string // by flag name
	wait   time.Duration      // --wait; 0 for commands without it
}

// addConfig gives c --config and, with socket, --control-socket.
func addConfig(c *cobra.Command, socket bool) *configFlags {
	cf := &configFlags{cmd: c, values: map[string]*string{}}
	c.Flags().StringVar(&cf.path, "config", defaultConfig, "configuration `FILE` ($DM_CONFIG)")
	if socket {
		cf.values["control-socket"] = c.Flags().String("control-socket", "",
			"the agent's control `SOCKET` ($DM_CONTROL_SOCKET; default: the configuration's control_socket, else /run/data-mesher/control.sock)")
	}
	return cf
}

// addWait gives c --wait: how long to wait for an agent that is still
// starting. Commands that say what the agent is doing (status, doctor)
// have none: they answer at once.
func (cf *configFlags) addWait() {
	cf.cmd.Flags().DurationVar(&cf.wait, "wait", 30*time.Second,
		"how long (a `DURATION`: 30s, 2m) to wait for an agent that is still starting; 0 fails at once")
}

// addSettings gives c every setting's flag (run).
func (cf *configFlags) addSettings() {
	for _, s := range settings {
		cf.values[s.flag] = cf.cmd.Flags().String(s.flag, "", s.help+" ($"+s.env+")")
	}
}

// file is the configuration file: --config, else $DM_CONFIG, else the
// default.
func (cf *configFlags) file() string {
	if !cf.cmd.Flags().Changed("config") {
		if v := os.Getenv("DM_CONFIG"); v != "" {
			return v
		}
	}
	return cf.path
}

// load reads the configuration: the file, then the environment, then the
// flags; each error says where the bad value was set.
func (cf *configFlags) load() (*agent.Config, error) {
	path := cf.file()
	c, err := agent.LoadConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (write one: README, \"Anywhere else\", and dm-agent run --help for every setting; or name yours with --config FILE or $DM_CONFIG)", err)
	}
	if err != nil {
		return nil, problems(err)
	}
	for _, s := range settings {
		if v := os.Getenv(s.env); v != "" {
			s.apply(c, v)
			c.SetOrigin(s.field, "$"+s.env)
		}
		if p := cf.values[s.flag]; p != nil && cf.cmd.Flags().Changed(s.flag) {
			s.apply(c, *p)
			c.SetOrigin(s.field, "--"+s.flag)
		}
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, problems(err)
	}
	return c, nil
}

// problems heads a list of several configuration errors with their count.
func problems(err error) error {
	var list interface{ Unwrap() []error }
	if errors.As(err, &list) && len(list.Unwrap()) > 1 {
		return fmt.Errorf("the configuration has %d problems:\n%w", len(list.Unwrap()), err)
	}
	return err
}

// socket finds the control socket without needing a valid configuration:
// --control-socket, $DM_CONTROL_SOCKET, the file's control_socket, the
// default.
func (cf *configFlags) socket() string {
	if p := cf.values["control-socket"]; p != nil && cf.cmd.Flags().Changed("control-socket") {
		return *p
	}
	if v := os.Getenv("DM_CONTROL_SOCKET"); v != "" {
		return v
	}
	if c, err := agent.LoadConfig(cf.file()); err == nil && c.ControlSocket != "" {
		return c.ControlSocket
	}
	return agent.DefaultControlSocket
}

// client is a client of the running agent. With --wait, a call the agent
// cannot answer yet (it is starting) is tried again, and the person who
// ran the command is told once what it waits for.
func (cf *configFlags) client() *control.Client {
	cl := control.NewClient(cf.socket())
	cl.WaitReady(cf.wait, func(reason string, wait time.Duration) {
		fmt.Fprintf(cf.cmd.ErrOrStderr(), "waiting up to %s (--wait): %s…\n", wait, reason)
	})
	return cl
}

// agentError says what a control API error means for the person who ran
// the command.
func agentError(err error) error {
	if errors.Is(err, control.ErrNotReady) {
		msg := strings.TrimPrefix(err.Error(), control.ErrNotReady.Error()+": ")
		msg = strings.TrimPrefix(msg, "the agent is ")
		return fmt.Errorf("the agent runs but is not ready: it is %s\n(dm-agent status shows what it waits for; dm-agent doctor says what to fix)", msg)
	}
	return err
}

// networkError explains a network the agent does not know, listing the
// ones it has.
func networkError(ctx context.Context, cl *control.Client, name string, err error) error {
	if !errors.Is(err, control.ErrNotFound) {
		return agentError(err)
	}
	s, serr := cl.Status(ctx)
	if serr != nil || len(s.Networks) == 0 {
		return fmt.Errorf("network %q is not joined by the agent", name)
	}
	for _, n := range s.Networks {
		if n.Label == name || n.ID == name {
			// The network is joined: what was not found is something in
			// it (a namespace, a key), and the agent said what.
			return errors.New(strings.TrimPrefix(err.Error(), control.ErrNotFound.Error()+": "))
		}
	}
	var labels []string
	best, bestD := "", max(1, len(name)/3)+1
	for _, n := range s.Networks {
		labels = append(labels, n.Label)
		if d := editDistance(name, n.Label); d < bestD {
			best, bestD = n.Label, d
		}
	}
	msg := fmt.Sprintf("network %q is not joined by the agent; its networks are: %s (a label of the configuration, or the network's key)", name, strings.Join(labels, ", "))
	if best != "" {
		msg = fmt.Sprintf("network %q is not joined by the agent; did you mean %q? Its networks are: %s", name, best, strings.Join(labels, ", "))
	}
	return errors.New(msg)
}
