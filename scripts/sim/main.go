// Command sim runs the deterministic mesh simulator (package sim) once
// per seed and prints its report; a run with a violation prints the
// command that replays it and exits 1.
//
//	go run ./scripts/sim -nodes 100000
//	go run ./scripts/sim -nodes 10000 -loss 0.01 -down 0.1 -seeds 3
//	go run ./scripts/sim -nodes 1000 -partition 40s-70s -churn 6
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/sim"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	nodes := fs.Int("nodes", 10000, "number of nodes")
	seed := fs.Uint64("seed", 1, "first seed")
	seeds := fs.Int("seeds", 1, "number of seeds to run, from -seed on")
	held := fs.Int("held", -1, "host records every node holds at the start (-1: all up to 1,000 nodes, else 100)")
	wire := fs.Int("wire", 2, "anti-entropy version: 2 (riblt) or 1 (bucket digests)")
	loss := fs.Float64("loss", 0, "UDP packet loss (HTTP: delayed by an RTO instead)")
	down := fs.Float64("down", 0, "fraction of nodes that crash during the warm-up")
	churn := fs.Float64("churn", 0, "crashes per minute after the warm-up, each down 30 s")
	part := fs.String("partition", "", "cut the nodes in halves from..to, e.g. 40s-70s")
	hostile := fs.Int("hostile", 1, "hostile nodes that inject forged records")
	latency := fs.Duration("latency", time.Millisecond, "one-way latency (plus up to as much jitter)")
	claims := fs.Int("claims", 3, "claims whose spread is measured")
	burst := fs.Int("burst", 100, "claims in the burst")
	large := fs.Int("large", 2, "settings updates too large for a packet (announced, fetched) in the burst")
	timeouts := fs.String("timeouts", "lan", "memberlist's failure detection: lan (its defaults) or scale (as mesh's TestScale)")
	warmup := fs.Duration("warmup", 40*time.Second, "idle time before the first claim (idle traffic is measured over its second half)")
	kick := fs.Bool("kick-on-join", false, "every node runs a round when it sees a member join (the mesh's behaviour before)")
	behind := fs.Bool("wait-behind", false, "the mesh's gossip waits behind memberlist's broadcasts, with no packets of its own (the mesh's behaviour before)")
	compress := fs.Bool("compress", true, "memberlist's compression (as its default; TestScale's DM_SCALE_COMPRESS=0 is -compress=false)")
	agents := fs.Int("agents", 0, "model memberlist's failure detection among this many agents instead of at every node (0: exact; see sim.Config.Agents)")
	progress := fs.Duration("progress", 0, "print the virtual time reached to stderr this often (of wall time)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the runs to this file")
	memprofile := fs.String("memprofile", "", "write a heap profile to this file each time the live heap passes its largest so far by a tenth (so the last one is near the peak)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		stop := profilePeaks(*memprofile)
		defer stop()
	}
	failed := false
	for k := range *seeds {
		cfg := sim.DefaultConfig(*nodes)
		cfg.Seed = *seed + uint64(k)
		if *held >= 0 {
			cfg.Held = *held
		}
		cfg.WireVersion, cfg.Loss, cfg.Down, cfg.ChurnPerMinute, cfg.Hostile = *wire, *loss, *down, *churn, *hostile
		cfg.Latency, cfg.Jitter, cfg.Claims, cfg.Burst, cfg.Large, cfg.Warmup = *latency, *latency, *claims, *burst, *large, *warmup
		cfg.KickOnJoin = *kick
		cfg.WaitBehind = *behind
		cfg.EnableCompressed = *compress
		cfg.Agents = *agents
		if *progress > 0 {
			start, last := time.Now(), time.Now()
			cfg.Progress = func(now time.Duration, events int64) {
				if time.Since(last) >= *progress {
					last = time.Now()
					fmt.Fprintf(os.Stderr, "sim: seed %d: %v of virtual time, %d events, after %v\n", cfg.Seed, now.Round(time.Millisecond), events, time.Since(start).Round(time.Second))
				}
			}
		}
		switch *timeouts {
		case "lan":
		case "scale":
			cfg.ScaleTimeouts()
		default:
			return fmt.Errorf("-timeouts %q: lan or scale", *timeouts)
		}
		if *part != "" {
			from, to, ok := strings.Cut(*part, "-")
			a, err1 := time.ParseDuration(from)
			b, err2 := time.ParseDuration(to)
			if !ok || err1 != nil || err2 != nil || b <= a {
				return fmt.Errorf("-partition %q: want from-to, e.g. 40s-70s", *part)
			}
			cfg.PartitionAt, cfg.HealAt = a, b
		}
		r, err := sim.Run(cfg)
		if err != nil {
			return err
		}
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
		} else {
			fmt.Println(r)
		}
		if len(r.Violations) > 0 {
			failed = true
			fmt.Fprintf(os.Stderr, "seed %d failed; replay it with: go run ./scripts/sim %s -seed %d -seeds 1\n",
				cfg.Seed, strings.Join(without(args, "-seed", "-seeds"), " "), cfg.Seed)
		}
	}
	if failed {
		return fmt.Errorf("invariants violated")
	}
	return nil
}

// profilePeaks writes a heap profile to path whenever the live heap,
// sampled every half second, passes its largest so far by a tenth; the
// returned func stops it.
func profilePeaks(path string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var peak uint64
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if live := sample[0].Value.Uint64(); live > peak+peak/10 {
				peak = live
				if err := writeHeapProfile(path); err != nil {
					fmt.Fprintln(os.Stderr, "sim: heap profile:", err)
					return
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// without drops the named flags (and their values) from args.
func without(args []string, names ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		drop := false
		for _, n := range names {
			if "-"+name == n || "--"+name == n {
				drop = true
			}
		}
		if drop {
			if !hasValue && i+1 < len(args) {
				i++
			}
			continue
		}
		out = append(out, a)
	}
	return out
}
