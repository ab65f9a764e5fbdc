package benchcli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for postern-bench: "run" starts
// reference servers by executing its own binary with "serve".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestRunPrintsTheTable(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "report.md")
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), []string{"run", "-targets", "go-discard,go-fsync,ingest-spool", "-sizes", "1KiB", "-sessions", "2",
		"-duration", "200ms", "-warmup", "50ms", "-tmp", t.TempDir(), "-o", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	table := stdout.String()
	for _, want := range []string{"| 1KiB | 2 | go-discard |", "| 1KiB | 2 | go-fsync |", "| 1KiB | 2 | ingest-spool |", "1.00x", "Machine:"} {
		if !strings.Contains(table, want) {
			t.Errorf("report lacks %q:\n%s", want, table)
		}
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != table {
		t.Errorf("-o file differs from stdout (%v)", err)
	}
}

func TestRepeatedRunsGetASpreadTable(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), []string{"run", "-targets", "go-discard,go-fsync", "-sizes", "1KiB", "-sessions", "2",
		"-duration", "100ms", "-warmup", "20ms", "-tmp", t.TempDir(), "-repeat", "2"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	report := stdout.String()
	for _, want := range []string{"run 1 of 2", "run 2 of 2", "Against go-fsync in the same run, over 2 runs", "| 1KiB | 2 | go-discard | 2 | "} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"nonsense"}, {"run", "-sizes", "huge"}, {"run", "-repeat", "0"}, {"load", "-bogus"}, {"serve", "extra"}} {
		var stdout, stderr bytes.Buffer
		if code := Main(t.Context(), args, &stdout, &stderr); code == 0 {
			t.Errorf("%q: exit 0", args)
		}
	}
}

func TestUnknownTargetIsSkippedWithReason(t *testing.T) {
	t.Parallel()
	_, why := target("sendmail", "", "", "", "", "")
	if !strings.Contains(why, "unknown target") {
		t.Errorf("why = %q", why)
	}
	if _, why := target("gateway", "", "", "", "", ""); !strings.Contains(why, "-gateway") {
		t.Errorf("gateway without a binary: why = %q", why)
	}
}
