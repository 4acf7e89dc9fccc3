package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/data-mesher/data-mesher/agent"
	"github.com/spf13/cobra"
)

func runCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "run [options]",
		Short: "run the agent (the daemon)",
		Long: `Runs the agent: loads its state, answers the control socket at once,
answers DNS on the tunnel address as soon as the interface has one, joins
the mesh, and keeps running until SIGTERM or SIGINT (state flushed; exit
0). SIGHUP reloads the configuration (networks, hostnames, bootstrap
sources; other changes are logged as needing a restart).

Settings come from the configuration file, then the DM_* environment
variables, then these flags.`,
		Example: `  dm-agent run --config /etc/data-mesher/config.json
  DM_LOG_LEVEL=debug dm-agent run --interface wg-mesh --hostnames mors`,
		Args: noArgs(nil),
	}
	cf := addConfig(c, false)
	cf.addSettings()
	c.RunE = func(c *cobra.Command, _ []string) error {
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		return runAgent(cfg, cf, c.ErrOrStderr())
	}
	return c
}

// runAgent runs the agent until SIGTERM or SIGINT, reloading its
// configuration on SIGHUP.
func runAgent(cfg *agent.Config, cf *configFlags, stderr io.Writer) error {
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	var h slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(h)
	// A daemon whose state is mostly long-lived: keep the heap's headroom
	// small once it runs (GOGC or GOMEMLIMIT override this). Start-up is
	// the other way round: it builds the whole state, so collecting often
	// while the heap grows from nothing costs a third of the time to the
	// first answer (TestProfileStartup at 10,000 hosts: 170-185 ms of CPU
	// with GOGC=400, 265-285 ms with 50). Until then the collector runs
	// rarely, under a 512 MiB ceiling.
	tune := os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == ""
	if tune {
		debug.SetGCPercent(400)
		debug.SetMemoryLimit(512 << 20)
	}
	opts := agent.Options{Logger: log, Ready: func() {
		if tune {
			debug.SetGCPercent(50)
			debug.SetMemoryLimit(math.MaxInt64)
			go agent.BoundHeap(context.Background(), 10*time.Second)
		}
		_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	}}
	// systemd's watchdog is fed by the agent's own loop, only while it
	// makes progress: a stuck agent is restarted, not kept alive by a timer.
	if interval, err := daemon.SdWatchdogEnabled(false); err == nil && interval > 0 {
		opts.Watchdog = func() { _, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog) }
		opts.WatchdogEvery = interval / 3
	}
	a, err := agent.New(cfg, opts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for s := range sigs {
			if s != syscall.SIGHUP {
				log.Info("signal received; shutting down", "signal", s.String())
				_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
				cancel()
				return
			}
			_, _ = daemon.SdNotify(false, daemon.SdNotifyReloading)
			newCfg, err := cf.load()
			if err == nil {
				var restart []string
				restart, err = a.Reload(newCfg)
				_ = level.UnmarshalText([]byte(newCfg.Log.Level))
				if len(restart) > 0 {
					log.Warn("configuration reloaded; these changes need a restart", "fields", restart)
				} else if err == nil {
					log.Info("configuration reloaded")
				}
			}
			if err != nil {
				log.Error("configuration not reloaded", "err", err)
			}
			_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
		}
	}()
	log.Info("starting", "version", agent.Version, "node", a.PublicKey().AuthorizedKey())
	return a.Run(ctx)
}
