package relay

import (
	"io"

	"github.com/postern/postern/internal/emf"
)

// EMF is an Observer that writes each attempt as one CloudWatch Embedded
// Metric Format line, for the relay function on Lambda: Lambda ships stdout
// to CloudWatch Logs, which turns the line into metrics in the Postern
// namespace by Stage and Route, with no extra service calls.
type EMF struct{ *emf.Writer }

var _ Observer = (*EMF)(nil)

// NewEMF writes to w (os.Stdout in Lambda).
func NewEMF(w io.Writer) *EMF { return &EMF{emf.New(w, emfMetrics)} }

var emfMetrics = []emf.Metric{
	{Name: "RelayDelivered", Unit: "Count"}, {Name: "RelayDeferred", Unit: "Count"}, {Name: "RelayFailed", Unit: "Count"},
	{Name: "RelayExpired", Unit: "Count"}, {Name: "RelayError", Unit: "Count"}, {Name: "RelayAttemptDuration", Unit: "Milliseconds"},
}

// RelayAttempt writes a's line. A write that fails loses one data point,
// which is not worth failing the job for.
func (e *EMF) RelayAttempt(a Attempt) {
	e.Line("relay", a.Route, map[string]any{
		"RelayDelivered":       a.Delivered,
		"RelayDeferred":        a.Deferred,
		"RelayFailed":          a.Failed,
		"RelayExpired":         a.Expired,
		"RelayError":           a.Error,
		"RelayAttemptDuration": a.Latency.Milliseconds(),
	})
}
