package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SpoolStats is the one-machine gateway's spool at scrape time (package
// spool's Stats).
type SpoolStats struct {
	BacklogMessages int
	BacklogBytes    int64
	OldestUnmoved   time.Duration
	MoverFailures   uint64
	Quarantined     uint64
}

// Spool registers the spool's backlog gauges and the mover's counters,
// read from stats at scrape time.
func (m *Metrics) Spool(stats func() SpoolStats) {
	m.reg.MustRegister(&spoolCollector{stats: stats})
}

var (
	spoolBacklogDesc = prometheus.NewDesc("postern_spool_backlog_messages",
		"Messages acknowledged (committed to the spool) whose parse jobs the mover has not queued yet.", nil, nil)
	spoolBytesDesc = prometheus.NewDesc("postern_spool_backlog_bytes",
		"Bytes (raw message, envelope and job) of the messages counted by postern_spool_backlog_messages.", nil, nil)
	spoolOldestDesc = prometheus.NewDesc("postern_spool_oldest_unmoved_seconds",
		"Age of the oldest acknowledged message the mover has not queued yet; 0 when none waits.", nil, nil)
	spoolFailuresDesc = prometheus.NewDesc("postern_spool_mover_failures_total",
		"Failed attempts of the spool's mover to copy messages into the store and queue (each is retried).", nil, nil)
	quarantinedDesc = prometheus.NewDesc("postern_quarantined_total",
		"Spool commits (or stray frames) the mover could not decode and moved to data_dir/quarantine.", nil, nil)
)

type spoolCollector struct {
	stats func() SpoolStats
}

func (c *spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{spoolBacklogDesc, spoolBytesDesc, spoolOldestDesc, spoolFailuresDesc, quarantinedDesc} {
		ch <- d
	}
}

func (c *spoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(spoolBacklogDesc, prometheus.GaugeValue, float64(s.BacklogMessages))
	ch <- prometheus.MustNewConstMetric(spoolBytesDesc, prometheus.GaugeValue, float64(s.BacklogBytes))
	ch <- prometheus.MustNewConstMetric(spoolOldestDesc, prometheus.GaugeValue, s.OldestUnmoved.Seconds())
	ch <- prometheus.MustNewConstMetric(spoolFailuresDesc, prometheus.CounterValue, float64(s.MoverFailures))
	ch <- prometheus.MustNewConstMetric(quarantinedDesc, prometheus.CounterValue, float64(s.Quarantined))
}
