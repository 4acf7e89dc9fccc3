package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/data-mesher/data-mesher/crdt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics exports what the agent does, on loopback, for Prometheus. Most
// values are read at scrape time from the parts that already count them.
type metrics struct {
	a          *Agent
	reg        *prometheus.Registry
	addedTotal *prometheus.CounterVec
	names      prometheus.Gauge
	viewAt     prometheus.Gauge
	attLatency prometheus.Histogram
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{a: a, reg: prometheus.NewRegistry()}
	m.addedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dm_records_added_total",
		Help: "Records added to the state, by kind."}, []string{"kind"})
	m.names = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dm_view_names", Help: "Names in the resolved view."})
	m.viewAt = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dm_view_updated_timestamp_seconds", Help: "When the view was last computed."})
	m.attLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dm_attestation_latency_seconds",
		Help:    "Time from a claim of this node to its first attestation.",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)})
	m.reg.MustRegister(m.addedTotal, m.names, m.viewAt, m.attLatency, collector{a})
	return m
}

func (m *metrics) added(recs []*crdt.Record) {
	for _, r := range recs {
		m.addedTotal.WithLabelValues(r.Kind().String()).Inc()
		if r.Kind() != crdt.KindAttestation {
			continue
		}
		// The subject is a claim, or a first-writer-wins entry.
		var subject *crdt.Record
		m.a.store.Read(func(st *crdt.State) { subject = st.Lookup(r.Network(), r.Attestation().Claim) })
		if subject != nil && subject.Kind() == crdt.KindClaim && subject.Signer() == m.a.key.Public() {
			if d := m.a.now().Sub(subject.Claim().Created); d > 0 && d < 24*time.Hour {
				m.attLatency.Observe(d.Seconds())
			}
		}
	}
}

func (m *metrics) viewUpdated(v *crdt.ResolvedView) {
	m.names.Set(float64(len(v.Names)))
	m.viewAt.Set(float64(m.a.now().Unix()))
}

func (m *metrics) serve(ctx context.Context, listen string, run func(func(context.Context))) error {
	if listen == "off" {
		return nil
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.Handle("/", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	// Go's profiles, for whoever can reach loopback on this node.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	run(func(ctx context.Context) {
		go func() {
			<-ctx.Done()
			_ = srv.Close()
		}()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.a.log.Warn("metrics endpoint stopped", "err", err)
		}
	})
	return nil
}

// collector reads the live counters of the mesh, the DNS server, the
// prober and the state at each scrape.
type collector struct{ a *Agent }

var (
	descRecords    = prometheus.NewDesc("dm_records", "Records held, by network and kind.", []string{"network", "kind"}, nil)
	descMembers    = prometheus.NewDesc("dm_gossip_members", "Live gossip members other than this node.", nil, nil)
	descDNS        = prometheus.NewDesc("dm_dns_queries_total", "DNS queries answered, by result.", []string{"result"}, nil)
	descDNSFast    = prometheus.NewDesc("dm_dns_fast_path_total", "DNS answers sent by the fast path.", nil, nil)
	descSync       = prometheus.NewDesc("dm_sync_bytes_total", "Anti-entropy bytes, by direction.", []string{"direction"}, nil)
	descSyncRounds = prometheus.NewDesc("dm_sync_rounds_total", "Anti-entropy rounds started, and failed.", []string{"outcome"}, nil)
	descGossip     = prometheus.NewDesc("dm_gossip_messages_total", "Gossip messages received, dropped, broadcasts queued, and packets of the mesh's own sent while memberlist's broadcasts crowded it out.", []string{"what"}, nil)
	descRejected   = prometheus.NewDesc("dm_records_refused_total", "Records from the network that failed ingestion.", nil, nil)
	descRefusals   = prometheus.NewDesc("dm_refusals_total", "Records and gossip members refused, by reason.", []string{"reason"}, nil)
	descChallenge  = prometheus.NewDesc("dm_challenges", "Addresses by last reachability verdict.", []string{"verdict"}, nil)
	descSig        = prometheus.NewDesc("dm_verifications_total", "Signatures and attestations verified (each distinct record once).", []string{"what"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecords, descMembers, descDNS, descDNSFast, descSync, descSyncRounds, descGossip, descRejected, descRefusals, descChallenge, descSig} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	a.store.Read(func(st *crdt.State) {
		for _, id := range st.Joined() {
			counts := map[crdt.Kind]int{}
			for _, r := range st.Records(id) {
				counts[r.Kind()]++
			}
			for _, k := range []crdt.Kind{crdt.KindSettings, crdt.KindHost, crdt.KindClaim, crdt.KindAttestation, crdt.KindEntry} {
				ch <- prometheus.MustNewConstMetric(descRecords, prometheus.GaugeValue, float64(counts[k]), id.String(), k.String())
			}
		}
		s := st.Stats()
		ch <- prometheus.MustNewConstMetric(descSig, prometheus.CounterValue, float64(s.SignaturesChecked), "signature")
		ch <- prometheus.MustNewConstMetric(descSig, prometheus.CounterValue, float64(s.AttestationsVerified), "attestation")
	})
	p := a.up.Load()
	if p == nil {
		return
	}
	{
		st := p.node.Stats()
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(p.node.MemberCount()))
		ch <- prometheus.MustNewConstMetric(descSync, prometheus.CounterValue, float64(st.SyncBytesOut.Load()), "out")
		ch <- prometheus.MustNewConstMetric(descSync, prometheus.CounterValue, float64(st.SyncBytesIn.Load()), "in")
		ch <- prometheus.MustNewConstMetric(descSyncRounds, prometheus.CounterValue, float64(st.SyncRounds.Load()), "started")
		ch <- prometheus.MustNewConstMetric(descSyncRounds, prometheus.CounterValue, float64(st.SyncFailures.Load()), "failed")
		ch <- prometheus.MustNewConstMetric(descGossip, prometheus.CounterValue, float64(st.GossipIn.Load()), "received")
		ch <- prometheus.MustNewConstMetric(descGossip, prometheus.CounterValue, float64(st.GossipDropped.Load()), "dropped")
		ch <- prometheus.MustNewConstMetric(descGossip, prometheus.CounterValue, float64(st.Broadcasts.Load()), "broadcast")
		ch <- prometheus.MustNewConstMetric(descGossip, prometheus.CounterValue, float64(st.GossipBatches.Load()), "crowded_batch")
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(st.Rejected.Load()))
		for reason, n := range p.node.Refusals() {
			ch <- prometheus.MustNewConstMetric(descRefusals, prometheus.CounterValue, float64(n), reason)
		}
	}
	{
		h := p.dns.Handler()
		for _, r := range dnsResults {
			ch <- prometheus.MustNewConstMetric(descDNS, prometheus.CounterValue, float64(h.Count(r)), r.String())
		}
		ch <- prometheus.MustNewConstMetric(descDNSFast, prometheus.CounterValue, float64(p.dns.FastAnswers()))
	}
	{
		ok, bad := 0, 0
		for _, s := range p.prober.Statuses() {
			if s.OK {
				ok++
			} else {
				bad++
			}
		}
		ch <- prometheus.MustNewConstMetric(descChallenge, prometheus.GaugeValue, float64(ok), "passed")
		ch <- prometheus.MustNewConstMetric(descChallenge, prometheus.GaugeValue, float64(bad), "failed")
	}
}
