package sim

import (
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
)

// Report is what a run measured. Times are virtual.
type Report struct {
	Seed  uint64
	Nodes int
	// Live is the number of honest nodes up at the end.
	Live int

	// Reach99 and Reach100 are the median times for a claim and its
	// attestation to be held by 99% and 100% of the live honest nodes;
	// the Max ones the worst of the claims.
	Reach99, Reach100       time.Duration
	Reach99Max, Reach100Max time.Duration
	// FloorRounds is the push-gossip floor log(N)/log(k+1) + ln(N)/k, and
	// Floor the same in time (rounds × GossipInterval).
	FloorRounds float64
	Floor       time.Duration

	// Bytes per live node per second, idle (the second half of the
	// warm-up) and from the burst's start until it is everywhere.
	Idle, Burst Traffic
	BurstTime   time.Duration
	// BurstSyncRecords is the records per node that anti-entropy, not
	// gossip or fetches, delivered during the burst.
	BurstSyncRecords float64
	// DataJSONPerRound is the size of one node's data.json at the end:
	// what a round cost when the prototype exchanged whole states.
	DataJSONBytes int

	// Detected is the median time from a crash to the member lists
	// dropping the node, over the nodes down at the end; Undetected
	// counts those still listed.
	Detected   time.Duration
	Undetected int

	SyncRounds, SyncRequests, Fallbacks, Fetches int64
	Forged, Rejected                             int64
	// Converged is when the honest nodes that can reach each other held
	// identical digests, after the last publication; zero if never.
	Converged  time.Duration
	Violations []string
	Events     int64
	// Trace hashes every message sent: equal traces, equal runs.
	Trace string
	// Wall is how long the run took (not part of the result).
	Wall time.Duration
}

// Traffic is bytes per node per second, by kind.
type Traffic struct {
	Gossip, Probe, Sync, Fetch, Total float64
}

func (s *Sim) traffic(from [nCats]int64, span time.Duration) Traffic {
	live := float64(len(s.honestLive()) + s.cfg.Hostile)
	per := func(c int) float64 { return float64(s.bytes[c]-from[c]) / live / span.Seconds() }
	t := Traffic{Gossip: per(catGossip), Probe: per(catProbe), Sync: per(catSync), Fetch: per(catFetch)}
	t.Total = t.Gossip + t.Probe + t.Sync + t.Fetch
	return t
}

// Run runs cfg to the end and reports.
func Run(cfg Config) (Report, error) {
	start := time.Now()
	s, err := New(cfg)
	if err != nil {
		return Report{}, err
	}
	r := s.run()
	r.Wall = time.Since(start)
	return r, nil
}

func (s *Sim) run() Report {
	c := s.cfg
	s.r.Seed, s.r.Nodes = c.Seed, c.Nodes
	s.r.FloorRounds = gossipFloor(c.Nodes, c.GossipNodes)
	s.r.Floor = time.Duration(s.r.FloorRounds * float64(c.GossipInterval))
	for _, n := range s.nodes {
		n.epoch = 1
		s.startTimers(n)
	}
	// Crashes during the second half of the warm-up, while idle traffic
	// is measured.
	for _, i := range s.rng.Perm(c.Nodes)[:int(c.Down*float64(c.Nodes))] {
		n := s.nodes[i]
		s.at(c.Warmup/2+time.Duration(s.rng.Int64N(int64(c.Warmup-c.Warmup/2))), func() { s.crash(n) })
	}
	if c.HealAt > c.PartitionAt {
		s.at(c.PartitionAt, s.partition)
		s.at(c.HealAt, s.heal)
	}
	for _, n := range s.nodes {
		if n.hostile {
			var tick func()
			tick = func() {
				s.forge(n)
				s.after(c.ForgeEvery, tick)
			}
			s.at(c.Warmup/2+time.Duration(s.rng.Int64N(int64(c.ForgeEvery))), tick)
		}
	}
	if c.ChurnPerMinute > 0 {
		var churn func()
		churn = func() {
			n := s.nodes[s.rng.IntN(len(s.nodes))]
			if n.up && !n.hostile {
				s.crash(n)
				s.after(c.ChurnDowntime, func() { s.restart(n) })
			}
			s.after(time.Duration(float64(time.Minute)/c.ChurnPerMinute), churn)
		}
		s.at(c.Warmup, churn)
	}

	// Idle: the second half of the warm-up.
	s.runUntil(c.Warmup / 2)
	idleFrom := s.bytes
	s.runUntil(c.Warmup)
	s.r.Idle = s.traffic(idleFrom, c.Warmup-c.Warmup/2)

	// Claims, one at a time.
	var p99s, p100s []time.Duration
	for k := range c.Claims {
		t0 := c.Warmup + time.Duration(k)*c.ClaimEvery
		s.runUntil(t0)
		origin := s.randomHonest()
		recs := s.claim(origin, fmt.Sprintf("claim%d", k))
		s.watch(recs...)
		s.publish(origin, recs...)
		s.runWhile(t0+c.MaxTime, func() bool { return !s.everywhere(recs) })
		p99, p100 := s.reach(t0, recs)
		p99s, p100s = append(p99s, p99), append(p100s, p100)
	}
	s.r.Reach99, s.r.Reach100 = median(p99s), median(p100s)
	s.r.Reach99Max, s.r.Reach100Max = slices.Max(p99s), slices.Max(p100s)

	// The burst.
	t0 := max(s.now, c.Warmup+time.Duration(c.Claims)*c.ClaimEvery)
	s.runUntil(t0)
	burstFrom, burstSync := s.bytes, s.syncRecords
	var all []*crdt.Record
	for k := range c.Burst + c.Large {
		at := t0 + c.BurstOver*time.Duration(k)/time.Duration(max(1, c.Burst+c.Large))
		s.runUntil(at)
		var recs []*crdt.Record
		if k%max(1, (c.Burst+c.Large)/max(1, c.Large)) == 0 && c.Large > 0 && countLarge(all) < c.Large {
			recs = []*crdt.Record{s.large(k)}
			s.watch(recs...)
			s.publish(s.nodes[s.randomHonest().i], recs...)
		} else {
			origin := s.randomHonest()
			recs = s.claim(origin, fmt.Sprintf("burst%d", k))
			s.watch(recs...)
			s.publish(origin, recs...)
		}
		all = append(all, recs...)
	}
	// A settings update supersedes the one before, which then never
	// reaches everywhere: follow only the last.
	var follow []*crdt.Record
	lastLarge := -1
	for i, r := range all {
		if r.Kind() == crdt.KindSettings {
			lastLarge = i
		}
	}
	for i, r := range all {
		if r.Kind() != crdt.KindSettings || i == lastLarge {
			follow = append(follow, r)
		}
	}
	s.runWhile(t0+c.MaxTime, func() bool { return !s.everywhere(follow) })
	s.r.BurstTime = s.now - t0
	if s.r.BurstTime > 0 {
		s.r.Burst = s.traffic(burstFrom, s.r.BurstTime)
		s.r.BurstSyncRecords = float64(s.syncRecords-burstSync) / float64(len(s.honestLive()))
	}

	// The end: the nodes that can reach each other must come into step
	// once publications stop (faults may still be under way: a partition
	// keeps its halves apart, churn keeps going).
	deadline := s.now + c.MaxTime
	for s.now < deadline {
		if ok, _ := s.inStep(); ok {
			s.r.Converged = s.now
			break
		}
		s.runUntil(s.now + time.Second)
	}
	if s.r.Converged == 0 {
		_, why := s.inStep()
		s.violation("not in step %v after the last publication: %s", c.MaxTime, why)
	}
	for _, n := range s.nodes {
		if n.hostile {
			continue
		}
		n.store.Read(func(st *crdt.State) {
			for h := range s.forged {
				if st.Lookup(s.id, h) != nil {
					s.violation("node %d holds forged record %s", n.i, h.Short())
				}
			}
		})
	}
	if c.Hostile > 0 && s.r.Forged > 0 && s.r.Rejected == 0 {
		s.violation("%d forged records injected and none refused: the forgeries reached nobody", s.r.Forged)
	}
	var detected []time.Duration
	for _, n := range s.nodes {
		switch {
		case n.up:
		case n.counted:
			s.r.Undetected++
		default:
			detected = append(detected, n.deadAt-n.downAt)
		}
	}
	if len(detected) > 0 {
		s.r.Detected = median(detected)
	}
	live := s.honestLive()
	s.r.Live = len(live)
	live[0].store.Read(func(st *crdt.State) {
		if b, err := crdt.EncodeDataJSON(st, s.id); err == nil {
			s.r.DataJSONBytes = len(b)
		}
	})
	s.r.Events = s.eventCount
	s.r.Trace = hex.EncodeToString(s.trace.Sum(nil))
	return s.r
}

func countLarge(recs []*crdt.Record) int {
	n := 0
	for _, r := range recs {
		if r.Kind() == crdt.KindSettings {
			n++
		}
	}
	return n
}

func (s *Sim) runUntil(t time.Duration) {
	for s.step(t) {
	}
	s.now = max(s.now, t)
}

// runWhile runs events while cond holds, until t at the latest, checking
// cond every 10 ms of virtual time.
func (s *Sim) runWhile(t time.Duration, cond func() bool) {
	for s.now < t && cond() {
		s.runUntil(min(t, s.now+10*time.Millisecond))
	}
}

// reach is when 99% and 100% of the live honest nodes held all of recs,
// published at t0.
func (s *Sim) reach(t0 time.Duration, recs []*crdt.Record) (time.Duration, time.Duration) {
	var last []time.Duration
	for _, n := range s.honestLive() {
		l := time.Duration(0)
		for _, r := range recs {
			at := s.watches[r.Hash()].at[n.i]
			if at < 0 {
				at = time.Duration(math.MaxInt64)
			} else {
				at -= t0
			}
			l = max(l, at)
		}
		last = append(last, l)
	}
	slices.Sort(last)
	return last[int(math.Ceil(0.99*float64(len(last))))-1], last[len(last)-1]
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// String formats a report for people.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, %d nodes (%d honest and live at the end), %d events, %v of wall time\n", r.Seed, r.Nodes, r.Live, r.Events, r.Wall.Round(time.Millisecond))
	fmt.Fprintf(&b, "claim to 99%%: %v, to 100%%: %v (median; worst %v / %v); gossip floor %.1f rounds = %v\n",
		r.Reach99.Round(time.Millisecond), r.Reach100.Round(time.Millisecond), r.Reach99Max.Round(time.Millisecond), r.Reach100Max.Round(time.Millisecond), r.FloorRounds, r.Floor.Round(time.Millisecond))
	fmt.Fprintf(&b, "idle:  %s\n", r.Idle)
	fmt.Fprintf(&b, "burst: %s, everywhere after %v, %.1f records per node by anti-entropy\n", r.Burst, r.BurstTime.Round(time.Millisecond), r.BurstSyncRecords)
	fmt.Fprintf(&b, "anti-entropy: %d rounds, %d requests, %d fell back to version 1; %d fetches; data.json %d bytes\n", r.SyncRounds, r.SyncRequests, r.Fallbacks, r.Fetches, r.DataJSONBytes)
	fmt.Fprintf(&b, "forged records injected %d, refusals %d; in step at %v\n", r.Forged, r.Rejected, r.Converged.Round(time.Millisecond))
	if r.Detected > 0 || r.Undetected > 0 {
		fmt.Fprintf(&b, "crashed nodes dropped from the member lists after %v (median), %d still listed\n", r.Detected.Round(time.Millisecond), r.Undetected)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "VIOLATION: %s\n", v)
	}
	fmt.Fprintf(&b, "trace %s", r.Trace)
	return b.String()
}

func (t Traffic) String() string {
	return fmt.Sprintf("%.0f B/node/s (gossip %.0f, probes %.0f, anti-entropy %.0f, fetches %.0f)", t.Total, t.Gossip, t.Probe, t.Sync, t.Fetch)
}
