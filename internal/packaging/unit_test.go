package packaging_test

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/config"
)

// unitRoot lays out a root directory for systemd-analyze --root: the
// host's own system units (sysinit.target and the rest the unit depends
// on), the unit under test, and stand-ins for the binaries it runs (verify
// checks that they are executable).
func unitRoot(t *testing.T, unit []byte) string {
	t.Helper()
	var sys string
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "sysinit.target")); err == nil {
			sys = d
			break
		}
	}
	if sys == "" {
		if required() {
			t.Fatal("no sysinit.target under /usr/lib/systemd/system: install systemd (apt-get install systemd)")
		}
		t.Skip("no sysinit.target under /usr/lib/systemd/system: install systemd (apt-get install systemd)")
	}
	root := t.TempDir()
	units := filepath.Join(root, "usr", "lib", "systemd", "system")
	if err := os.MkdirAll(units, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", sys+"/.", units+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v\n%s", sys, err, out)
	}
	if err := os.WriteFile(filepath.Join(units, "postern.service"), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"usr/bin/postern", "bin/kill"} {
		p := filepath.Join(root, bin)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func readUnit(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "postern.service"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verify runs systemd-analyze verify on the unit in a root of its own and
// returns what it said.
func verify(t *testing.T, sa string, unit []byte) (string, error) {
	t.Helper()
	root := unitRoot(t, unit)
	cmd := exec.Command(sa, "verify", "--man=no", "--root="+root, "postern.service")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// systemd-analyze verify passes the unit without a word, and does catch a
// broken one (so a pass means something).
func TestUnitVerifies(t *testing.T) {
	t.Parallel()
	sa := needTool(t, "systemd-analyze", "apt-get install systemd")
	unit := readUnit(t)
	if out, err := verify(t, sa, unit); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	broken := bytes.Replace(unit, []byte("Type=notify\n"), []byte("Type=notify\nAmbientCapability=CAP_NET_BIND_SERVICE\n"), 1)
	if out, _ := verify(t, sa, broken); !strings.Contains(out, "AmbientCapability") {
		t.Errorf("systemd-analyze verify let an unknown key through: %q", out)
	}
}

var exposureRe = regexp.MustCompile(`Overall exposure level for postern\.service: ([0-9.]+) (\S+)`)

// systemd-analyze security --offline scores the unit's sandbox from 0
// (locked down) to 10 (none); ours stays under 2.0, "OK".
func TestUnitSecurityExposure(t *testing.T) {
	t.Parallel()
	sa := needTool(t, "systemd-analyze", "apt-get install systemd")
	root := unitRoot(t, readUnit(t))
	out, err := exec.Command(sa, "security", "--offline=true", "--no-pager", "--root="+root, "postern.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := exposureRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security --offline=true: exposure %.1f %s", score, m[2])
	if score >= 2.0 {
		var open []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "✗") {
				open = append(open, l)
			}
		}
		t.Errorf("exposure %.1f, want under 2.0; what is open:\n%s", score, strings.Join(open, "\n"))
	}
}

// The unit keeps the promises README and the packaging make: notify, the
// drain inside the stop timeout, reload by SIGHUP, port 25 as postern, and
// writes only to the packaged config's data_dir.
func TestUnitPromises(t *testing.T) {
	t.Parallel()
	svc := unitSection(t, string(readUnit(t)), "Service")
	want := map[string]string{
		"Type":                    "notify",
		"NotifyAccess":            "main",
		"User":                    "postern",
		"Group":                   "postern",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"Restart":                 "on-failure",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"MemoryDenyWriteExecute":  "yes",
		"StateDirectory":          "postern",
		"StateDirectoryMode":      "0700",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", // AF_UNIX: NOTIFY_SOCKET
	}
	for k, v := range want {
		if got := unitValue(svc, k); got != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	if !strings.Contains(string(readUnit(t)), "\nSystemCallFilter=@system-service\n") {
		t.Error("no SystemCallFilter=@system-service")
	}

	exec := strings.Fields(unitValue(svc, "ExecStart"))
	if len(exec) < 3 || exec[0] != "/usr/bin/postern" || exec[1] != "-config" || exec[2] != "/etc/postern/postern.yaml" {
		t.Fatalf("ExecStart=%q, want /usr/bin/postern -config /etc/postern/postern.yaml ...", unitValue(svc, "ExecStart"))
	}
	grace := 30 * time.Second // the gateway's default
	for i, a := range exec {
		if a == "-grace" && i+1 < len(exec) {
			d, err := time.ParseDuration(exec[i+1])
			if err != nil {
				t.Fatal(err)
			}
			grace = d
		}
	}
	stop, err := time.ParseDuration(unitValue(svc, "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	// Run returns within grace and a few seconds (app.Run's contract).
	if stop <= grace+5*time.Second {
		t.Errorf("TimeoutStopSec=%s, want more than -grace %s + 5s, or systemd kills a drain in progress", stop, grace)
	}

	cfg, err := config.Load(filepath.Join(repoRoot(t), "packaging", "postern.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := unitValue(svc, "ReadWritePaths"); got != cfg.DataDir {
		t.Errorf("ReadWritePaths=%q, but the packaged config's data_dir is %q", got, cfg.DataDir)
	}
	if got := unitValue(svc, "WorkingDirectory"); got != cfg.DataDir {
		t.Errorf("WorkingDirectory=%q, want data_dir %q", got, cfg.DataDir)
	}
}

// /etc/postern/postern.yaml is the embedded default written out, with only
// data_dir and the SMTP port changed, and listens on loopback only.
func TestPackagedConfigIsTheDefaultMadeExplicit(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	got, err := config.Load(filepath.Join(repoRoot(t), "packaging", "postern.yaml"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	changes := filepath.Join(t.TempDir(), "changes.yaml")
	if err := os.WriteFile(changes, []byte("data_dir: /var/lib/postern\nlisteners:\n  - name: smtp\n    addr: \"127.0.0.1:25\"\n    mode: smtp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := config.Load(changes, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("packaging/postern.yaml differs from the embedded default (plus data_dir and port 25):\n got %s\nwant %s", g, w)
	}
	for _, addr := range []string{got.Listeners[0].Addr, got.Admin.Addr} {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("%s is not a loopback address: the package must not open the gateway to the network", addr)
		}
	}
}
