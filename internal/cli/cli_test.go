package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), Env{Args: args, Getenv: func(string) string { return "" }, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	code, out, errs := runCLI(t, "correct horse\n", "hash-password", "-cost", "10")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	hash := strings.TrimSpace(out)
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")); err != nil {
		t.Fatalf("hash %q does not verify: %v", hash, err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse\n")) == nil {
		t.Fatal("the newline became part of the password")
	}
	if code, _, errs := runCLI(t, "", "hash-password"); code != 2 || !strings.Contains(errs, "empty password") {
		t.Fatalf("empty password: exit %d %q", code, errs)
	}
}

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("routes:\n  - name: all\n    match: {recipients: [\"*\"]}\n    directory: {path: out}\n"), 0o600)
	if code, out, errs := runCLI(t, "", "check-config", good); code != 0 || !strings.Contains(out, "OK") ||
		!strings.Contains(out, "identity local:\n  proves itself: by source address 127.0.0.0/8, ::1/128 (no password)\n  TLS: not required") ||
		!strings.Contains(out, "route all: recipients * -> directory") {
		t.Fatalf("good config: exit %d %q %q", code, out, errs)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("limits:\n  max_recipients: 0\n"), 0o600)
	code, _, errs := runCLI(t, "", "check-config", bad)
	if code != 1 || !strings.Contains(errs, "limits.max_recipients") {
		t.Fatalf("bad config: exit %d %q", code, errs)
	}
	if code, _, _ := runCLI(t, "", "check-config"); code != 2 {
		t.Fatalf("missing file argument: exit %d", code)
	}
}

func TestHelpListsSubcommands(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, "", "help")
	if code != 0 || !strings.Contains(out, "check-config") || !strings.Contains(out, "POSTERN_SMTP_ADDR") {
		t.Fatalf("help: %d %q", code, out)
	}
	if code, _, errs := runCLI(t, "", "-config", filepath.Join(t.TempDir(), "missing.yaml")); code != 2 || !strings.Contains(errs, "missing.yaml") {
		t.Fatalf("missing config: %d %q", code, errs)
	}
}
