package smtpd

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/dnsresolve"
	"github.com/postern/postern/internal/dnstest"
)

// dmarcDNS serves good.example (SPF passes for loopback, p=reject) and
// spoof.example (SPF fails everything).
func dmarcDNS(t *testing.T) (*dnstest.Server, *dnsresolve.Resolver) {
	srv := dnstest.New(t)
	srv.AddTXT("good.example", "v=spf1 ip4:127.0.0.0/8 -all")
	srv.AddTXT("_dmarc.good.example", "v=DMARC1; p=reject")
	srv.AddTXT("spoof.example", "v=spf1 -all")
	r, err := dnsresolve.New(dnsresolve.Config{Servers: []string{srv.Addr()}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return srv, r
}

func internetLoopback(internet bool) []Identity {
	return []Identity{{Name: "mx", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, AllowPlaintext: true, Internet: internet}}
}

// bigMessage is a message From: from, larger than what is held in memory.
func bigMessage(from string) string {
	line := strings.Repeat("x", 998) + "\r\n"
	return "From: <" + from + ">\r\nTo: <bob@app.test>\r\nSubject: big\r\n\r\n" + strings.Repeat(line, holdInMemory/len(line)+200)
}

// A message larger than the in-memory hold is checked from a temporary
// file that nobody sees (unlinked at once, nothing left in the directory):
// refused when it fails DMARC under p=reject, by DATA or BDAT, with nothing
// handed to the store; stored byte for byte when it passes.
func TestDMARCRejectHoldsLargeMessages(t *testing.T) {
	t.Parallel()
	_, r := dmarcDNS(t)
	tmp := t.TempDir()
	ing := &fakeIngest{}
	addr, _ := startWith(t, internetLoopback(true), ing, func(c *Config) {
		c.MaxMessageBytes = 4 << 20
		c.DMARCReject = &DMARCReject{Resolver: r, TempDir: tmp}
	})
	d := dial(t, addr)
	d.must("EHLO mx.spoof.example", "250")

	spoof := bigMessage("ceo@good.example")
	d.must("MAIL FROM:<ceo@spoof.example>", "250")
	d.must("RCPT TO:<bob@app.test>", "250")
	d.must("DATA", "354")
	if got := d.send(strings.ReplaceAll(spoof, "\r\n.", "\r\n..") + "."); !strings.HasPrefix(got, "550 5.7.1 Message rejected: good.example's DMARC policy is reject") {
		t.Fatalf("DATA of the spoof: %q, want 550 5.7.1 naming good.example's policy", got)
	}
	d.must("MAIL FROM:<ceo@spoof.example>", "250")
	d.must("RCPT TO:<bob@app.test>", "250")
	if _, err := fmt.Fprintf(d.c, "BDAT %d LAST\r\n%s", len(spoof), spoof); err != nil {
		t.Fatal(err)
	}
	if got := d.read(); !strings.HasPrefix(got, "550 5.7.1 Message rejected: good.example's") {
		t.Fatalf("BDAT of the spoof: %q, want 550 5.7.1", got)
	}
	if n := len(ing.Envs()); n != 0 {
		t.Fatalf("%d refused messages reached the store", n)
	}

	good := bigMessage("alice@good.example")
	d.must("MAIL FROM:<alice@good.example>", "250")
	d.must("RCPT TO:<bob@app.test>", "250")
	d.must("DATA", "354")
	d.must(good+".", "250 2.0.0 OK")
	raws := ing.Raws()
	if len(raws) != 1 || !bytes.HasSuffix(raws[0], []byte(good)) {
		t.Fatalf("stored %d messages; want the passing one as sent", len(raws))
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("held messages left in the temporary directory: %v", left)
	}
}

// Trusted identities on a dmarc_reject listener, and internet identities on
// a listener without it, are not checked: the spoof is accepted and DNS is
// not asked.
func TestDMARCRejectOnlyForInternetMailOnOptedInListeners(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		internet bool
		optIn    bool
	}{{"trusted identity", false, true}, {"listener without dmarc_reject", true, false}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv, r := dmarcDNS(t)
			ing := &fakeIngest{}
			addr, _ := startWith(t, internetLoopback(c.internet), ing, func(cfg *Config) {
				if c.optIn {
					cfg.DMARCReject = &DMARCReject{Resolver: r}
				}
			})
			d := dial(t, addr)
			d.must("EHLO mx.spoof.example", "250")
			d.must("MAIL FROM:<ceo@spoof.example>", "250")
			d.must("RCPT TO:<bob@app.test>", "250")
			d.must("DATA", "354")
			d.must("From: <ceo@good.example>\r\n\r\nhi\r\n.", "250 2.0.0 OK")
			if n := len(ing.Envs()); n != 1 {
				t.Errorf("stored %d messages, want 1", n)
			}
			if n := srv.Count(); n != 0 {
				t.Errorf("%d DNS questions asked", n)
			}
		})
	}
}

// Python's smtplib hears the refusal as a 550 to the message, with the
// enhanced code and the text.
func TestDMARCRejectWithPythonSmtplib(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 not found; install it (apt-get install python3)")
		}
		t.Skip("python3 not found; install it (apt-get install python3) to run this test")
	}
	_, r := dmarcDNS(t)
	ing := &fakeIngest{}
	addr, _ := startWith(t, internetLoopback(true), ing, func(c *Config) { c.DMARCReject = &DMARCReject{Resolver: r} })
	host, port, _ := strings.Cut(addr, ":")
	script := `
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), local_hostname="mx.spoof.example", timeout=20)
try:
    s.sendmail("ceo@spoof.example", ["bob@app.test"], "From: CEO <ceo@good.example>\r\nSubject: urgent\r\n\r\npay\r\n")
    print("accepted")
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
s.quit()
`
	out, err := exec.Command(py, "-c", script, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, "550 5.7.1 Message rejected: good.example's DMARC policy is reject and this message fails it") {
		t.Errorf("smtplib got %q", got)
	}
	if n := len(ing.Envs()); n != 0 {
		t.Errorf("%d refused messages reached the store", n)
	}
}
