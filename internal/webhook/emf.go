package webhook

import (
	"io"

	"github.com/postern/postern/internal/emf"
)

// EMF is an Observer that writes each attempt as one CloudWatch Embedded
// Metric Format line, for the webhook function on Lambda: Lambda ships
// stdout to CloudWatch Logs, which turns the line into metrics in the
// Postern namespace by Stage and Route, with no extra service calls. Each
// line counts 1 in its outcome's metric and 0 in the others, so sums and
// alarms per outcome work.
type EMF struct{ *emf.Writer }

var _ Observer = (*EMF)(nil)

// NewEMF writes to w (os.Stdout in Lambda).
func NewEMF(w io.Writer) *EMF { return &EMF{emf.New(w, emfMetrics)} }

// emfNames maps each outcome to its metric name.
var emfNames = map[string]string{
	OutcomeDelivered: "WebhookDelivered", OutcomeRetry: "WebhookRetry", OutcomeFailed: "WebhookFailed",
	OutcomeExpired: "WebhookExpired", OutcomeError: "WebhookError",
}

var emfMetrics = []emf.Metric{
	{Name: "WebhookDelivered", Unit: "Count"}, {Name: "WebhookRetry", Unit: "Count"}, {Name: "WebhookFailed", Unit: "Count"},
	{Name: "WebhookExpired", Unit: "Count"}, {Name: "WebhookError", Unit: "Count"}, {Name: "WebhookAttemptDuration", Unit: "Milliseconds"},
}

// WebhookAttempt writes a's line. A write that fails loses one data point,
// which is not worth failing the job for.
func (e *EMF) WebhookAttempt(a Attempt) {
	name, ok := emfNames[a.Outcome]
	if !ok {
		name = emfNames[OutcomeError]
	}
	values := map[string]any{"WebhookAttemptDuration": a.Latency.Milliseconds()}
	for _, n := range emfNames {
		values[n] = 0
	}
	values[name] = 1
	e.Line("webhook", a.Route, values)
}
