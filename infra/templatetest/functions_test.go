package templatetest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// stage is one stage function as the template must define it.
type stage struct {
	name     string // lambdafn.Main's stage name and functions/<name>
	function string // logical id
	queue    string // the queue it consumes
	role     string
	logGroup string
	params   string // prefix of its scaling parameters (<params>MaxConcurrency, ...)
}

var stages = []stage{
	{"parse", "ParseFunction", "InboundQueue", "ParseRole", "ParseLogGroup", "Parse"},
	{"webhook", "WebhookFunction", "WebhookQueue", "WebhookRole", "WebhookLogGroup", "Webhook"},
	{"relay", "RelayFunction", "RelayQueue", "RelayRole", "RelayLogGroup", "Relay"},
	{"dsn", "DSNFunction", "DSNQueue", "DSNRole", "DSNLogGroup", "DSN"},
}

// paramValue is a parameter's value in a set, or its default.
func paramValue(tpl *Template, values map[string]string, name string) string {
	if v, ok := values[name]; ok {
		return v
	}
	return scalarString(tpl.Parameters[name]["Default"])
}

func TestStageFunctions(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	root := repoRoot(t)
	if tpl.Transform != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform %v, want AWS::Serverless-2016-10-31", tpl.Transform)
	}
	if got := len(tpl.OfType("AWS::Serverless::Function")); got != len(stages) {
		t.Errorf("%d functions, want %d (one per stage)", got, len(stages))
	}
	for _, ps := range paramSets {
		r := resolveWith(t, tpl, ps.values)
		for _, s := range stages {
			res, ok := r.Resources[s.function]
			if !ok {
				t.Errorf("%s: no %s", ps.name, s.function)
				continue
			}
			p := res.Properties
			if got := dig(res.Metadata, "BuildMethod"); got != "go1.x" {
				t.Errorf("%s: Metadata.BuildMethod %v, want go1.x", s.function, got)
			}
			for key, want := range map[string]any{
				"Runtime":       "provided.al2023",
				"Handler":       "bootstrap",
				"Architectures": []any{"arm64"},
				"Role":          "${" + s.role + ".Arn}",
				"LoggingConfig": map[string]any{"LogGroup": "${" + s.logGroup + "}"},
				"CodeUri":       "functions/" + s.name + "/",
			} {
				if got := p[key]; !reflect.DeepEqual(got, want) {
					t.Errorf("%s %s: %s = %#v, want %#v", ps.name, s.function, key, got, want)
				}
			}
			if p["Policies"] != nil {
				t.Errorf("%s: has SAM Policies; roles are written out so each names its own resources", s.function)
			}
			rc, has := p["ReservedConcurrentExecutions"]
			if ps.values["ReservedConcurrency"] == "" && has {
				t.Errorf("%s %s: reserves concurrency %v when the parameter is 0", ps.name, s.function, rc)
			}
			if v := ps.values["ReservedConcurrency"]; v != "" && rc != v {
				t.Errorf("%s %s: ReservedConcurrentExecutions %v, want %s", ps.name, s.function, rc, v)
			}
			lg := r.Resources[s.logGroup]
			if lg.Type != "AWS::Logs::LogGroup" || lg.Properties["RetentionInDays"] == nil {
				t.Errorf("%s: log group %s missing or without retention", s.function, s.logGroup)
			}

			var sqsEvents []any
			for _, ev := range asMap(p["Events"]) {
				if dig(ev, "Type") == "SQS" {
					sqsEvents = append(sqsEvents, ev)
				}
			}
			if len(sqsEvents) != 1 {
				t.Errorf("%s: %d SQS event sources, want 1", s.function, len(sqsEvents))
				continue
			}
			ev := dig(sqsEvents[0], "Properties")
			if q := dig(ev, "Queue"); q != "${"+s.queue+".Arn}" {
				t.Errorf("%s consumes %v, want %s", s.function, q, s.queue)
			}
			if got := strs(dig(ev, "FunctionResponseTypes")); !reflect.DeepEqual(got, []string{"ReportBatchItemFailures"}) {
				t.Errorf("%s: FunctionResponseTypes %v, want [ReportBatchItemFailures]", s.function, got)
			}
			// Each stage scales on its own parameters; the batch size is
			// shared.
			for key, param := range map[string]string{
				"BatchSize":                        "BatchSize",
				"MaximumBatchingWindowInSeconds":   s.params + "BatchWindowSeconds",
				"ScalingConfig.MaximumConcurrency": s.params + "MaxConcurrency",
			} {
				if _, ok := tpl.Parameters[param]; !ok {
					t.Errorf("no parameter %s", param)
					continue
				}
				want := paramValue(tpl, ps.values, param)
				path := []any{}
				for _, k := range strings.Split(key, ".") {
					path = append(path, k)
				}
				if got := scalarString(dig(ev, path...)); got != want {
					t.Errorf("%s %s: %s = %s, want the %s parameter (%s)", ps.name, s.function, key, got, param, want)
				}
			}
			// In-invocation concurrency, read by the Lambda adapter.
			recParam := s.params + "RecordConcurrency"
			if got, want := functionEnv(res)["POSTERN_RECORD_CONCURRENCY"], paramValue(tpl, ps.values, recParam); got != want || want == "" {
				t.Errorf("%s %s: POSTERN_RECORD_CONCURRENCY = %q, want the %s parameter (%s)", ps.name, s.function, got, recParam, want)
			}
		}
	}
	// AWS's limits for SQS event sources: MaximumConcurrency 2..1000,
	// batching window 0..300 s; at most 10 records per record concurrency
	// (BatchSize).
	for _, s := range stages {
		for param, lim := range map[string][2]int{
			s.params + "MaxConcurrency":     {2, 1000},
			s.params + "BatchWindowSeconds": {0, 300},
			s.params + "RecordConcurrency":  {1, 10},
		} {
			p := tpl.Parameters[param]
			lo, hi := mustNum(t, param+" MinValue", p["MinValue"]), mustNum(t, param+" MaxValue", p["MaxValue"])
			if lo < lim[0] || hi > lim[1] {
				t.Errorf("%s allows %d..%d, outside %d..%d", param, lo, hi, lim[0], lim[1])
			}
			if d := mustNum(t, param+" Default", p["Default"]); d < lo || d > hi {
				t.Errorf("%s default %d outside its own %d..%d", param, d, lo, hi)
			}
		}
	}
	// BatchSize above 10 needs a batching window; the parameter forbids it.
	if n := mustNum(t, "BatchSize MaxValue", tpl.Parameters["BatchSize"]["MaxValue"]); n > 10 {
		t.Errorf("BatchSize MaxValue %d allows batches above 10", n)
	}

	// Every CodeUri is a main package calling lambdafn.Main with its stage.
	for _, s := range stages {
		code := strings.TrimSuffix(scalarString(tpl.Resources[s.function].Properties["CodeUri"]), "/")
		src, err := os.ReadFile(filepath.Join(root, code, "main.go"))
		if err != nil {
			t.Errorf("%s: %v", s.function, err)
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), "main.go", src, 0)
		if err != nil || f.Name.Name != "main" {
			t.Errorf("%s: %s/main.go is not package main (%v)", s.function, code, err)
		}
		if !strings.Contains(string(src), `lambdafn.Main("`+s.name+`", `+s.name+`fn.Build)`) {
			t.Errorf("%s: %s/main.go does not run lambdafn.Main(%q, %sfn.Build)", s.function, code, s.name, s.name)
		}
	}
}
