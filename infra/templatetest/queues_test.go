package templatetest

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxRetryAge is the longest a stage retries by default (routes' max_age);
// a queue must keep a job at least that long.
const maxRetryAgeSeconds = 24 * 60 * 60

// queueRef extracts the logical id from "${Id.Arn}" or "${Id}".
func queueRef(v any) string {
	s, _ := v.(string)
	s = strings.TrimPrefix(s, "${")
	s = strings.TrimSuffix(s, "}")
	id, _, _ := strings.Cut(s, ".")
	return id
}

// SQS keeps a message at most 14 days; every queue keeps them that long.
const maxRetentionSeconds = 14 * 24 * 60 * 60

// The stages' retry backoff on AWS (internal/lambdasqs): full jitter over
// base x 2^(attempt-1), capped; each try is one receive.
const (
	backoffBase = 5
	backoffCap  = 15 * 60
)

// receivesWithin is how many receives a job retried with the stages'
// backoff uses on average in d seconds (each delay averages half its cap;
// the time the tries themselves take is left out, which counts more).
func receivesWithin(d int) int {
	n, elapsed := 0, 0.0
	for step := backoffBase; elapsed < float64(d); n++ {
		elapsed += float64(step) / 2
		step = min(step*2, backoffCap)
	}
	return n
}

// retryUntilMaxAge are the queues whose stage retries a job until its
// route's max_age and then ends it with a DSN: their receive count must
// outlast the max age with a margin (twice over), or a job that is merely
// failing would be dead-lettered instead.
var retryUntilMaxAge = map[string]bool{"WebhookQueue": true, "RelayQueue": true}

// consumer is the function reading a queue and the longest batching window
// its event source may be given (the parameter's MaxValue, or the literal).
type consumer struct {
	function string
	timeout  int
	window   int
}

func consumers(t *testing.T, tpl *Template, r *Resolved, set string) map[string]consumer {
	t.Helper()
	out := map[string]consumer{}
	for _, fn := range tpl.OfType("AWS::Serverless::Function") {
		props := r.Resources[fn].Properties
		timeout := mustNum(t, fn+" Timeout", props["Timeout"])
		for name, ev := range asMap(props["Events"]) {
			if dig(ev, "Type") != "SQS" {
				continue
			}
			q := queueRef(dig(ev, "Properties", "Queue"))
			if other, dup := out[q]; dup {
				t.Errorf("%s: %s is consumed by both %s and %s", set, q, other.function, fn)
			}
			window := 0
			if w := dig(ev, "Properties", "MaximumBatchingWindowInSeconds"); w != nil {
				window = mustNum(t, fn+" "+name+" window", w)
			}
			raw := dig(tpl.Resources[fn].Properties, "Events", name, "Properties", "MaximumBatchingWindowInSeconds", "Ref")
			if param, ok := raw.(string); ok {
				window = max(window, mustNum(t, param+" MaxValue", tpl.Parameters[param]["MaxValue"]))
			}
			out[q] = consumer{fn, timeout, window}
		}
	}
	return out
}

// TestEveryQueueCanDeadLetter runs checkDeadLettering under every
// parameter set.
func TestEveryQueueCanDeadLetter(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	for _, ps := range paramSets {
		checkDeadLettering(t, t.Errorf, tpl, ps.name, ps.values)
	}
}

// TestDeadLetteringBites: the check finds a receive count whose crash
// loop outlasts half the retention, one too low for the max age, a
// visibility below the consumer's rule, and a short retention.
func TestDeadLetteringBites(t *testing.T) {
	t.Parallel()
	text := mustRead(t, filepath.Join(repoRoot(t), "template.yaml"))
	for _, m := range []struct{ old, new, want string }{
		{"maxReceiveCount: 500}", "maxReceiveCount: 1000}", "more than half the"},
		{"maxReceiveCount: 500}", "maxReceiveCount: 100}", "twice over"},
		{"VisibilityTimeout: 450 #", "VisibilityTimeout: 300 #", "< 6 x DSNFunction timeout"},
		{"      MessageRetentionPeriod: 1209600\n      # 20 x", "      MessageRetentionPeriod: 345600\n      # 20 x", "InboundQueue keeps jobs 345600 s"},
		{"Properties: {SqsManagedSseEnabled: true, MessageRetentionPeriod: 1209600}", "Properties: {SqsManagedSseEnabled: true, MessageRetentionPeriod: 345600}", "dead-letter queue keeps 345600 s"},
	} {
		if !strings.Contains(text, m.old) {
			t.Errorf("template.yaml no longer contains %q; update the mutation", m.old)
			continue
		}
		tpl, err := Parse([]byte(strings.Replace(text, m.old, m.new, 1)))
		if err != nil {
			t.Fatal(err)
		}
		var found []string
		checkDeadLettering(t, func(f string, a ...any) { found = append(found, fmt.Sprintf(f, a...)) }, tpl, "defaults", defaults)
		if !slices.ContainsFunc(found, func(s string) bool { return strings.Contains(s, m.want) }) {
			t.Errorf("%q -> %q: no finding saying %q, got %q", m.old, m.new, m.want, found)
		}
	}
}

// checkDeadLettering reports through errorf what keeps a job that keeps
// failing from reaching its dead-letter queue while SQS still keeps it, or
// from staying there long enough to be looked at: for every queue with a
// redrive policy, retention 14 days; maxReceiveCount x VisibilityTimeout
// (a job that crashes its handler every time) at most half of it, since a
// dead-lettered message keeps its original enqueue time; a visibility
// timeout of at least 6 x its function's timeout + batching window (AWS's
// rule for SQS event sources, so a throttled or retried invocation still
// holds its message); and a DLQ of the template's own that keeps 14 days.
func checkDeadLettering(t *testing.T, errorf func(string, ...any), tpl *Template, set string, values map[string]string) {
	t.Helper()
	r := resolveWith(t, tpl, values)
	byQueue := consumers(t, tpl, r, set)
	deadLetters := map[string]string{} // DLQ -> its source
	var work []string
	for _, id := range tpl.OfType("AWS::SQS::Queue") {
		props := r.Resources[id].Properties
		rp := dig(props, "RedrivePolicy")
		if rp == nil {
			continue
		}
		work = append(work, id)
		dlq := queueRef(dig(rp, "deadLetterTargetArn"))
		if dig(rp, "deadLetterTargetArn") != "${"+dlq+".Arn}" {
			errorf("%s %s: deadLetterTargetArn is %v, want !GetAtt <queue>.Arn", set, id, dig(rp, "deadLetterTargetArn"))
		}
		if tpl.Resources[dlq].Type != "AWS::SQS::Queue" {
			errorf("%s %s: dead-letter target %q is not a queue of this template", set, id, dlq)
		}
		if prev, dup := deadLetters[dlq]; dup {
			errorf("%s: %s is the dead-letter queue of both %s and %s", set, dlq, prev, id)
		}
		deadLetters[dlq] = id

		keep := mustNum(t, id+" MessageRetentionPeriod", props["MessageRetentionPeriod"])
		vis := mustNum(t, id+" VisibilityTimeout", props["VisibilityTimeout"])
		count, err := num(dig(rp, "maxReceiveCount"))
		if err != nil || count < 1 {
			errorf("%s %s: maxReceiveCount %v, want >= 1", set, id, dig(rp, "maxReceiveCount"))
			continue
		}
		if keep != maxRetentionSeconds {
			errorf("%s %s keeps jobs %d s, want %d (14 days)", set, id, keep, maxRetentionSeconds)
		}
		if count*vis > keep/2 {
			errorf("%s %s: maxReceiveCount %d x visibility %d s = %d s, more than half the %d s retention: a crashing job would reach its DLQ late or never",
				set, id, count, vis, count*vis, keep)
		}
		c, ok := byQueue[id]
		if !ok {
			errorf("%s: %s has no consuming function", set, id)
			continue
		}
		if need := 6*c.timeout + c.window; vis < need {
			errorf("%s: %s visibility %d s < 6 x %s timeout %d s + window %d s = %d s", set, id, vis, c.function, c.timeout, c.window, need)
		}
		if retryUntilMaxAge[id] {
			if need := receivesWithin(2 * maxRetryAgeSeconds); count < need {
				errorf("%s %s: maxReceiveCount %d; retries until the %d s max age use about %d receives, want at least %d (twice over)",
					set, id, count, maxRetryAgeSeconds, receivesWithin(maxRetryAgeSeconds), need)
			}
		}
	}
	if len(work) != 4 {
		errorf("%s: %d work queues (%v), want inbound, webhook, relay, dsn", set, len(work), work)
	}
	for _, q := range []string{"InboundQueue", "WebhookQueue", "RelayQueue", "DSNQueue"} {
		if dig(r.Resources[q].Properties, "RedrivePolicy") == nil {
			errorf("%s: %s has no dead-letter queue", set, q)
		}
	}
	for _, id := range tpl.OfType("AWS::SQS::Queue") {
		props := r.Resources[id].Properties
		if props["SqsManagedSseEnabled"] != true && props["KmsMasterKeyId"] == nil {
			errorf("%s %s: not encrypted at rest", set, id)
		}
		_, isDLQ := deadLetters[id]
		if props["RedrivePolicy"] == nil && !isDLQ {
			errorf("%s %s: neither redrives nor is anyone's dead-letter queue", set, id)
		}
		if !isDLQ {
			continue
		}
		if props["RedrivePolicy"] != nil {
			errorf("%s %s: a dead-letter queue redrives itself", set, id)
		}
		if keep := mustNum(t, id+" MessageRetentionPeriod", props["MessageRetentionPeriod"]); keep != maxRetentionSeconds {
			errorf("%s %s: dead-letter queue keeps %d s, want %d (14 days)", set, id, keep, maxRetentionSeconds)
		}
	}
}

// TestReceivesWithin pins the arithmetic the receive counts rest on: 24 h
// of retries is about 200 receives.
func TestReceivesWithin(t *testing.T) {
	t.Parallel()
	if got := receivesWithin(maxRetryAgeSeconds); got < 190 || got > 210 {
		t.Errorf("receivesWithin(24 h) = %d, want about 200", got)
	}
	if got := receivesWithin(1); got != 1 {
		t.Errorf("receivesWithin(1 s) = %d, want 1", got)
	}
}

func TestQueuesDenyInsecureTransport(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	r := resolveWith(t, tpl, defaults)
	covered := map[string]bool{}
	for _, id := range tpl.OfType("AWS::SQS::QueuePolicy") {
		props := r.Resources[id].Properties
		queues := map[string]bool{}
		for _, q := range strs(props["Queues"]) {
			queues[queueRef(q)] = true
		}
		for _, st := range dig(props, "PolicyDocument", "Statement").([]any) {
			if dig(st, "Effect") != "Deny" || dig(st, "Condition", "Bool", "aws:SecureTransport") != "false" {
				continue
			}
			for _, res := range strs(dig(st, "Resource")) {
				if queues[queueRef(res)] {
					covered[queueRef(res)] = true
				}
			}
		}
	}
	for _, id := range tpl.OfType("AWS::SQS::Queue") {
		if !covered[id] {
			t.Errorf("%s: no queue policy denies requests without TLS", id)
		}
	}
}
