package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
)

// SIGHUP's check of the configuration file: silent when it is unchanged,
// names the keys that changed, and says so when the file no longer loads.
func TestCheckReloadedNamesChangedKeys(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "postern.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	noEnv := func(string) string { return "" }
	load := func() (*config.Config, error) { return config.Load(path, noEnv) }
	write("hostname: gw.example\nlog:\n  level: info\n")
	running, err := load()
	if err != nil {
		t.Fatal(err)
	}
	check := func() string {
		var buf bytes.Buffer
		checkReloaded(running, load, slog.New(slog.NewJSONHandler(&buf, nil)))
		return buf.String()
	}
	if out := check(); out != "" {
		t.Errorf("unchanged file logged %s", out)
	}
	write("hostname: gw2.example\nlog:\n  level: debug\n")
	if out := check(); !strings.Contains(out, `"level":"WARN"`) || !strings.Contains(out, `"keys":"hostname,log"`) {
		t.Errorf("changed file logged %s, want a WARN naming hostname,log", out)
	}
	write("hostname: gw.example\nlog:\n  levle: info\n")
	if out := check(); !strings.Contains(out, `"level":"ERROR"`) || !strings.Contains(out, "levle") {
		t.Errorf("broken file logged %s, want an ERROR naming the key", out)
	}
}
