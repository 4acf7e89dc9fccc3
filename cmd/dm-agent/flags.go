package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/data-mesher/data-mesher/agent"
)

// A setting's flag, environment variable, default and help live together.
type setting struct {
	flag, env, help string
	apply           func(c *agent.Config, v string)
}

var settings = []setting{
	{"interface", "DM_INTERFACE", "WireGuard interface of the mesh (default wg0)", func(c *agent.Config, v string) { c.Interface = v }},
	{"state-dir", "DM_STATE_DIR", "state directory (default /var/lib/data-mesher)", func(c *agent.Config, v string) { c.StateDir = v }},
	{"key-file", "DM_KEY_FILE", "node key file (default <state-dir>/node.key)", func(c *agent.Config, v string) { c.KeyFile = v }},
	{"hostnames", "DM_HOSTNAMES", "names to claim, comma-separated (e.g. mors)", func(c *agent.Config, v string) { c.Hostnames = splitList(v) }},
	{"bind-address", "DM_BIND_ADDRESS", "tunnel address to use (default: the interface's first)", func(c *agent.Config, v string) { c.BindAddress = v }},
	{"control-socket", "DM_CONTROL_SOCKET", "control socket (default /run/data-mesher/control.sock)", func(c *agent.Config, v string) { c.ControlSocket = v }},
	{"metrics-listen", "DM_METRICS_LISTEN", "loopback address for Prometheus metrics, or off (default 127.0.0.1:9103)", func(c *agent.Config, v string) { c.MetricsListen = v }},
	{"log-level", "DM_LOG_LEVEL", "debug, info, warn or error (default info)", func(c *agent.Config, v string) { c.Log.Level = v }},
	{"log-format", "DM_LOG_FORMAT", "text or json (default text)", func(c *agent.Config, v string) { c.Log.Format = v }},
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

// configFlags are the flags every command that reads the configuration has.
type configFlags struct {
	path   string
	values map[string]*string
}

const defaultConfig = "/etc/data-mesher/config.json"

func addConfigFlags(fs *flag.FlagSet, withSettings bool) *configFlags {
	cf := &configFlags{values: map[string]*string{}}
	def := defaultConfig
	if v := os.Getenv("DM_CONFIG"); v != "" {
		def = v
	}
	fs.StringVar(&cf.path, "config", def, "configuration file ($DM_CONFIG)")
	for _, s := range settings {
		if withSettings || s.flag == "control-socket" {
			cf.values[s.flag] = fs.String(s.flag, "", s.help+" ($"+s.env+")")
		}
	}
	return cf
}

// load reads the configuration: file, then environment, then flags.
func (cf *configFlags) load() (*agent.Config, error) {
	c := &agent.Config{}
	if _, err := os.Stat(cf.path); err == nil || cf.path != defaultConfig {
		var err error
		if c, err = agent.LoadConfig(cf.path); err != nil {
			return nil, err
		}
	}
	for _, s := range settings {
		if v := os.Getenv(s.env); v != "" {
			s.apply(c, v)
		}
		if p := cf.values[s.flag]; p != nil && *p != "" {
			s.apply(c, *p)
		}
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("configuration %s: %w", cf.path, err)
	}
	return c, nil
}

// socketPath finds the control socket without needing a valid config.
func (cf *configFlags) socketPath() string {
	if p := cf.values["control-socket"]; p != nil && *p != "" {
		return *p
	}
	if v := os.Getenv("DM_CONTROL_SOCKET"); v != "" {
		return v
	}
	if c, err := agent.LoadConfig(cf.path); err == nil && c.ControlSocket != "" {
		return c.ControlSocket
	}
	return agent.DefaultControlSocket
}

// flagSets builds each command's flag set once for help output.
var flagSetBuilders = map[string]func(fs *flag.FlagSet){}

func flagsFor(c *command) *flag.FlagSet {
	b, ok := flagSetBuilders[c.name]
	if !ok {
		return nil
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b(fs)
	return fs
}

// newFlags makes a command's flag set; errors are reported by the caller,
// with the command's help.
func newFlags(name string, _ io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// parse parses flags wherever they appear among the arguments ("resolve
// NAME --json" as well as "resolve --json NAME"), and returns the others.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
