// Package metrics holds Postern's Prometheus metrics and serves them on the
// admin listener. Components report through small observer interfaces they
// define themselves; this package implements them.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/postern/postern/internal/postern"
)

// Metrics is one process's registry and instruments.
type Metrics struct {
	reg *prometheus.Registry

	connections *prometheus.CounterVec
	acceptErrs  *prometheus.CounterVec
	sessions    *prometheus.CounterVec
	replies     *prometheus.CounterVec
	messages    *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	ingest      prometheus.Histogram
	authFail    *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	jobs        *prometheus.CounterVec
	jobSeconds  *prometheus.HistogramVec
}

// New registers every instrument, plus the Go runtime and process
// collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_smtp_connections_total",
			Help: "SMTP connections by listener and admission outcome (accepted, or why refused)."}, []string{"listener", "outcome"}),
		acceptErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_smtp_accept_errors_total",
			Help: "Failed accepts by listener (out of file descriptors, say); each is retried with backoff."}, []string{"listener"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_smtp_sessions_total",
			Help: "Ended SMTP sessions, one per connection that greeted, by listener, TLS use at the end (after any STARTTLS) and authentication outcome."}, []string{"listener", "tls", "auth"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_smtp_replies_total",
			Help: "Replies to MAIL, RCPT, DATA and AUTH by command and code."}, []string{"command", "code"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_messages_accepted_total",
			Help: "Messages accepted (stored and queued) by identity."}, []string{"identity"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_message_bytes_accepted_total",
			Help: "Bytes of accepted messages by identity."}, []string{"identity"}),
		ingest: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "postern_ingest_seconds",
			Help:    "Time from the start of DATA to the message being durable and queued.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		authFail: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_auth_failures_total",
			Help: "Failed AUTH attempts by identity (\"unknown\" for unknown usernames)."}, []string{"identity"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_rate_limited_total",
			Help: "Transactions refused by an identity's messages-per-minute limit."}, []string{"identity"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_jobs_total",
			Help: "Stage jobs by stage and outcome: done, retry, dead_letter (the job can never run), failed (the message was refused for good; a failure notice is queued), expired (the message ran out of max age; a failure notice is queued)."}, []string{"stage", "outcome"}),
		jobSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "postern_job_seconds",
			Help: "Time a stage spent on one job.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"stage"}),
	}
	reg.MustRegister(m.connections, m.acceptErrs, m.sessions, m.replies, m.messages, m.bytes, m.ingest, m.authFail, m.rateLimited, m.jobs, m.jobSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// SMTP observer methods (smtpd.Observer).

func (m *Metrics) Connection(listener, outcome string) {
	m.connections.WithLabelValues(listener, outcome).Inc()
}

func (m *Metrics) AcceptError(listener string) { m.acceptErrs.WithLabelValues(listener).Inc() }

func (m *Metrics) SessionEnd(listener string, tls bool, auth string) {
	m.sessions.WithLabelValues(listener, strconv.FormatBool(tls), auth).Inc()
}

func (m *Metrics) Reply(command string, code int) {
	m.replies.WithLabelValues(command, strconv.Itoa(code)).Inc()
}

func (m *Metrics) Accepted(env *postern.Envelope, d time.Duration) {
	m.messages.WithLabelValues(env.Identity).Inc()
	m.bytes.WithLabelValues(env.Identity).Add(float64(env.Size))
	m.ingest.Observe(d.Seconds())
}

func (m *Metrics) AuthFailure(identity string) {
	if identity == "" {
		identity = "unknown"
	}
	m.authFail.WithLabelValues(identity).Inc()
}

func (m *Metrics) RateLimited(identity string) { m.rateLimited.WithLabelValues(identity).Inc() }

// Job is the worker observer: one handled job; outcome is one of the
// worker's few (see postern_jobs_total's help).
func (m *Metrics) Job(stage, outcome string, d time.Duration) {
	m.jobs.WithLabelValues(stage, outcome).Inc()
	m.jobSeconds.WithLabelValues(stage).Observe(d.Seconds())
}

// GaugeFunc registers a gauge read at scrape time (sessions in flight).
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// QueueStats is one queue's depth at scrape time.
type QueueStats struct {
	Visible, InFlight, Delayed int
	OldestAge                  time.Duration
}

// Queues registers depth and age gauges read from stats at scrape time.
func (m *Metrics) Queues(stats func(ctx context.Context) (map[string]QueueStats, error)) {
	m.reg.MustRegister(&queueCollector{stats: stats})
}

var (
	depthDesc = prometheus.NewDesc("postern_queue_messages", "Messages in a local queue by state.", []string{"queue", "state"}, nil)
	ageDesc   = prometheus.NewDesc("postern_queue_oldest_message_seconds", "Age of the oldest message in a local queue.", []string{"queue"}, nil)
)

type queueCollector struct {
	stats func(ctx context.Context) (map[string]QueueStats, error)
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- depthDesc; ch <- ageDesc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	all, err := c.stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(depthDesc, err)
		return
	}
	for q, s := range all {
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(s.Visible), q, "visible")
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(s.InFlight), q, "in_flight")
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(s.Delayed), q, "delayed")
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, s.OldestAge.Seconds(), q)
	}
}
