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

	"golang.org/x/crypto/bcrypt"

	"github.com/postern/postern/internal/config"
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
			if strings.HasSuffix(path, ".json") {
				checkPayloadFile(t, path)
			}
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

// authConfig has only a password identity: the client must STARTTLS and
// authenticate, as a modern device or application does.
func authConfig(t *testing.T, hookURL string) *config.Config {
	cfg := testConfig(t, hookURL)
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identities = []config.Identity{{Name: "erp", PasswordHash: string(h), AllowedSenders: []string{"*@erp.example"}}}
	cfg.Listeners = append(cfg.Listeners, config.Listener{Name: "smtps", Addr: "127.0.0.1:0", Mode: "smtps"})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestSwaksAuthOverTLS(t *testing.T) {
	t.Parallel()
	swaks := requireTool(t, "swaks")
	_, hs := newHook(t)
	cfg := authConfig(t, hs.URL)
	a := boot(t, cfg)
	plain, implicit := a.SMTPAddrs()[0].String(), a.SMTPAddrs()[1].String()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"STARTTLS + LOGIN", []string{"--server", plain, "--tls", "--auth", "LOGIN"}, "250 2.0.0 OK"},
		{"STARTTLS + PLAIN", []string{"--server", plain, "--tls", "--auth", "PLAIN"}, "250 2.0.0 OK"},
		{"implicit TLS + LOGIN", []string{"--server", implicit, "--tlsc", "--auth", "LOGIN"}, "250 2.0.0 OK"},
		{"no TLS: AUTH not offered", []string{"--server", plain, "--auth", "PLAIN"}, "Host did not advertise authentication"},
		{"wrong password", []string{"--server", plain, "--tls", "--auth", "LOGIN", "--auth-password", "nope"}, "535 5.7.8"},
	} {
		args := append([]string{"--from", "ap@erp.example", "--to", "in@files.test", "--auth-user", "erp", "--auth-password", "s3cret"}, tc.args...)
		// swaks takes the last of repeated options, so the case's own
		// password wins.
		out, _ := exec.Command(swaks, args...).CombinedOutput()
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: want %q in:\n%s", tc.name, tc.want, out)
		}
	}
}

const pyAuth = `
import smtplib, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, port, timeout=20)
s.starttls(context=ctx)
s.login("erp", "s3cret")
refused = s.sendmail("ap@erp.example", ["in@files.test"], b"Subject: py\r\n\r\nhi\r\n")
print("refused", refused)
try:
    s.sendmail("forged@elsewhere.example", ["in@files.test"], b"Subject: py\r\n\r\nhi\r\n")
except smtplib.SMTPSenderRefused as e:
    print("sender refused", e.smtp_code)
s.quit()
`

func TestPythonSmtplibStartTLSLogin(t *testing.T) {
	t.Parallel()
	py := requireTool(t, "python3")
	_, hs := newHook(t)
	a := boot(t, authConfig(t, hs.URL))
	host, port, _ := net.SplitHostPort(a.SMTPAddrs()[0].String())
	out, err := exec.Command(py, "-c", pyAuth, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "refused {}") || !strings.Contains(string(out), "sender refused 553") {
		t.Fatalf("unexpected smtplib outcome:\n%s", out)
	}
}
