package lambdafn_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFunctionsLinkOnlyTheirStage checks each function's imports, as
// deployment builds it (linux/arm64, lambda.norpc): a function links its
// own stage and none of the gateway's or the other stages' code, so a
// cold start loads less and a flaw in one stage's dependencies does not
// reach the others.
func TestFunctionsLinkOnlyTheirStage(t *testing.T) {
	const mod = "github.com/postern/postern/"
	gateway := []string{"internal/smtpd", "internal/spool", "internal/ingest", "internal/app", "internal/worker", "internal/queue/fsqueue", "internal/blob/fsblob"}
	stages := map[string]string{
		"parse":   "internal/parse",
		"webhook": "internal/webhook",
		"relay":   "internal/relay/smtprelay",
		"dsn":     "internal/dsn/notify",
	}
	// Other stages' code, and heavy libraries only some stages need.
	forbidden := map[string][]string{
		// internal/egress is linked by every function through config, which
		// validates each route's egress rules; it needs only the standard
		// library.
		"parse":   {"internal/webhook", "internal/relay", "internal/dsn", "github.com/emersion/go-smtp", "github.com/aws/aws-sdk-go-v2/service/sesv2"},
		"webhook": {"internal/parse", "internal/relay", "internal/dsn", "github.com/jhillyerd/enmime", "github.com/emersion/go-smtp", "github.com/aws/aws-sdk-go-v2/service/sesv2"},
		"relay":   {"internal/parse", "internal/webhook", "internal/dsn/notify", "github.com/jhillyerd/enmime"},
		"dsn":     {"internal/parse", "internal/webhook", "github.com/jhillyerd/enmime"},
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	for stage, own := range stages {
		t.Run(stage, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(goBin, "list", "-tags", "lambda.norpc", "-deps", mod+"functions/"+stage)
			cmd.Env = append(cmd.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			deps := map[string]bool{}
			for _, p := range strings.Fields(string(out)) {
				deps[strings.TrimPrefix(p, mod)] = true
			}
			if !deps[own] {
				t.Errorf("functions/%s does not link %s, its own stage", stage, own)
			}
			for _, bad := range append(gateway, forbidden[stage]...) {
				for p := range deps {
					if p == bad || strings.HasPrefix(p, bad+"/") {
						t.Errorf("functions/%s links %s", stage, p)
					}
				}
			}
		})
	}
}
