package app_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Real clients other than Go's: swaks (Perl's Net::SMTP lineage, used by mail
// admins everywhere) and Python's smtplib (what scripts and many appliances
// embed).

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("POSTERN_REQUIRE_STANDINS") == "1" {
			t.Fatalf("%s not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s not installed; apt-get install %s", name, name)
	}
	return p
}

var okID = regexp.MustCompile(`250 2\.0\.0 OK ([0-9A-HJKMNP-TV-Z]{26})`)

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no payload at %s", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSwaks(t *testing.T) {
	t.Parallel()
	swaks := requireTool(t, "swaks")
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	a := boot(t, cfg)
	host, port, _ := net.SplitHostPort(a.SMTPAddrs()[0].String())
	out, err := exec.Command(swaks, "--server", host, "--port", port, "--from", "camera@lan",
		"--to", "alerts@files.test", "--header", "Subject: motion", "--attach", "@"+filepath.Join("..", "..", "go.mod"),
		"--pipeline").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	m := okID.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no 250 with an id in:\n%s", out)
	}
	waitFile(t, filepath.Join(cfg.DataDir, "outbox", string(m[1])+".files.json"))

	out, _ = exec.Command(swaks, "--server", host, "--port", port, "--from", "camera@lan", "--to", "x@unknown.test").CombinedOutput()
	if !strings.Contains(string(out), "550 5.1.1") {
		t.Fatalf("unroutable recipient not refused with 550 5.1.1:\n%s", out)
	}
}

const pySend = `
import smtplib, sys
host, port = sys.argv[1], int(sys.argv[2])
s = smtplib.SMTP(host, port, timeout=20)
s.ehlo("plc.lan")
assert s.has_extn("size") and s.has_extn("8bitmime") and s.has_extn("pipelining") and s.has_extn("enhancedstatuscodes"), s.esmtp_features
s.mail("plc@lan")
code, _ = s.rcpt("ops@files.test")
assert code == 250, code
code, resp = s.data(b"Subject: =?utf-8?q?Tank_=E2=9C=93?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nlevel \xe2\x9c\x93 high\r\n.leading dot\r\n")
print(code, resp.decode())
s.quit()
`

func TestPythonSmtplib(t *testing.T) {
	t.Parallel()
	py := requireTool(t, "python3")
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	a := boot(t, cfg)
	host, port, _ := net.SplitHostPort(a.SMTPAddrs()[0].String())
	out, err := exec.Command(py, "-c", pySend, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	m := okID.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no 250 with an id in: %s", out)
	}
	path := filepath.Join(cfg.DataDir, "outbox", string(m[1])+".files.json")
	waitFile(t, path)
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"subject":"Tank ✓"`) || !strings.Contains(string(b), `.leading dot`) {
		t.Fatalf("payload lost the subject or the dot-stuffed line:\n%s", b)
	}
}
