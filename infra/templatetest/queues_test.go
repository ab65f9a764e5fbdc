package templatetest

import (
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

func TestEveryQueueHasADeadLetterQueue(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	for _, ps := range paramSets {
		r := resolveWith(t, tpl, ps.values)
		deadLetters := map[string]string{} // DLQ -> its source
		var work []string
		for _, id := range tpl.OfType("AWS::SQS::Queue") {
			if rp := dig(r.Resources[id].Properties, "RedrivePolicy"); rp != nil {
				work = append(work, id)
				dlq := queueRef(dig(rp, "deadLetterTargetArn"))
				if dig(rp, "deadLetterTargetArn") != "${"+dlq+".Arn}" {
					t.Errorf("%s %s: deadLetterTargetArn is %v, want !GetAtt <queue>.Arn", ps.name, id, dig(rp, "deadLetterTargetArn"))
				}
				if tpl.Resources[dlq].Type != "AWS::SQS::Queue" {
					t.Errorf("%s %s: dead-letter target %q is not a queue of this template", ps.name, id, dlq)
				}
				if prev, dup := deadLetters[dlq]; dup {
					t.Errorf("%s: %s is the dead-letter queue of both %s and %s", ps.name, dlq, prev, id)
				}
				deadLetters[dlq] = id
				if n, err := num(dig(rp, "maxReceiveCount")); err != nil || n < 1 {
					t.Errorf("%s %s: maxReceiveCount %v, want >= 1", ps.name, id, dig(rp, "maxReceiveCount"))
				}
			}
		}
		if len(work) != 4 {
			t.Errorf("%s: %d work queues (%v), want inbound, webhook, relay, dsn", ps.name, len(work), work)
		}
		for _, id := range tpl.OfType("AWS::SQS::Queue") {
			props := r.Resources[id].Properties
			if props["SqsManagedSseEnabled"] != true && props["KmsMasterKeyId"] == nil {
				t.Errorf("%s %s: not encrypted at rest", ps.name, id)
			}
			src, isDLQ := deadLetters[id]
			if props["RedrivePolicy"] == nil && !isDLQ {
				t.Errorf("%s %s: neither redrives nor is anyone's dead-letter queue", ps.name, id)
			}
			if !isDLQ {
				continue
			}
			if props["RedrivePolicy"] != nil {
				t.Errorf("%s %s: a dead-letter queue redrives itself", ps.name, id)
			}
			// A standard queue's dead-lettered message keeps its original
			// enqueue time: the DLQ must keep messages longer than the source.
			dlqKeep := mustNum(t, id+" MessageRetentionPeriod", props["MessageRetentionPeriod"])
			srcKeep := mustNum(t, src+" MessageRetentionPeriod", r.Resources[src].Properties["MessageRetentionPeriod"])
			if dlqKeep <= srcKeep {
				t.Errorf("%s %s keeps %d s, not longer than its source %s (%d s)", ps.name, id, dlqKeep, src, srcKeep)
			}
		}
		for _, id := range work {
			keep := mustNum(t, id+" MessageRetentionPeriod", r.Resources[id].Properties["MessageRetentionPeriod"])
			if keep <= maxRetryAgeSeconds {
				t.Errorf("%s %s keeps jobs %d s, not longer than the %d s retry max age", ps.name, id, keep, maxRetryAgeSeconds)
			}
		}
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

// TestVisibilityCoversConsumers: AWS's rule for SQS event sources is a
// visibility timeout of at least six times the function's timeout plus the
// batching window, so a message is not redelivered while a throttled or
// retried invocation still holds it.
func TestVisibilityCoversConsumers(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	maxWindow := mustNum(t, "BatchWindowSeconds MaxValue", tpl.Parameters["BatchWindowSeconds"]["MaxValue"])
	for _, ps := range paramSets {
		r := resolveWith(t, tpl, ps.values)
		consumed := map[string]string{}
		for _, fn := range tpl.OfType("AWS::Serverless::Function") {
			props := r.Resources[fn].Properties
			timeout := mustNum(t, fn+" Timeout", props["Timeout"])
			for name, ev := range asMap(props["Events"]) {
				if dig(ev, "Type") != "SQS" {
					continue
				}
				q := queueRef(dig(ev, "Properties", "Queue"))
				if other, dup := consumed[q]; dup {
					t.Errorf("%s: %s is consumed by both %s and %s", ps.name, q, other, fn)
				}
				consumed[q] = fn
				window := maxWindow
				if w := dig(ev, "Properties", "MaximumBatchingWindowInSeconds"); w != nil {
					window = max(window, mustNum(t, fn+" "+name+" window", w))
				}
				vis := mustNum(t, q+" VisibilityTimeout", dig(r.Resources[q].Properties, "VisibilityTimeout"))
				if need := 6*timeout + window; vis < need {
					t.Errorf("%s: %s visibility %d s < 6 x %s timeout %d s + window %d s = %d s", ps.name, q, vis, fn, timeout, window, need)
				}
			}
		}
		for _, q := range []string{"InboundQueue", "WebhookQueue", "RelayQueue", "DSNQueue"} {
			if consumed[q] == "" {
				t.Errorf("%s: %s has no consuming function", ps.name, q)
			}
		}
	}
}
