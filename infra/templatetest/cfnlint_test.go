package templatetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cfnLint finds cfn-lint (AWS's CloudFormation linter; 1.x runs the SAM
// translator itself): $POSTERN_CFN_LINT or PATH. Missing, the test is
// skipped, or fails in CI (CI=true or POSTERN_REQUIRE_STANDINS=1).
func cfnLint(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("POSTERN_CFN_LINT"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("POSTERN_CFN_LINT=%s: %v", p, err)
		}
		return p
	}
	if p, err := exec.LookPath("cfn-lint"); err == nil {
		return p
	}
	msg := "cfn-lint not found (POSTERN_CFN_LINT or PATH); install it with: python3 -m pip install cfn-lint==1.51.0"
	if os.Getenv(requireStandins) == "1" || os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// lintMatch is one finding of cfn-lint --format json.
type lintMatch struct {
	Level    string // Error, Warning, Informational
	Message  string
	Rule     struct{ Id string }
	Location struct {
		Start struct{ LineNumber int }
		Path  []any
	}
}

func (m lintMatch) String() string {
	return fmt.Sprintf("%s line %d %v: %s", m.Rule.Id, m.Location.Start.LineNumber, m.Location.Path, m.Message)
}

// lint runs cfn-lint over one template and returns its findings. Its exit
// status is a bit mask of the levels found (2 errors, 4 warnings, 8
// informational); anything else, or output that is not its JSON, is a
// failure of the run itself.
func lint(t *testing.T, bin, template string) []lintMatch {
	t.Helper()
	cmd := exec.Command(bin, "--format", "json", "--", template)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || exit.ExitCode()&^(2|4|8) != 0) {
		t.Fatalf("cfn-lint %s: %v\n%s%s", template, err, out, stderr.String())
	}
	var matches []lintMatch
	if err := json.Unmarshal(out, &matches); err != nil {
		t.Fatalf("cfn-lint output is not its JSON: %v\n%s%s", err, out, stderr.String())
	}
	return matches
}

// TestCfnLint: cfn-lint, with the SAM transform, finds no error in
// template.yaml; warnings are logged. A template broken on purpose must
// yield an error, so a linter that checks nothing cannot pass.
func TestCfnLint(t *testing.T) {
	t.Parallel()
	bin := cfnLint(t)
	root := repoRoot(t)
	t.Run("template", func(t *testing.T) {
		t.Parallel()
		for _, m := range lint(t, bin, filepath.Join(root, "template.yaml")) {
			if m.Level == "Error" {
				t.Errorf("cfn-lint: %s", m)
			} else {
				t.Logf("cfn-lint %s: %s", strings.ToLower(m.Level), m)
			}
		}
	})
	t.Run("bites", func(t *testing.T) {
		t.Parallel()
		text := mustRead(t, filepath.Join(root, "template.yaml"))
		const old = "      Runtime: provided.al2023\n"
		if !strings.Contains(text, old) {
			t.Fatalf("template.yaml no longer contains %q; update the mutation", old)
		}
		bad := filepath.Join(t.TempDir(), "template.yaml")
		if err := os.WriteFile(bad, []byte(strings.Replace(text, old, "      Runtime: provided.al1999\n", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, m := range lint(t, bin, bad) {
			if m.Level == "Error" {
				return
			}
		}
		t.Error("cfn-lint found no error in a function with an unknown runtime")
	})
}
