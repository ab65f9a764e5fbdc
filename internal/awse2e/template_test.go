package awse2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/infra/templatetest"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/parsefn"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/lambdafn/webhookfn"
	"github.com/postern/postern/internal/lambdasqs"
	"github.com/postern/postern/internal/standin"
	"github.com/postern/postern/internal/webhook"
)

// stageSpec is what template.yaml (with its parameters' defaults) deploys
// for one stage: its function, the event source mapping feeding it, and
// its queue. The tests read it from the file each run: the numbers are
// the template's to change.
type stageSpec struct {
	function       string        // logical id, e.g. ParseFunction
	timeout        time.Duration // Timeout
	batchSize      int           // BatchSize of the SQS event
	window         time.Duration // MaximumBatchingWindowInSeconds
	maxConcurrency int           // ScalingConfig.MaximumConcurrency
	queue, dlq     string        // logical ids of the queue and its redrive target
	visibility     time.Duration // the queue's VisibilityTimeout
	maxReceives    int           // the queue's RedrivePolicy maxReceiveCount
	// env is the function's environment (Globals merged) with references
	// to the stack's resources kept symbolic: "${InboundDLQ}".
	env map[string]string
}

// refPattern is a resolved !Ref or !GetAtt of a resource.
var refPattern = regexp.MustCompile(`^\$\{([A-Za-z0-9]+)(\.[A-Za-z]+)?\}$`)

// templateSpecs reads the four stages' numbers from template.yaml.
func templateSpecs(t testing.TB) map[string]stageSpec {
	t.Helper()
	tpl, err := templatetest.Load(filepath.Join(repoRoot(t), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Parameters without a default get a placeholder of their shape: none
	// of them bears on the stages.
	values := map[string]string{}
	for name, p := range tpl.Parameters {
		if _, ok := p["Default"]; ok {
			continue
		}
		typ := fmt.Sprint(p["Type"])
		if strings.HasPrefix(typ, "List<") || typ == "CommaDelimitedList" {
			values[name] = "placeholder-a,placeholder-b"
		} else {
			values[name] = "placeholder"
		}
	}
	r, err := tpl.Resolve(values)
	if err != nil {
		t.Fatalf("resolve template.yaml: %v", err)
	}
	specs := map[string]stageSpec{}
	for id, res := range r.Resources {
		if res.Type != "AWS::Serverless::Function" {
			continue
		}
		code := strings.Trim(fmt.Sprint(res.Properties["CodeUri"]), "/")
		stage, ok := strings.CutPrefix(code, "functions/")
		if _, known := lambdafn.StageQueue[stage]; !ok || !known {
			continue
		}
		s := stageSpec{function: id, timeout: time.Duration(num(t, id+" Timeout", res.Properties["Timeout"])) * time.Second, env: map[string]string{}}
		vars, _ := dig(res.Properties, "Environment", "Variables").(map[string]any)
		for k, v := range vars {
			s.env[k] = fmt.Sprint(v)
		}
		events, _ := res.Properties["Events"].(map[string]any)
		n := 0
		for _, ev := range events {
			if fmt.Sprint(dig(ev, "Type")) != "SQS" {
				continue
			}
			n++
			p := dig(ev, "Properties")
			s.batchSize = num(t, id+" BatchSize", dig(p, "BatchSize"))
			if w := dig(p, "MaximumBatchingWindowInSeconds"); w != nil {
				s.window = time.Duration(num(t, id+" MaximumBatchingWindowInSeconds", w)) * time.Second
			}
			s.maxConcurrency = num(t, id+" MaximumConcurrency", dig(p, "ScalingConfig", "MaximumConcurrency"))
			m := refPattern.FindStringSubmatch(fmt.Sprint(dig(p, "Queue")))
			if m == nil {
				t.Fatalf("%s: SQS event Queue %v is not a queue of the stack", id, dig(p, "Queue"))
			}
			s.queue = m[1]
		}
		if n != 1 {
			t.Fatalf("%s has %d SQS events, want 1", id, n)
		}
		q, ok := r.Resources[s.queue]
		if !ok || q.Type != "AWS::SQS::Queue" {
			t.Fatalf("%s: queue %s is not an AWS::SQS::Queue", id, s.queue)
		}
		s.visibility = time.Duration(num(t, s.queue+" VisibilityTimeout", q.Properties["VisibilityTimeout"])) * time.Second
		s.maxReceives = num(t, s.queue+" maxReceiveCount", dig(q.Properties, "RedrivePolicy", "maxReceiveCount"))
		m := refPattern.FindStringSubmatch(fmt.Sprint(dig(q.Properties, "RedrivePolicy", "deadLetterTargetArn")))
		if m == nil {
			t.Fatalf("%s: no dead-letter queue in its RedrivePolicy", s.queue)
		}
		s.dlq = m[1]
		specs[stage] = s
	}
	for stage := range lambdafn.StageQueue {
		if _, ok := specs[stage]; !ok {
			t.Fatalf("template.yaml has no function with CodeUri functions/%s", stage)
		}
	}
	return specs
}

// stackQueue is the name the stack (newStack) gives the queue with the
// template's logical id, by the stage it feeds or whose dead letters it
// holds; "" for any other.
func stackQueue(specs map[string]stageSpec, logicalID string) string {
	for stage, s := range specs {
		switch logicalID {
		case s.queue:
			return lambdafn.StageQueue[stage]
		case s.dlq:
			return lambdafn.StageQueue[stage] + "-dlq"
		}
	}
	return ""
}

func num(t testing.TB, what string, v any) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(fmt.Sprint(v)))
	if err != nil {
		t.Fatalf("template.yaml: %s = %v, want a number", what, v)
	}
	return n
}

// dig follows a path of map keys.
func dig(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// repoRoot is the module root (tests run in internal/awse2e).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := standin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestTemplateSpecs: the numbers the fidelity tests use come out of the
// template, for every stage.
func TestTemplateSpecs(t *testing.T) {
	var longestTransport time.Duration
	for _, typ := range []string{"smtp", "ses", "graph", "gmail", "file"} {
		longestTransport = max(longestTransport, relayfn.TransportBudget(typ))
	}
	for stage, s := range templateSpecs(t) {
		t.Logf("%s: %s timeout=%s batch=%d window=%s max_concurrency=%d queue %s visibility=%s max_receives=%d dlq=%s record_concurrency=%q",
			stage, s.function, s.timeout, s.batchSize, s.window, s.maxConcurrency, s.queue, s.visibility, s.maxReceives, s.dlq, s.env["POSTERN_RECORD_CONCURRENCY"])
		if s.timeout <= 0 || s.batchSize < 1 || s.batchSize > 10 || s.maxConcurrency < 2 || s.visibility < s.timeout || s.maxReceives < 1 {
			t.Errorf("%s: implausible numbers %+v", stage, s)
		}
		// The longest record a stage may get must fit in one invocation
		// (less the adapter's margin), or the adapter never starts it.
		longest := map[string]time.Duration{
			"parse":   parsefn.Budget,
			"webhook": webhook.DefaultTimeout + webhookfn.Margin,
			"relay":   longestTransport,
			"dsn":     longestTransport,
		}[stage]
		if longest+lambdasqs.DefaultMargin > s.timeout {
			t.Errorf("%s: a record's budget (%s) and the adapter's margin (%s) exceed the function's Timeout %s: such records would never run", s.function, longest, lambdasqs.DefaultMargin, s.timeout)
		}
		want := "POSTERN_DLQ_" + strings.ToUpper(lambdafn.StageQueue[stage])
		if m := refPattern.FindStringSubmatch(s.env[want]); m == nil || m[1] != s.dlq {
			t.Errorf("%s: %s = %q, want a reference to %s, the dead-letter queue of %s", s.function, want, s.env[want], s.dlq, s.queue)
		}
	}
}
