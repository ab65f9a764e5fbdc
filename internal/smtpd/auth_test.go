package smtpd

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/postern/postern/internal/logbuf"
)

func testTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"gw.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

func hash(t *testing.T, pw string) []byte {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type srvOpt func(*Config)

func startWith(t *testing.T, ids []Identity, ing Ingester, opts ...srvOpt) (string, *Server) {
	t.Helper()
	cfg := testConfig()
	cfg.TLS = testTLS(t)
	cfg.AuthTarpit = time.Millisecond
	cfg.MaxAuthFailures = 3
	cfg.MaxSessions, cfg.MaxSessionsPerIP = 100, 100
	cfg.MaxHeaderBytes, cfg.MaxReceived = 64<<10, 10
	for _, o := range opts {
		o(&cfg)
	}
	router := routerFunc(func(rcpt, _, _ string) bool { return !strings.HasPrefix(rcpt, "nobody@") })
	srv := New(cfg, ids, router, ing, slog.New(slog.NewJSONHandler(testLogWriter{t}, nil)))
	addr := serve(t, srv)
	return addr, srv
}

// devices: a password identity (TLS required) and a plaintext LAN device
// identity that does not cover loopback.
func authIdentities(t *testing.T) []Identity {
	return []Identity{
		{Name: "erp", Username: "erp", PasswordHash: hash(t, "s3cret")},
		{Name: "old-printer", Username: "printer", PasswordHash: hash(t, "lpt1"), AllowPlaintext: true, Networks: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}},
	}
}

func (d *dialog) starttls(t *testing.T) {
	t.Helper()
	d.must("STARTTLS", "220")
	tc := tls.Client(d.c, &tls.Config{InsecureSkipVerify: true, ServerName: "gw.test"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	d.c = tc
	d.r = bufio.NewReader(tc)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthOnlyAfterTLS(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	addr, _ := startWith(t, authIdentities(t), ing)
	d := dial(t, addr)
	ehlo := d.must("EHLO erp.lan", "250")
	if strings.Contains(ehlo, "AUTH") || !strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("plaintext EHLO must offer STARTTLS and not AUTH:\n%s", ehlo)
	}
	d.must("AUTH PLAIN "+b64("\x00erp\x00s3cret"), "538 5.7.11")
	d.must("MAIL FROM:<erp@corp>", "530 5.7.0")

	d.starttls(t)
	ehlo = d.must("EHLO erp.lan", "250")
	if !strings.Contains(ehlo, "AUTH PLAIN LOGIN") || strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("TLS EHLO must offer AUTH PLAIN LOGIN:\n%s", ehlo)
	}
	d.must("AUTH PLAIN "+b64("\x00erp\x00s3cret"), "235")
	d.must("MAIL FROM:<erp@corp>", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	d.must("Subject: invoice\r\n\r\nx\r\n.", "250 2.0.0 OK")
	env := ing.Envs()[0]
	if env.Identity != "erp" || env.AuthMech != "PLAIN" || env.AuthUser != "erp" || env.TLS == nil || env.TLS.Version == "" {
		t.Fatalf("envelope lacks auth/TLS facts: %+v", env)
	}
	if !strings.Contains(string(ing.Raws()[0]), "with ESMTPS id") {
		t.Errorf("Received does not say ESMTPS:\n%s", ing.Raws()[0])
	}
}

func TestAuthLogin(t *testing.T) {
	t.Parallel()
	addr, _ := startWith(t, authIdentities(t), &fakeIngest{})
	d := dial(t, addr)
	d.must("EHLO x", "250")
	d.starttls(t)
	d.must("EHLO x", "250")
	d.must("AUTH LOGIN", "334 "+b64("Username:"))
	d.must(b64("erp"), "334 "+b64("Password:"))
	d.must(b64("s3cret"), "235")
	d.must("MAIL FROM:<a@corp>", "250")

	// Initial response on the AUTH line carries the username.
	d2 := dial(t, addr)
	d2.must("EHLO x", "250")
	d2.starttls(t)
	d2.must("EHLO x", "250")
	d2.must("AUTH LOGIN "+b64("erp"), "334 "+b64("Password:"))
	d2.must(b64("wrong"), "535 5.7.8")
	d2.must("AUTH LOGIN "+b64("erp"), "334")
	d2.must("*", "501")
}

// closedAfterLockout checks that the session ended after a 421 (go-smtp may
// say 421 once more as it hangs up).
func (d *dialog) closedAfterLockout() {
	d.t.Helper()
	for range 3 {
		if _, err := d.r.ReadString('\n'); err != nil {
			return
		}
	}
	d.t.Fatal("session still open after lockout")
}

// tlsDialog is a session after STARTTLS and a second EHLO.
func tlsDialog(t *testing.T, addr string) *dialog {
	t.Helper()
	d := dial(t, addr)
	d.must("EHLO x", "250")
	d.starttls(t)
	d.must("EHLO x", "250")
	return d
}

func TestAuthLockOutIsPerUserThenPerAddress(t *testing.T) {
	t.Parallel()
	ids := append(authIdentities(t), Identity{Name: "ops", Username: "ops", PasswordHash: hash(t, "0ps")})
	// MaxAuthFailures 3: a username is locked after 3 failures from an
	// address, the address after 12.
	addr, _ := startWith(t, ids, &fakeIngest{})
	d := tlsDialog(t, addr)
	d.must("AUTH PLAIN "+b64("\x00erp\x00nope"), "535 5.7.8")
	d.must("AUTH PLAIN "+b64("\x00erp\x00nope2"), "535 5.7.8")
	d.must("AUTH PLAIN "+b64("\x00erp\x00nope3"), "421 4.7.0")
	d.closedAfterLockout()

	// The address may still connect; erp is locked even with the right
	// password, ops is not.
	d = tlsDialog(t, addr)
	d.must("AUTH PLAIN "+b64("\x00erp\x00s3cret"), "421 4.7.0")
	d.closedAfterLockout()
	tlsDialog(t, addr).must("AUTH PLAIN "+b64("\x00ops\x000ps"), "235")

	// Guesses at other usernames (unknown ones count too) add up to the
	// address limit: 11 failures leave ops alone, the 12th locks the address.
	for _, user := range []string{"g1", "g2"} {
		d = tlsDialog(t, addr)
		d.must("AUTH PLAIN "+b64("\x00"+user+"\x00x"), "535")
		d.must("AUTH PLAIN "+b64("\x00"+user+"\x00y"), "535")
		d.must("AUTH PLAIN "+b64("\x00"+user+"\x00z"), "421 4.7.0")
		d.closedAfterLockout()
	}
	d = tlsDialog(t, addr)
	d.must("AUTH PLAIN "+b64("\x00g3\x00x"), "535")
	d.must("AUTH PLAIN "+b64("\x00g3\x00y"), "535")
	tlsDialog(t, addr).must("AUTH PLAIN "+b64("\x00ops\x000ps"), "235")
	d.must("AUTH LOGIN "+b64("g3"), "334")
	d.must(b64("z"), "421 4.7.0")
	d.closedAfterLockout()
	// Locked before the exchange starts: no password is even asked for.
	d = tlsDialog(t, addr)
	d.must("AUTH LOGIN", "421 4.7.0")
	d.closedAfterLockout()
}

func TestAuthLockedAddressMaySendAsNetworkIdentity(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	ids := append(loopback(), authIdentities(t)...)
	// MaxAuthFailures 1: each failure locks its username and ends the
	// session; four lock the address.
	addr, _ := startWith(t, ids, ing, func(c *Config) { c.MaxAuthFailures = 1 })
	for _, user := range []string{"erp", "u1", "u2", "u3"} {
		d := tlsDialog(t, addr)
		d.must("AUTH PLAIN "+b64("\x00"+user+"\x00wrong"), "421 4.7.0")
		d.closedAfterLockout()
	}
	d := tlsDialog(t, addr)
	d.must("AUTH PLAIN "+b64("\x00printer\x00lpt1"), "421 4.7.0")
	d.closedAfterLockout()

	// The devices behind the address that never AUTH are not locked out.
	d = dial(t, addr)
	d.must("EHLO scanner", "250")
	d.must("MAIL FROM:<scan@lan>", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	d.must("Subject: scan\r\n\r\nx\r\n.", "250 2.0.0 OK")
	if len(ing.Envs()) != 1 || ing.Envs()[0].Identity != "local" {
		t.Fatalf("stored %+v, want one message from the network identity", ing.Envs())
	}
}

func TestAuthRestrictedToNetworksAndPlaintextPolicy(t *testing.T) {
	t.Parallel()
	ids := []Identity{{Name: "lan-printer", Username: "printer", PasswordHash: hash(t, "lpt1"), AllowPlaintext: true,
		Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, authIdentities(t)[0]}
	addr, _ := startWith(t, ids, &fakeIngest{})
	d := dial(t, addr)
	// Loopback is a plaintext-allowed network here: AUTH is offered in clear.
	if ehlo := d.must("EHLO x", "250"); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Fatalf("AUTH not offered to a plaintext-allowed network:\n%s", ehlo)
	}
	d.must("AUTH PLAIN "+b64("\x00printer\x00lpt1"), "235")
	d.must("MAIL FROM:<printer@lan>", "250")

	// The erp identity is not plaintext-allowed: right password, no TLS.
	d2 := dial(t, addr)
	d2.must("EHLO x", "250")
	// It is refused at AUTH, before its password is checked.
	d2.must("AUTH PLAIN "+b64("\x00erp\x00s3cret"), "538 5.7.11")
	d2.must("MAIL FROM:<erp@corp>", "530 5.7.0")

	// A password identity restricted to other networks cannot log in here.
	addr2, _ := startWith(t, authIdentities(t), &fakeIngest{})
	d3 := dial(t, addr2)
	d3.must("EHLO x", "250")
	d3.starttls(t)
	d3.must("EHLO x", "250")
	d3.must("AUTH PLAIN "+b64("\x00printer\x00lpt1"), "535")
}

// busyChecks returns failure counts whose only password-check slot is
// taken, and the function that frees it: while it is taken, any AUTH that
// would check a password waits (and, past the command timeout, gets 454),
// so an immediate answer proves no bcrypt ran.
func busyChecks(t *testing.T) (*AuthFailures, func()) {
	t.Helper()
	af := NewAuthFailures(3, time.Minute)
	af.checks = semaphore.NewWeighted(1)
	if !af.checks.TryAcquire(1) {
		t.Fatal("cannot take the check slot")
	}
	var once sync.Once
	return af, func() { once.Do(func() { af.checks.Release(1) }) }
}

// TestAuthTLSRulesPerIdentity: AUTH is offered and accepted in clear only
// for a password identity that allows plaintext from the client's address;
// anything else in clear is refused 538 before any password is checked.
func TestAuthTLSRulesPerIdentity(t *testing.T) {
	t.Parallel()
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	other := []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
	type kind struct {
		name     string
		password bool
		networks []netip.Prefix
	}
	kinds := []kind{
		{"password-anywhere", true, nil},
		{"password-on-loopback", true, loop},
		{"password-elsewhere", true, other},
		{"network-loopback", false, loop},
	}
	for _, k := range kinds {
		for _, plaintext := range []bool{false, true} {
			for _, useTLS := range []bool{false, true} {
				name := fmt.Sprintf("%s/allow_plaintext=%v/tls=%v", k.name, plaintext, useTLS)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					id := Identity{Name: "dev", Networks: k.networks, AllowPlaintext: plaintext}
					if k.password {
						id.Username, id.PasswordHash = "dev", hash(t, "pw")
					}
					usable := k.password && k.networks == nil || k.password && k.networks[0] == loop[0]
					offer, wantAuth, wantMail := useTLS, "535 5.7.8", "530 5.7.0"
					switch {
					case !useTLS && !(usable && plaintext):
						wantAuth = "538 5.7.11"
					case usable:
						offer, wantAuth, wantMail = true, "235", "250"
					}
					if !k.password && (useTLS || plaintext) {
						wantMail = "250"
					}

					af, free := busyChecks(t)
					addr, _ := startWith(t, []Identity{id}, &fakeIngest{}, func(c *Config) { c.AuthFailures = af })
					d := dial(t, addr)
					ehlo := d.must("EHLO x", "250")
					if useTLS {
						d.starttls(t)
						ehlo = d.must("EHLO x", "250")
					}
					if got := strings.Contains(ehlo, "AUTH PLAIN LOGIN"); got != offer {
						t.Fatalf("AUTH offered: %v, want %v:\n%s", got, offer, ehlo)
					}
					if !useTLS {
						// An unknown user in clear: 538 at once, no bcrypt.
						d.must("AUTH PLAIN "+b64("\x00ghost\x00pw"), "538 5.7.11")
						if !offer {
							// Not even the exchange starts.
							d.must("AUTH LOGIN", "538 5.7.11")
						}
					}
					if !strings.HasPrefix(wantAuth, "538") {
						free()
					}
					d.must("AUTH PLAIN "+b64("\x00dev\x00pw"), wantAuth)
					d.must("MAIL FROM:<dev@lan>", wantMail)
				})
			}
		}
	}
}

func TestSubmissionRequiresAuth(t *testing.T) {
	t.Parallel()
	addr, _ := startWith(t, loopback(), &fakeIngest{}, func(c *Config) { c.Mode = ModeSubmission })
	d := dial(t, addr)
	d.must("EHLO x", "250")
	d.must("MAIL FROM:<a@lan>", "530 5.7.0")
}

func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	addr, _ := startWith(t, authIdentities(t), ing, func(c *Config) { c.Mode = ModeSMTPS })
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	d := &dialog{t: t, c: c, r: bufio.NewReader(c)}
	d.expect("220")
	if ehlo := d.must("EHLO x", "250"); strings.Contains(ehlo, "STARTTLS") || !strings.Contains(ehlo, "AUTH") {
		t.Fatalf("smtps EHLO:\n%s", ehlo)
	}
	d.must("AUTH PLAIN "+b64("\x00erp\x00s3cret"), "235")
	d.must("MAIL FROM:<a@corp>", "250")
}

// CVE-2011-0411 class: commands pipelined after STARTTLS in plaintext must
// be discarded, not executed inside the TLS session.
func TestSTARTTLSDiscardsPipelinedPlaintext(t *testing.T) {
	t.Parallel()
	ids := append(loopback(), authIdentities(t)...)
	addr, _ := startWith(t, ids, &fakeIngest{})
	d := dial(t, addr)
	d.must("EHLO x", "250")
	if _, err := io.WriteString(d.c, "STARTTLS\r\nMAIL FROM:<injected@evil>\r\n"); err != nil {
		t.Fatal(err)
	}
	d.expect("220")
	tc := tls.Client(d.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	d.c, d.r = tc, bufio.NewReader(tc)
	d.must("EHLO x", "250")
	// Had the injected MAIL run, RCPT would be accepted (or MAIL refused as nested).
	d.must("RCPT TO:<app@example.com>", "503 5.5.1")
}

func TestSessionLimits(t *testing.T) {
	t.Parallel()
	addr, _ := startWith(t, loopback(), &fakeIngest{}, func(c *Config) { c.MaxSessionsPerIP = 2 })
	dial(t, addr)
	dial(t, addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "421 4.7.0") {
		t.Fatalf("third session from one IP greeted with %q", line)
	}
}

func TestSlowUploadIsNotCutButStallIs(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	addr, _ := startWith(t, loopback(), ing, func(c *Config) {
		c.CommandTimeout, c.DataTimeout = 600*time.Millisecond, 10*time.Second
	})
	d := dial(t, addr)
	d.must("EHLO x", "250")
	d.must("MAIL FROM:<a@lan>", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	io.WriteString(d.c, "Subject: slow\r\n\r\n")
	// 2 s in all, far beyond the timeout, but never idle for long.
	for range 10 {
		time.Sleep(200 * time.Millisecond)
		io.WriteString(d.c, strings.Repeat("x", 100)+"\r\n")
	}
	d.must(".", "250 2.0.0 OK")
	// A client that goes quiet is dropped with 421.
	time.Sleep(1200 * time.Millisecond)
	d.expect("421 4.4.2")
}

func TestHeaderLimitsAndLoops(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	addr, _ := startWith(t, loopback(), ing, func(c *Config) { c.MaxReceived, c.MaxHeaderBytes = 3, 2048 })
	d := dial(t, addr)
	d.must("EHLO x", "250")
	send := func(msg, want string) {
		t.Helper()
		d.must("MAIL FROM:<a@lan>", "250")
		d.must("RCPT TO:<app@example.com>", "250")
		d.must("DATA", "354")
		d.must(msg+"\r\n.", want)
	}
	hops := strings.Repeat("Received: from a by b; Sat, 21 Nov 2026 10:00:00 +0000\r\n", 4)
	send(hops+"Subject: loop\r\n\r\nx", "554 5.4.6")
	send(strings.Repeat("Received: from a by b\r\n", 3)+"Subject: ok\r\n\r\n"+strings.Repeat("received: not a header\r\n", 10), "250")
	send("X-Big: "+strings.Repeat("a", 990)+"\r\nX-Big: "+strings.Repeat("a", 990)+"\r\nX-Big: "+strings.Repeat("a", 990)+"\r\n\r\nx", "552 5.3.4")
	if len(ing.Envs()) != 1 {
		t.Fatalf("stored %d messages, want 1", len(ing.Envs()))
	}
}

func TestPerIdentityLimits(t *testing.T) {
	t.Parallel()
	ids := loopback()
	ids[0].Limiter = rate.NewLimiter(rate.Every(time.Hour), 1)
	ids[0].MaxRecipients = 1
	ids[0].MaxMessageBytes = 2000
	addr, _ := startWith(t, ids, &fakeIngest{})
	d := dial(t, addr)
	d.must("EHLO x", "250")
	d.must("MAIL FROM:<a@lan> SIZE=5000", "552 5.3.4")
	d.must("MAIL FROM:<a@lan>", "250")
	d.must("RCPT TO:<r1@example.com>", "250")
	d.must("RCPT TO:<r2@example.com>", "452 4.5.3")
	d.must("DATA", "354")
	d.must("Subject: big\r\n\r\n"+strings.Repeat(strings.Repeat("y", 70)+"\r\n", 45)+".", "552 5.3.4")
	d.must("MAIL FROM:<a@lan>", "451 4.7.0")
}

func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	addr, srv := startWith(t, loopback(), ing)
	idle := dial(t, addr)
	idle.must("EHLO idle", "250")
	busy := dial(t, addr)
	busy.must("EHLO busy", "250")
	busy.must("MAIL FROM:<a@lan>", "250")
	busy.must("RCPT TO:<app@example.com>", "250")
	busy.must("DATA", "354")
	io.WriteString(busy.c, "Subject: in flight\r\n\r\n")
	time.Sleep(100 * time.Millisecond)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	idle.expect("421")
	time.Sleep(100 * time.Millisecond)
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.HasPrefix(line, "421 4.3.2") {
			t.Errorf("new connection while draining got %q", line)
		}
	}
	busy.must("body\r\n.", "250 2.0.0 OK")
	busy.must("QUIT", "221")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if len(ing.Envs()) != 1 {
		t.Fatal("message in flight lost at shutdown")
	}
}

func TestTranscriptIsOptInAndRedacted(t *testing.T) {
	t.Parallel()
	var buf logbuf.Buffer
	ids := authIdentities(t)
	ids[0].Transcript = true
	cfg := testConfig()
	cfg.TLS = testTLS(t)
	cfg.AuthTarpit = time.Millisecond
	srv := New(cfg, append(ids, loopback()...), routerFunc(func(string, string, string) bool { return true }), &fakeIngest{}, slog.New(slog.NewJSONHandler(&buf, nil)))
	addr := serve(t, srv)

	d := dial(t, addr)
	d.must("EHLO x", "250")
	d.starttls(t)
	d.must("EHLO x", "250")
	d.must("AUTH PLAIN "+b64("\x00erp\x00wrong-pass"), "535")
	d.must("AUTH PLAIN "+b64("\x00erp\x00s3cret"), "235")
	d.must("MAIL FROM:<ap@erp.example>", "250")
	d.must("RCPT TO:<in@example.com>", "250")
	d.must("DATA", "354")
	d.must("Subject: secret body words\r\n\r\nconfidential\r\n.", "250")

	// A client of an identity without the flag leaves no transcript.
	d2 := dial(t, addr)
	d2.must("EHLO y", "250")
	d2.must("MAIL FROM:<other@lan>", "250")

	out := buf.String()
	for _, want := range []string{`"command":"AUTH PLAIN (credentials not logged)","smtp_code":535`, `"command":"AUTH PLAIN (credentials not logged)","smtp_code":235`,
		`"command":"MAIL FROM:<ap@erp.example>"`, `"command":"RCPT TO:<in@example.com>"`, `"command":"DATA","smtp_code":250`} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %s", want)
		}
	}
	for _, leak := range []string{"s3cret", "wrong-pass", b64("\x00erp\x00s3cret"), "confidential", "secret body words", "other@lan"} {
		if strings.Contains(out, leak) {
			t.Errorf("log carries %q", leak)
		}
	}
}
