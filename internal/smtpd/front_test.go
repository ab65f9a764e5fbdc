package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

// frontIdentities: the loopback device identity, and a password identity
// that may AUTH in plaintext from loopback (so AUTH exchanges can be
// scripted without TLS).
func frontIdentities(t *testing.T) []Identity {
	return append(loopback(), Identity{Name: "lan-app", Username: "app", PasswordHash: hash(t, "pw"),
		AllowPlaintext: true, Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
}

type step struct{ send, want string }

// raw writes bytes as they are (no CRLF added) and reads one reply.
func (d *dialog) raw(b string) string {
	d.t.Helper()
	if _, err := io.WriteString(d.c, b); err != nil {
		d.t.Fatal(err)
	}
	return d.read()
}

func (d *dialog) script(steps []step) {
	d.t.Helper()
	for _, s := range steps {
		d.must(s.send, s.want)
	}
}

// Every reply go-smtp hard-codes wrongly is triggered here over TCP and
// must come out corrected. When go-smtp changes a wording, its entry in
// goSMTPReplies stops matching and the case fails.
func TestGoSMTPRepliesCorrected(t *testing.T) {
	t.Parallel()
	ehloMailRcpt := []step{{"EHLO x", "250"}, {"MAIL FROM:<a@lan>", "250"}, {"RCPT TO:<app@example.com>", "250"}}
	cases := map[string][]step{
		"502 5.5.1 Please introduce yourself first.": {{"MAIL FROM:<a@lan>", "503 5.5.1 Error: send HELO/EHLO first"}},
		"502 5.5.1 Missing MAIL FROM command.":       {{"EHLO x", "250"}, {"RCPT TO:<app@example.com>", "503 5.5.1 Error: need MAIL command"}},
		"502 5.5.1 Missing RCPT TO command.":         {{"EHLO x", "250"}, {"MAIL FROM:<a@lan>", "250"}, {"DATA", "503 5.5.1 Error: need RCPT command"}},
		"502 5.5.1 MAIL not allowed during message transfer": append(ehloMailRcpt[:3:3],
			step{"BDAT 5\r\nabc", "250"}, step{"MAIL FROM:<a@lan>", "503 5.5.1 Error: MAIL during BDAT transfer"}),
		"502 5.5.1 RCPT not allowed during message transfer": append(ehloMailRcpt[:3:3],
			step{"BDAT 5\r\nabc", "250"}, step{"RCPT TO:<b@example.com>", "503 5.5.1 Error: RCPT during BDAT transfer"}),
		"502 5.5.1 DATA not allowed during message transfer": append(ehloMailRcpt[:3:3],
			step{"BDAT 5\r\nabc", "250"}, step{"DATA", "503 5.5.1 Error: DATA during BDAT transfer"}),
		"454 4.7.0 Invalid base64 data":              {{"EHLO x", "250"}, {"AUTH PLAIN !!!", "501 5.5.2 Cannot decode the BASE64 response"}},
		"502 5.5.4 Missing parameter":                {{"EHLO x", "250"}, {"AUTH", "501 5.5.4 Syntax: AUTH mechanism"}},
		"501 5.0.0 Negotiation cancelled":            {{"EHLO x", "250"}, {"AUTH LOGIN", "334"}, {"*", "501 5.7.0 Authentication cancelled"}},
		"500 5.5.4 Malformed AUTH parameter value":   {{"EHLO x", "250"}, {"MAIL FROM:<a@lan> AUTH=+ZZ", "501 5.5.4 Malformed AUTH parameter value"}},
		"500 5.5.4 Malformed AUTH parameter mailbox": {{"EHLO x", "250"}, {"MAIL FROM:<a@lan> AUTH=nobody", "501 5.5.4 Malformed AUTH parameter mailbox"}},
		"250 2.0.0 Roger, accepting mail from <":     {{"EHLO x", "250"}, {"MAIL FROM:<a@lan>", "250 2.1.0 Sender OK"}},
		"250 2.0.0 I'll make sure <":                 {{"EHLO x", "250"}, {"MAIL FROM:<a@lan>", "250"}, {"RCPT TO:<app@example.com>", "250 2.1.5 Recipient OK"}},
		"250 2.0.0 I have successfully done nothing": {{"NOOP", "250 2.0.0 OK"}},
		"250 2.0.0 Session reset":                    {{"RSET", "250 2.0.0 OK"}},
		"354 Go ahead. End your data with <CR><LF>.<CR><LF>": append(ehloMailRcpt[:3:3],
			step{"DATA", "354 End data with <CR><LF>.<CR><LF>"}),
		"452 4.5.3 Maximum limit of ": append(ehloMailRcpt[:3:3], step{"RCPT TO:<b@example.com>", "250"},
			step{"RCPT TO:<c@example.com>", "250"}, step{"RCPT TO:<d@example.com>", "452 4.5.3 Too many recipients"}),
		"501 5.5.2 Domain/address argument required for HELO": {{"EHLO", "501 5.5.2 Syntax: EHLO hostname"}, {"HELO", "501 5.5.2 Syntax: HELO hostname"}},
		"552 5.3.4 Max message size exceeded": {{"EHLO x", "250"},
			{"MAIL FROM:<a@lan> SIZE=4294967295", "552 5.3.4 Message size exceeds fixed limit"}},
		"500 5.4.0 Too long line, closing connection": {{"NOOP " + strings.Repeat("x", 2100), "500 5.5.2 Error: line too long"}},
	}
	for _, c := range goSMTPReplies {
		if _, ok := cases[c.from]; !ok && c.from != "421 4.0.0 Internal server error" {
			t.Errorf("no test triggers the correction of %q", c.from)
		}
	}
	addr, _ := startWith(t, frontIdentities(t), &fakeIngest{})
	for from, steps := range cases {
		t.Run(from, func(t *testing.T) {
			t.Parallel()
			dial(t, addr).script(steps)
		})
	}
	t.Run("421 4.0.0 Internal server error", func(t *testing.T) {
		t.Parallel()
		d := dial(t, start(t, loopback(), panicIngest{}))
		d.script(append(ehloMailRcpt[:3:3], step{"DATA", "354"}, step{"x\r\n.", "421 4.3.0 gw.test Internal error"}))
	})
}

type panicIngest struct{}

func (panicIngest) Accept(context.Context, *postern.Envelope, io.Reader) error { panic("boom") }

func TestGreetingReplies(t *testing.T) {
	t.Parallel()
	addr, _ := startWith(t, frontIdentities(t), &fakeIngest{})
	d := dial(t, addr)
	r := d.must("EHLO printer.lan", "250")
	lines := strings.Split(r, "\n")
	if lines[0] != "250-gw.test" {
		t.Errorf("EHLO reply must start with the server's domain (RFC 5321 4.1.1.1): %q", lines[0])
	}
	if !strings.Contains(r, "250-STARTTLS") {
		t.Errorf("STARTTLS not offered before TLS:\n%s", r)
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "250-") {
			t.Errorf("continuation line %q", l)
		}
	}
	d.must("HELO printer.lan", "250 gw.test")
	d.starttls(t)
	r = d.must("EHLO printer.lan", "250")
	if strings.Contains(r, "STARTTLS") {
		t.Errorf("STARTTLS offered again inside TLS:\n%s", r)
	}
}

func TestFrontAnswers(t *testing.T) {
	t.Parallel()
	addr, _ := startWith(t, frontIdentities(t), &fakeIngest{})
	cases := map[string][]step{
		"unknown verb":          {{"XYZZY", "500 5.5.2"}, {"EHLO x", "250"}, {"FOOBAR baz", "500 5.5.2"}},
		"verb not four letters": {{"HI", "500 5.5.2"}, {"MAILFROM:<a@lan>", "500 5.5.2"}, {"LHLO x", "500 5.5.2"}},
		"empty line":            {{"", "500 5.5.2"}},
		"help":                  {{"HELP", "214 2.0.0"}, {"HELP mail", "214 2.0.0 MAIL FROM:<sender>"}, {"HELP FOO", "504 5.5.4"}},
		"vrfy stays 252":        {{"VRFY postmaster", "252"}},
		"trailing blanks": {{"EHLO x  ", "250"}, {"MAIL FROM:<a@lan>  ", "250"}, {"RCPT TO:<app@example.com>\t", "250"},
			{"RSET ", "250"}, {"NOOP ", "250"}},
		"SIZE": {{"EHLO x", "250"}, {"MAIL FROM:<a@lan> SIZE=4294967296", "552 5.3.4 Message size exceeds fixed limit"},
			{"MAIL FROM:<a@lan> SIZE=99999999999999999999", "552 5.3.4"}, {"MAIL FROM:<a@lan> SIZE=999999999999999999999", "501 5.5.4"},
			{"MAIL FROM:<a@lan> SIZE=+5", "501 5.5.4"}, {"MAIL FROM:<a@lan> SIZE=1x", "501 5.5.4"}, {"MAIL FROM:<a@lan> SIZE=1000", "250"}},
		"nested MAIL": {{"EHLO x", "250"}, {"MAIL FROM:<a@lan>", "250"}, {"MAIL FROM:<b@lan>", "503 5.5.1"},
			{"RCPT TO:<app@example.com>", "250"}},
		"sender syntax": {{"EHLO x", "250"}, {"MAIL FROM:<a@@b..>", "501 5.1.7"}, {"MAIL FROM:<a@b..>", "501 5.1.7"},
			{"MAIL FROM:<a@b", "501 5.1.7"}, {"MAIL FROM:<a b@c>", "501 5.1.7"}, {"MAIL FROM:<.a@b>", "501 5.1.7"},
			{"MAIL FROM:<a@-b.c>", "501 5.1.7"}, {"MAIL FROM:<@>", "501 5.1.7"}, {"MAIL FROM:<a@[1.2.3]>", "501 5.1.7"},
			{"MAIL TO:<a@b>", "501 5.5.2"}, {"MAIL FROM:<a@lan>x", "501 5.1.7"}},
		"sender forms taken": {{"EHLO x", "250"}, {"MAIL FROM:<>", "250"}, {"RSET", "250"},
			{"MAIL FROM:scanner@lan", "250"}, {"RSET", "250"}, {"MAIL FROM: <scanner@lan>", "250"}, {"RSET", "250"},
			{`MAIL FROM:<"john doe"@lan>`, "250"}, {"RSET", "250"}, {"MAIL FROM:<a@[192.0.2.1]>", "250"}, {"RSET", "250"},
			{"MAIL FROM:<a@[IPv6:2001:db8::1]>", "250"}, {"RSET", "250"}, {"MAIL FROM:<@relay.example:a@lan>", "250"}},
		"recipient syntax": {{"EHLO x", "250"}, {"MAIL FROM:<a@lan>", "250"}, {"RCPT TO:<>", "501 5.1.3"},
			{"RCPT TO:<b@@c>", "501 5.1.3"}, {"RCPT TO:<b@c.>", "501 5.1.3"}, {"RCPT FROM:<b@c>", "501 5.5.2"},
			{"RCPT TO:<Postmaster>", "250"}, {"RCPT TO:<app@example.com>", "250"}},
		"unknown parameters": {{"EHLO x", "250"}, {"MAIL FROM:<a@lan> FOO=1", "555 5.5.4"}, {"MAIL FROM:<a@lan> REQUIRETLS", "555 5.5.4"},
			{"MAIL FROM:<a@lan> SIZE==1", "501 5.5.4"}, {"MAIL FROM:<a@lan> SIZE=10 BODY=8BITMIME", "250"},
			{"RCPT TO:<app@example.com> XFOO", "555 5.5.4"}, {"RCPT TO:<app@example.com> NOTIFY=FAILURE", "250"}},
		"non-ASCII needs SMTPUTF8": {{"EHLO x", "250"}, {"MAIL FROM:<jösé@lan>", "553 5.6.7"},
			{"MAIL FROM:<jösé@lan> SMTPUTF8", "250"}, {"RCPT TO:<müller@exämple.com>", "250"}},
		"non-ASCII recipient without SMTPUTF8": {{"EHLO x", "250"}, {"MAIL FROM:<a@lan>", "250"}, {"RCPT TO:<müller@example.com>", "553 5.6.7"}},
		"AUTH during a transaction": {{"EHLO x", "250"}, {"MAIL FROM:<a@lan>", "250"},
			{"AUTH PLAIN " + b64("\x00app\x00pw"), "503 5.5.1"}, {"RCPT TO:<app@example.com>", "250"}},
		"AUTH twice": {{"EHLO x", "250"}, {"AUTH PLAIN " + b64("\x00app\x00pw"), "235"},
			{"AUTH PLAIN " + b64("\x00app\x00pw"), "503 5.5.1"}},
		"AUTH PLAIN malformed": {{"EHLO x", "250"}, {"AUTH PLAIN " + b64("no separators"), "501 5.5.2"}},
		"STARTTLS sequence": {{"STARTTLS", "503 5.5.1"}, {"EHLO x", "250"}, {"STARTTLS now", "501 5.5.4"},
			{"MAIL FROM:<a@lan>", "250"}, {"STARTTLS", "503 5.5.1"}},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dial(t, addr).script(steps)
		})
	}
}

func TestSTARTTLSNotConfigured(t *testing.T) {
	t.Parallel()
	d := dial(t, start(t, loopback(), &fakeIngest{}))
	if r := d.must("EHLO x", "250"); strings.Contains(r, "STARTTLS") {
		t.Errorf("STARTTLS offered without TLS:\n%s", r)
	}
	d.must("STARTTLS", "502 5.5.1")
}

// After STARTTLS the session starts again (RFC 3207 section 4.2): no mail
// before a new EHLO, and nothing learnt before TLS carries over.
func TestSTARTTLSNeedsNewEHLO(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	addr, _ := startWith(t, frontIdentities(t), ing)
	d := dial(t, addr)
	d.must("EHLO before", "250")
	d.starttls(t)
	d.must("MAIL FROM:<a@lan>", "503 5.5.1")
	d.must("AUTH PLAIN "+b64("\x00app\x00pw"), "503 5.5.1")
	d.must("STARTTLS", "503 5.5.1")
	d.must("EHLO after", "250")
	d.must("MAIL FROM:<a@lan>", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	d.must("Subject: t\r\n\r\nx\r\n.", "250 2.0.0 OK")
	if len(ing.Envs()) != 1 || ing.Envs()[0].TLS == nil || ing.Envs()[0].HELO != "after" {
		t.Fatalf("envelope after STARTTLS: %+v", ing.Envs())
	}
}

// Implicit TLS: the handshake comes first, then the greeting.
func TestImplicitTLSGreetsAfterHandshake(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	addr, _ := startWith(t, loopback(), ing, func(c *Config) { c.Mode = ModeSMTPS })
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	d := &dialog{t: t, c: c, r: bufio.NewReader(c)}
	d.expect("220 gw.test")
	if r := d.must("EHLO x", "250"); strings.Contains(r, "STARTTLS") {
		t.Errorf("STARTTLS offered on implicit TLS:\n%s", r)
	}
	d.must("STARTTLS", "503 5.5.1")
	d.script([]step{{"MAIL FROM:<a@lan>", "250"}, {"RCPT TO:<app@example.com>", "250"}, {"DATA", "354"}, {"x\r\n.", "250 2.0.0 OK"}})
	if len(ing.Envs()) != 1 || ing.Envs()[0].TLS == nil {
		t.Fatalf("TLS not recorded: %+v", ing.Envs())
	}
}

// Pipelined commands (RFC 2920) are answered in order, also when the front
// answers some itself and when they follow a message in the same packet.
func TestPipelinedRepliesInOrder(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	addr, _ := startWith(t, frontIdentities(t), ing)
	d := dial(t, addr)
	d.must("EHLO x", "250")
	io.WriteString(d.c, "RSET\r\nHELP\r\nMAIL FROM:<a@lan>\r\nRCPT TO:<a@@b>\r\nRCPT TO:<app@example.com>\r\nDATA\r\n")
	for _, want := range []string{"250 2.0.0 OK", "214 2.0.0", "250 2.1.0", "501 5.1.3", "250 2.1.5", "354"} {
		if r := d.read(); !strings.HasPrefix(r[strings.LastIndex(r, "\n")+1:], want) {
			t.Fatalf("got %q, want %q", r, want)
		}
	}
	// The message and the next transaction in one write: the commands
	// after the end marker are commands, and checked as such.
	io.WriteString(d.c, "Subject: a\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@lan>\r\nRCPT TO:<x@@y>\r\nRCPT TO:<app@example.com>\r\nBDAT 6 LAST\r\nbody\r\nNOOP\r\n")
	for _, want := range []string{"250 2.0.0 OK", "250 2.1.0", "501 5.1.3", "250 2.1.5", "250 2.0.0 OK", "250 2.0.0 OK"} {
		if r := d.read(); !strings.HasPrefix(r, want) {
			t.Fatalf("got %q, want %q", r, want)
		}
	}
	if len(ing.Raws()) != 2 || !strings.HasSuffix(string(ing.Raws()[0]), "body\r\n") || !strings.HasSuffix(string(ing.Raws()[1]), "body\r\n") {
		t.Fatalf("messages: %q", ing.Raws())
	}
}

func TestTooManyErrorsEndsSession(t *testing.T) {
	t.Parallel()
	d := dial(t, start(t, loopback(), &fakeIngest{}))
	for range maxErrors - 1 {
		d.must("XYZZY", "500")
	}
	d.must("XYZZY", "500")
	d.expect("421 4.7.0")
	if _, err := d.r.ReadByte(); err == nil {
		t.Fatal("connection still open after too many errors")
	}
}

func TestHTTPClientIsSentAway(t *testing.T) {
	t.Parallel()
	d := dial(t, start(t, loopback(), &fakeIngest{}))
	io.WriteString(d.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	d.expect("221 2.7.0")
	if _, err := d.r.ReadByte(); err == nil {
		t.Fatal("connection still open")
	}
}

// closedWithin waits for the server to close the connection and fails if
// that takes longer than d.
func closedWithin(t *testing.T, dl *dialog, d time.Duration) {
	t.Helper()
	dl.c.SetReadDeadline(time.Now().Add(d))
	_, err := dl.r.ReadByte()
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed within %v after the reply (err %v)", d, err)
	}
}

// drip writes s to c every 100 ms until the returned stop is called or a
// write fails: a client that never goes idle.
func drip(c net.Conn, s string) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if _, err := io.WriteString(c, s); err != nil {
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// A command must be complete within the command timeout however slowly
// its bytes trickle in (as Postfix's smtpd_per_record_deadline).
func TestCommandDeadlineCannotBeStretched(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	addr, _ := startWith(t, loopback(), &fakeIngest{}, func(c *Config) { c.CommandTimeout = timeout })
	d := dial(t, addr)
	d.must("EHLO x", "250")
	start := time.Now()
	defer drip(d.c, "N")()
	d.expect("421 4.4.2")
	if el := time.Since(start); el < timeout-50*time.Millisecond || el > timeout+time.Second {
		t.Errorf("421 after %v, want about %v", el, timeout)
	}
	closedWithin(t, d, time.Second)
}

// Inside DATA each read must come within the command timeout (idle) and
// the whole upload within the data timeout; either ends the session at
// once with 421, and late bytes are never taken as commands.
func TestDataDeadlines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		cmd, data    time.Duration
		drip         bool
		wantAfter354 time.Duration
	}{
		{name: "stalled upload", cmd: time.Second, data: time.Minute, wantAfter354: time.Second},
		{name: "upload too slow in all", cmd: time.Minute, data: 1500 * time.Millisecond, drip: true, wantAfter354: 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ing := &fakeIngest{}
			addr, _ := startWith(t, loopback(), ing, func(c *Config) { c.CommandTimeout, c.DataTimeout = tc.cmd, tc.data })
			d := dial(t, addr)
			d.script([]step{{"EHLO x", "250"}, {"MAIL FROM:<a@lan>", "250"}, {"RCPT TO:<app@example.com>", "250"}, {"DATA", "354"}})
			start := time.Now()
			io.WriteString(d.c, "Subject: slow\r\n\r\n")
			if tc.drip {
				// Would-be commands, should the session read on.
				defer drip(d.c, "NOOP\r\n")()
			}
			d.expect("421 4.4.2")
			if el := time.Since(start); el < tc.wantAfter354-50*time.Millisecond || el > tc.wantAfter354+time.Second {
				t.Errorf("421 after %v, want about %v", el, tc.wantAfter354)
			}
			closedWithin(t, d, time.Second)
			if len(ing.Envs()) != 0 {
				t.Errorf("a timed-out upload was stored: %+v", ing.Envs())
			}
		})
	}
}

func TestBDATChunkStallTimesOut(t *testing.T) {
	t.Parallel()
	addr, _ := startWith(t, loopback(), &fakeIngest{}, func(c *Config) { c.CommandTimeout, c.DataTimeout = time.Minute, time.Second })
	d := dial(t, addr)
	d.script([]step{{"EHLO x", "250"}, {"MAIL FROM:<a@lan>", "250"}, {"RCPT TO:<app@example.com>", "250"}})
	start := time.Now()
	io.WriteString(d.c, "BDAT 100 LAST\r\nonly a few bytes")
	d.expect("421 4.4.2")
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("421 after %v", el)
	}
	closedWithin(t, d, time.Second)
}

func TestCheckPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path string
		utf8 bool
		want addrProblem
	}{
		{"a@b", false, addrOK},
		{"first.last+tag@sub.example.com", false, addrOK},
		{"a!#$%&'*+-/=?^_`{|}~@x", false, addrOK},
		{`"a b"@x`, false, addrOK},
		{`"a\"b"@x`, false, addrOK},
		{`"a"b"@x`, false, addrSyntax},
		{"a@[192.0.2.1]", false, addrOK},
		{"a@[IPv6:::1]", false, addrOK},
		{"a@[::1]", false, addrSyntax},
		{"a@[300.1.1.1]", false, addrSyntax},
		{"a@[x-tag:stuff]", false, addrOK},
		{"@a,@b.c:d@e", false, addrOK},
		{"@a;@b:d@e", false, addrSyntax},
		{"a@@b", false, addrSyntax},
		{"a@b..c", false, addrSyntax},
		{"a..b@c", false, addrSyntax},
		{"a.@c", false, addrSyntax},
		{"@c", false, addrSyntax},
		{"a@", false, addrSyntax},
		{"a", false, addrSyntax},
		{"a@b_c", false, addrSyntax},
		{"a@" + strings.Repeat("x", 64) + ".com", false, addrSyntax},
		{"a@b-.com", false, addrSyntax},
		{"jösé@b", false, addrNonASCII},
		{"jösé@b", true, addrOK},
		{"a@exämple.com", false, addrNonASCII},
		{"a@exämple.com", true, addrOK},
		{"a\xff@b", true, addrSyntax},
		{"a\x00@b", false, addrSyntax},
	} {
		if got := checkPath(tc.path, tc.utf8); got != tc.want {
			t.Errorf("checkPath(%q, %v) = %q, want %q", tc.path, tc.utf8, got, tc.want)
		}
	}
}

// FuzzScanData: however a message arrives in pieces, the bytes the front
// passes are exactly the stream up to and including the first end marker.
func FuzzScanData(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"), uint8(3))
	f.Add([]byte(".\r\nQUIT\r\n"), uint8(1))
	f.Add([]byte("a\r\n..\r\n.\r\n"), uint8(2))
	f.Add([]byte("a\r\r\n.\r\nb\r\n.\r\n"), uint8(5))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		n := int(step%16) + 1
		want := stream
		ctx := append([]byte("\r\n"), stream...)
		if i := strings.Index(string(ctx), "\r\n.\r\n"); i >= 0 {
			want = stream[:i+5-2]
		}
		fc := &frontConn{}
		fc.tail, fc.tailLen = [4]byte{'\r', '\n'}, 2
		var got []byte
		for rest := stream; len(rest) > 0; {
			b := rest[:min(n, len(rest))]
			k := fc.scanData(b)
			if k < 0 || k > len(b) {
				t.Fatalf("scanData returned %d for %d bytes", k, len(b))
			}
			got = append(got, b[:k]...)
			rest = rest[k:]
			if strings.Contains("\r\n"+string(got), "\r\n.\r\n") {
				break // the end: go-smtp reads no further
			}
			if k < len(b) {
				t.Fatalf("stopped after %q without an end marker", got)
			}
		}
		if string(got) != string(want) {
			t.Fatalf("passed %q, want %q", got, want)
		}
	})
}

// FuzzCommandArgs: the argument checks never panic, and a path they take
// has no byte that could end or split the command.
func FuzzCommandArgs(f *testing.F) {
	for _, s := range []string{"<a@b> SIZE=1", "<>", `<"a>b"@c> BODY=8BITMIME`, "a@b", "<@x,@y:a@[IPv6:::1]>", "<jö@ü> SMTPUTF8"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, arg string, utf bool) {
		pa, ok := splitPathArg(arg)
		if !ok || pa.path == "" {
			return
		}
		if checkPath(pa.path, utf) == addrOK && strings.ContainsAny(pa.path, "\r\n\x00") {
			t.Fatalf("path %q accepted", pa.path)
		}
		checkParams(pa.params, mailParams, utf)
	})
}
