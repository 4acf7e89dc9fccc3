package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/data-mesher/data-mesher/mesh"
	"github.com/hashicorp/memberlist"
)

// Config describes one run. DefaultConfig fills every field; a run is a
// function of its Config alone.
type Config struct {
	// Seed selects the run: keys, timer phases, peers chosen, losses.
	Seed uint64
	// Nodes is the number of nodes, hostile ones included.
	Nodes int
	// Held is the number of host records every node holds in common at
	// the start, besides the network's settings. The real mesh holds one
	// per node; 10,000 states of 10,000 hosts do not fit in one process,
	// so large runs hold fewer (version 2's rounds cost the same whatever
	// is held; mesh.BenchmarkAntiEntropyBytes measures 100,000).
	Held int
	// WireVersion is the anti-entropy version the nodes speak: 2 (riblt
	// symbols) or 1 (today's bucket digests), to compare the two.
	WireVersion int

	// Faults.
	// Loss is the probability that a UDP packet is lost. An HTTP request
	// or answer is not lost (TCP retransmits) but, with this probability,
	// delayed by a retransmission timeout (RTO).
	Loss float64
	RTO  time.Duration
	// Down is the fraction of nodes that crash during the second half of
	// the warm-up (while idle traffic is measured), at times spread
	// uniformly over it: by the first claim, some are known dead and
	// others not yet.
	Down float64
	// ChurnPerMinute is how many nodes crash per minute after the
	// warm-up, each coming back ChurnDowntime later with its state.
	ChurnPerMinute float64
	ChurnDowntime  time.Duration
	// PartitionAt and HealAt, if HealAt > PartitionAt, cut the nodes in
	// two halves (even and odd indices) for that span.
	PartitionAt, HealAt time.Duration
	// Hostile nodes gossip and push forged records (a host record of
	// another node signed by their own key, a claim with a broken
	// signature) every ForgeEvery.
	Hostile    int
	ForgeEvery time.Duration
	// Latency is the one-way delay of a packet or HTTP message, plus up
	// to Jitter more (uniform).
	Latency, Jitter time.Duration

	// The scenario.
	// Warmup is the idle time before the first claim; idle traffic is
	// measured over its second half.
	Warmup time.Duration
	// Claims claims, each with its attestation, are published at random
	// honest nodes, ClaimEvery apart; each one's time to 99% and 100% of
	// the live honest nodes is reported.
	Claims     int
	ClaimEvery time.Duration
	// Burst claims with attestations (and Large settings updates too
	// large for a packet, announced and fetched) are then published over
	// BurstOver; the traffic is measured from the burst's start until
	// every record is everywhere.
	Burst     int
	BurstOver time.Duration
	Large     int
	// MaxTime bounds the run: the nodes must be in step by then.
	MaxTime time.Duration

	// Agents, if not 0, models memberlist's failure detection among this
	// many agents instead of at every node (failure.go, agent): node i's
	// suspicions, deaths and refutations are agent i%Agents's, whose
	// rumours spread among the agents. Exact (0) costs work and memory in
	// nodes × crashed nodes; shared, agents × crashed nodes. Every node's
	// packets still carry memberlist's messages.
	Agents int

	// memberlist, as the mesh configures it.
	GossipInterval   time.Duration
	GossipNodes      int
	RetransmitMult   int
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	SuspicionMult    int
	IndirectChecks   int
	GossipToTheDead  time.Duration
	UDPBufferSize    int
	EnableCompressed bool
	// The mesh.
	SyncInterval      time.Duration
	RequestTimeout    time.Duration
	ReconnectInterval time.Duration
	InlineLimit       int
	// KickOnJoin makes every node run a round when it sees a member join,
	// as the mesh did before (gossip.go's NotifyJoin): to measure what
	// that cost.
	KickOnJoin bool
	// WaitBehind makes the mesh's gossip wait behind memberlist's
	// broadcasts, with no packets of its own when crowded out, as it did
	// before mesh/crowding.go: to measure what those packets bring.
	WaitBehind bool
	// Progress, if set, is called every 65,536 events with the virtual
	// time and the events run so far: to watch a long run. It does not
	// change the run.
	Progress func(now time.Duration, events int64)
	// decodeEach makes every node decode the records it receives and
	// build its own gossip messages, as real nodes do, instead of sharing
	// them (sim.go, ingestRaw): the test that sharing changes nothing.
	decodeEach bool
}

// DefaultConfig is a clean run of n nodes with the parameters the agent
// runs with: memberlist.DefaultLANConfig, and mesh.Config's defaults
// (gossip every 200 ms, anti-entropy every 2 s).
func DefaultConfig(n int) Config {
	ml := memberlist.DefaultLANConfig()
	held := n
	if n > 1000 {
		held = 100
	}
	return Config{
		Seed: 1, Nodes: n, Held: held, WireVersion: 2,
		RTO: 200 * time.Millisecond, ChurnDowntime: 30 * time.Second,
		Hostile: 1, ForgeEvery: 5 * time.Second,
		Latency: time.Millisecond, Jitter: time.Millisecond,
		Warmup: 40 * time.Second, Claims: 3, ClaimEvery: 10 * time.Second,
		Burst: 100, BurstOver: 10 * time.Second, Large: 2,
		MaxTime: 10 * time.Minute,

		GossipInterval: 200 * time.Millisecond, // mesh.Config default (memberlist's LAN value)
		GossipNodes:    ml.GossipNodes,
		RetransmitMult: 4, // mesh.Config default (memberlist's LAN value)
		ProbeInterval:  ml.ProbeInterval,
		ProbeTimeout:   ml.ProbeTimeout,
		SuspicionMult:  ml.SuspicionMult,
		IndirectChecks: ml.IndirectChecks,
		// GossipToTheDeadTime: memberlist gossips to dead nodes this long.
		GossipToTheDead:  ml.GossipToTheDeadTime,
		UDPBufferSize:    ml.UDPBufferSize,
		EnableCompressed: ml.EnableCompression,

		SyncInterval:      2 * time.Second,
		RequestTimeout:    10 * time.Second,
		ReconnectInterval: 30 * time.Second,
		InlineLimit:       1000,
	}
}

// ScaleTimeouts widens memberlist's failure detection and the request
// timeout as mesh's TestScale does for a loaded 2-core machine
// (ProbeTimeout 2 s, ProbeInterval 4 s, SuspicionMult 8, RequestTimeout
// 30 s), so that the simulator can be set beside those runs.
func (c *Config) ScaleTimeouts() {
	c.ProbeTimeout, c.ProbeInterval, c.SuspicionMult, c.RequestTimeout = 2*time.Second, 4*time.Second, 8, 30*time.Second
}

// Validate checks a configuration before a run.
func (c *Config) Validate() error {
	switch {
	case c.Nodes < 2:
		return errors.New("sim: at least 2 nodes")
	case c.Hostile < 0 || c.Hostile >= c.Nodes:
		return fmt.Errorf("sim: %d hostile nodes of %d", c.Hostile, c.Nodes)
	case c.Held < 0 || c.Held > c.Nodes:
		return fmt.Errorf("sim: Held %d not in [0, %d]", c.Held, c.Nodes)
	case c.WireVersion != 1 && c.WireVersion != 2:
		return fmt.Errorf("sim: wire version %d", c.WireVersion)
	case c.Loss < 0 || c.Loss >= 1 || c.Down < 0 || c.Down >= 1:
		return errors.New("sim: Loss and Down are fractions below 1")
	case c.GossipInterval <= 0 || c.ProbeInterval <= 0 || c.SyncInterval <= 0 || c.GossipNodes < 1:
		return errors.New("sim: intervals and fanout must be positive")
	case c.ProbeTimeout <= 0 || c.ProbeTimeout > c.ProbeInterval:
		return fmt.Errorf("sim: probe timeout %v not within the probe interval %v", c.ProbeTimeout, c.ProbeInterval)
	case c.Agents < 0 || c.Agents > c.Nodes:
		return fmt.Errorf("sim: %d agents for %d nodes", c.Agents, c.Nodes)
	case c.Claims < 1:
		return errors.New("sim: at least one claim")
	}
	_ = mesh.PathSync
	return nil
}
