package packaging_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// required reports whether a missing tool fails the test rather than
// skipping it: in CI (CI=true, or POSTERN_REQUIRE_STANDINS=1 as .ci/run sets).
func required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("POSTERN_REQUIRE_STANDINS") == "1"
}

// needTool returns the path of name, or skips (fails in CI) naming how to
// install it.
func needTool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if required() {
		t.Fatalf("%s not found on PATH (%s); CI needs it", name, install)
	}
	t.Skipf("%s not found on PATH: %s", name, install)
	return ""
}

// unitSection returns the assignments of one [section] of a unit file, in
// order (a key may repeat, as SystemCallFilter does).
func unitSection(t *testing.T, unit, section string) [][2]string {
	t.Helper()
	var out [][2]string
	in := false
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			in = line == "["+section+"]"
		case in:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("unit line %q is not key=value", line)
			}
			out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return out
}

// unitValue is the last value of key in the section ("" if unset).
func unitValue(kv [][2]string, key string) string {
	v := ""
	for _, p := range kv {
		if p[0] == key {
			v = p[1]
		}
	}
	return v
}
