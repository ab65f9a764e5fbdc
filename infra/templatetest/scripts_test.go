package templatetest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// minimalPath makes a PATH holding only the named tools (those that exist
// on this machine), so a script's "tool not found" path can be exercised.
func minimalPath(t *testing.T, tools ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s not on PATH: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runScript(t *testing.T, path string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(out), 0
}

func TestScriptsParse(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	for _, s := range []string{"scripts/build", "scripts/deploy", "scripts/ci/install-cfn-guard.sh"} {
		p := filepath.Join(root, s)
		info, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if info.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", s)
		}
		if out, err := exec.Command("bash", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: bash -n: %v\n%s", s, err, out)
		}
		if s == "scripts/ci/install-cfn-guard.sh" {
			continue
		}
		out, code := runScript(t, p, nil, "--help")
		if code != 0 || !strings.Contains(out, "Usage: "+s) {
			t.Errorf("%s --help: exit %d\n%s", s, code, out)
		}
		if _, code := runScript(t, p, nil, "--bogus"); code != 2 {
			t.Errorf("%s --bogus: exit %d, want 2", s, code)
		}
	}
}

// TestScriptsNameMissingTools: without sam or docker the scripts stop with
// a message naming the tool and how to get it, not a bare "command not
// found".
func TestScriptsNameMissingTools(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	path := "PATH=" + minimalPath(t, "bash", "dirname", "go")
	for _, c := range []struct {
		script string
		args   []string
		want   string
	}{
		{"scripts/build", []string{"--functions"}, "sam not found on PATH: install the AWS SAM CLI"},
		{"scripts/build", []string{"--image"}, "docker not found on PATH: install Docker"},
		{"scripts/deploy", []string{"--config", "/nonexistent.yaml"}, "/nonexistent.yaml: no such file"},
		{"scripts/deploy", nil, "--config FILE is required"},
	} {
		out, code := runScript(t, filepath.Join(root, c.script), []string{path}, c.args...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%s %v: exit %d, output %q; want a failure saying %q", c.script, c.args, code, out, c.want)
		}
	}
}

// TestDeployCheck: scripts/deploy --check validates a configuration
// without AWS and prints the key it would upload it under, derived from
// the content (so a change reaches every process as a new
// POSTERN_CONFIG_URI) and under config/, the only prefix the roles read;
// a configuration that reads secrets from the environment or a file, which
// no process has on AWS, is refused before anything else runs.
func TestDeployCheck(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	deploy := filepath.Join(root, "scripts", "deploy")
	example := exampleConfigPath(t)

	cmd := exec.Command("bash", deploy, "--check", "--config", example)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/deploy --check %s: %v\n%s", example, err, stderr.String())
	}
	sum := sha256.Sum256([]byte(mustRead(t, example)))
	want := "config/postern-" + hex.EncodeToString(sum[:])[:16] + ".yaml"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("--check printed key %q, want %q", got, want)
	}
	tpl := loadTemplate(t)
	if re := regexp.MustCompile(scalarString(tpl.Parameters["ConfigObjectKey"]["AllowedPattern"])); !re.MatchString(want) {
		t.Errorf("key %q does not match ConfigObjectKey's AllowedPattern %s", want, re)
	}

	// A changed file is a new key.
	changed := filepath.Join(t.TempDir(), "aws.yaml")
	if err := os.WriteFile(changed, []byte(mustRead(t, example)+"# changed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command("bash", deploy, "--check", "--config", changed).Output()
	if err != nil || strings.TrimSpace(string(out)) == want || !strings.HasPrefix(string(out), "config/postern-") {
		t.Errorf("--check of a changed file: %v, key %q (the unchanged one is %q)", err, out, want)
	}

	// env: and file: secrets are refused, naming the line and the fix; Go
	// is not even needed for that.
	for _, ref := range []string{`"env:POSTERN_WEBHOOK_SECRET"`, `"file:/run/secrets/webhook"`} {
		bad := filepath.Join(t.TempDir(), "aws.yaml")
		text := strings.Replace(mustRead(t, example), `"secretsmanager:postern/webhook"`, ref, 1)
		if err := os.WriteFile(bad, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := runScript(t, deploy, []string{"PATH=" + minimalPath(t, "bash", "dirname", "mktemp", "rm", "grep", "sed")}, "--check", "--config", bad)
		if code != 1 || !strings.Contains(out, "secretsmanager:<secret ARN or name>") || !strings.Contains(out, ref) {
			t.Errorf("a configuration with %s: exit %d\n%s", ref, code, out)
		}
	}
}
