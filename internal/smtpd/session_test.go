package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/smtp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

// fakeIngest records what the gateway hands over; err makes Accept fail.
// Tests read what it holds through Envs and Raws: a reply read over TCP is
// no synchronisation the race detector can see.
type fakeIngest struct {
	mu   sync.Mutex
	err  error
	envs []postern.Envelope
	raws [][]byte
}

// Envs returns the envelopes stored so far.
func (f *fakeIngest) Envs() []postern.Envelope {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.envs)
}

// Raws returns the messages stored so far.
func (f *fakeIngest) Raws() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.raws)
}

func (f *fakeIngest) Accept(ctx context.Context, env *postern.Envelope, body io.Reader) error {
	b, rerr := io.ReadAll(body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if rerr != nil {
		return fmt.Errorf("read body: %w", rerr)
	}
	if f.err != nil {
		return f.err
	}
	f.envs = append(f.envs, *env)
	f.raws = append(f.raws, b)
	return nil
}

type routerFunc func(rcpt, sender, identity string) bool

func (f routerFunc) Accepts(rcpt, sender, identity string) bool { return f(rcpt, sender, identity) }

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testConfig() Config {
	return Config{
		Hostname:        "gw.test",
		Listener:        "smtp",
		MaxMessageBytes: 64 << 10,
		MaxRecipients:   3,
		MaxLineLength:   2000,
		CommandTimeout:  10 * time.Second,
		DataTimeout:     10 * time.Second,
		StoreTimeout:    10 * time.Second,
	}
}

func loopback() []Identity {
	return []Identity{{
		Name:           "local",
		Networks:       []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		AllowPlaintext: true,
		AllowSender:    func(a string) bool { return !strings.HasPrefix(a, "forbidden@") },
	}}
}

func start(t *testing.T, ids []Identity, ing Ingester) string {
	t.Helper()
	router := routerFunc(func(rcpt, _, _ string) bool { return !strings.HasPrefix(rcpt, "nobody@") })
	srv := New(testConfig(), ids, router, ing, slog.New(slog.NewJSONHandler(testLogWriter{t}, nil)))
	addr := serve(t, srv)
	return addr
}

// serve runs srv on a loopback port until the test ends and returns its
// address.
func serve(t *testing.T, srv *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// dialog scripts a raw SMTP conversation: each line is sent and the full
// reply (all continuation lines) is returned.
type dialog struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *dialog {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	d := &dialog{t: t, c: c, r: bufio.NewReader(c)}
	d.expect("220")
	return d
}

func (d *dialog) read() string {
	d.t.Helper()
	var all []string
	for {
		line, err := d.r.ReadString('\n')
		if err != nil {
			d.t.Fatalf("read reply: %v (so far %q)", err, all)
		}
		all = append(all, strings.TrimRight(line, "\r\n"))
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(all, "\n")
		}
	}
}

func (d *dialog) send(line string) string {
	d.t.Helper()
	if _, err := io.WriteString(d.c, line+"\r\n"); err != nil {
		d.t.Fatal(err)
	}
	return d.read()
}

func (d *dialog) expect(prefix string) string {
	d.t.Helper()
	r := d.read()
	if !strings.HasPrefix(r, prefix) {
		d.t.Fatalf("got %q, want prefix %q", r, prefix)
	}
	return r
}

func (d *dialog) must(line, prefix string) string {
	d.t.Helper()
	r := d.send(line)
	last := r[strings.LastIndex(r, "\n")+1:]
	if !strings.HasPrefix(last, prefix) {
		d.t.Fatalf("%s: got %q, want %q", line, r, prefix)
	}
	return r
}

func TestEHLOAdvertisesExtensions(t *testing.T) {
	t.Parallel()
	d := dial(t, start(t, loopback(), &fakeIngest{}))
	r := d.must("EHLO printer.lan", "250")
	for _, ext := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 65536"} {
		if !strings.Contains(r, ext) {
			t.Errorf("EHLO reply lacks %s:\n%s", ext, r)
		}
	}
}

func TestAcceptWithNetSMTP(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	addr := start(t, loopback(), ing)
	msg := "From: scanner@lan\r\nTo: app@example.com\r\nSubject: scan\r\n\r\nhello\r\n"
	if err := smtp.SendMail(addr, nil, "scanner@lan", []string{"app@example.com", "ops@example.com"}, []byte(msg)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if len(ing.Envs()) != 1 {
		t.Fatalf("got %d messages, want 1", len(ing.Envs()))
	}
	env := ing.Envs()[0]
	if env.Sender != "scanner@lan" || len(env.Recipients) != 2 || env.Recipients[1].Addr != "ops@example.com" {
		t.Errorf("envelope = %+v", env)
	}
	if env.Identity != "local" || env.ClientIP != "127.0.0.1" || env.HELO != "localhost" || env.Gateway != "gw.test" {
		t.Errorf("client facts = %+v", env)
	}
	if _, err := postern.ParseMsgID(string(env.ID)); err != nil {
		t.Errorf("id: %v", err)
	}
	raw := string(ing.Raws()[0])
	if !strings.HasPrefix(raw, "Received: from localhost ([127.0.0.1])\r\n\tby gw.test (Postern) with ESMTP id "+string(env.ID)) {
		t.Errorf("raw does not start with our Received header:\n%s", raw)
	}
	if strings.Contains(raw, "for <") {
		t.Errorf("Received names a recipient of a multi-recipient message:\n%s", raw)
	}
	if !strings.HasSuffix(raw, msg) {
		t.Errorf("body not kept verbatim:\n%q", raw)
	}
}

func TestReplyCarriesMessageID(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	d := dial(t, start(t, loopback(), ing))
	d.must("EHLO cam1", "250")
	d.must("MAIL FROM:<cam@lan> BODY=8BITMIME SIZE=100", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	r := d.must("Subject: x\r\n\r\n..dot\r\n.", "250 2.0.0 OK ")
	id := strings.TrimPrefix(r, "250 2.0.0 OK ")
	if len(ing.Envs()) != 1 || string(ing.Envs()[0].ID) != id {
		t.Fatalf("reply id %q, stored %+v", id, ing.Envs())
	}
	if ing.Envs()[0].Body != "8BITMIME" || ing.Envs()[0].DeclSize != 100 {
		t.Errorf("MAIL parameters not recorded: %+v", ing.Envs()[0])
	}
	if !strings.HasSuffix(string(ing.Raws()[0]), "\r\n\r\n.dot\r\n") {
		t.Errorf("dot-stuffing not undone: %q", ing.Raws()[0])
	}
	if !strings.Contains(string(ing.Raws()[0]), "for <app@example.com>;") {
		t.Errorf("single recipient missing from Received: %q", ing.Raws()[0])
	}
	// The session goes on: a second transaction gets a new id.
	d.must("MAIL FROM:<cam@lan>", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	r2 := d.must("x\r\n.", "250 2.0.0 OK ")
	if r2 == r {
		t.Errorf("two messages got the same id %q", r)
	}
	d.must("QUIT", "221")
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	addr := start(t, loopback(), ing)

	d := dial(t, addr)
	d.must("EHLO x", "250")
	d.must("MAIL FROM:<forbidden@lan>", "553 5.7.1")
	d.must("MAIL FROM:<ok@lan>", "250")
	d.must("RCPT TO:<nobody@example.com>", "550 5.1.1")
	for i := range 3 {
		d.must(fmt.Sprintf("RCPT TO:<r%d@example.com>", i), "250")
	}
	d.must("RCPT TO:<r4@example.com>", "452 4.5.3")
	d.must("RSET", "250")
	d.must("MAIL FROM:<ok@lan> SIZE=999999999", "552 5.3.4")

	// No identity covers 127.0.0.1 here: nobody may send.
	d2 := dial(t, start(t, []Identity{{Name: "lan", Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}, ing))
	d2.must("EHLO x", "250")
	d2.must("MAIL FROM:<a@b>", "530 5.7.0")
	if len(ing.Envs()) != 0 {
		t.Fatalf("refused sessions stored %d messages", len(ing.Envs()))
	}
}

func TestOversizeWhileStreaming(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	d := dial(t, start(t, loopback(), ing))
	d.must("EHLO x", "250")
	d.must("MAIL FROM:<a@lan>", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	line := strings.Repeat("a", 998) + "\r\n"
	var body bytes.Buffer
	for body.Len() < 70<<10 {
		body.WriteString(line)
	}
	body.WriteString(".")
	r := d.send(body.String())
	if !strings.HasPrefix(r, "552 5.3.4 ") {
		t.Fatalf("oversize DATA: got %q", r)
	}
	d.must("NOOP", "250") // the session survives
	if len(ing.Envs()) != 0 {
		t.Fatal("oversize message was accepted")
	}
}

func TestBackendFailureIs451WithGenericText(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{err: errors.New("s3: connection refused to secret-bucket.internal")}
	d := dial(t, start(t, loopback(), ing))
	d.must("EHLO x", "250")
	d.must("MAIL FROM:<a@lan>", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	r := d.must("hi\r\n.", "451 4.3.0 ")
	if strings.Contains(r, "secret-bucket") || strings.Contains(r, "s3") {
		t.Errorf("reply leaks internals: %q", r)
	}
	id := r[strings.LastIndex(r, " ")+1:]
	if _, err := postern.ParseMsgID(id); err != nil {
		t.Errorf("451 reply does not end with the message id: %q", r)
	}
	ing.err = fmt.Errorf("put: %w", context.DeadlineExceeded)
	d.must("MAIL FROM:<a@lan>", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	d.must("hi\r\n.", "451 4.4.5 ")
}

func TestSanitizeKeepsHeaderIntact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "unknown", "a\r\nX-Evil: 1": "a__X-Evil:_1", "ok.host": "ok.host", "(x)<y>;": "_x__y__"} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDSNParametersRecorded(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	d := dial(t, start(t, loopback(), ing))
	if ehlo := d.must("EHLO x", "250"); !strings.Contains(ehlo, "DSN") || !strings.Contains(ehlo, "SMTPUTF8") {
		t.Fatalf("EHLO lacks DSN/SMTPUTF8:\n%s", ehlo)
	}
	d.must("MAIL FROM:<dev@lan> RET=HDRS ENVID=scan+2D42 SMTPUTF8", "250")
	d.must("RCPT TO:<app@example.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;app@example.com", "250")
	d.must("RCPT TO:<ops@example.com> NOTIFY=NEVER", "250")
	d.must("DATA", "354")
	d.must("Subject: x\r\n\r\nx\r\n.", "250")
	env := ing.Envs()[0]
	if env.Ret != "HDRS" || env.EnvID != "scan-42" && env.EnvID != "scan+2D42" || !env.SMTPUTF8 {
		t.Errorf("MAIL parameters: ret=%q envid=%q utf8=%v", env.Ret, env.EnvID, env.SMTPUTF8)
	}
	r := env.Recipients
	if len(r[0].Notify) != 2 || r[0].Notify[0] != "FAILURE" || !strings.EqualFold(r[0].ORCPT, "rfc822;app@example.com") || len(r[1].Notify) != 1 || r[1].Notify[0] != "NEVER" {
		t.Errorf("RCPT parameters: %+v", r)
	}
}

// stallIngest reads the whole body, then blocks until ctx ends: a store
// that hangs after the upload.
type stallIngest struct{}

func (stallIngest) Accept(ctx context.Context, env *postern.Envelope, body io.Reader) error {
	io.Copy(io.Discard, body)
	<-ctx.Done()
	return ctx.Err()
}

func TestStalledStoreTimesOutWith451(t *testing.T) {
	t.Parallel()
	router := routerFunc(func(string, string, string) bool { return true })
	cfg := testConfig()
	cfg.StoreTimeout = 300 * time.Millisecond
	srv := New(cfg, loopback(), router, stallIngest{}, slog.New(slog.NewJSONHandler(testLogWriter{t}, nil)))
	addr := serve(t, srv)
	d := dial(t, addr)
	d.must("EHLO x", "250")
	d.must("MAIL FROM:<a@lan>", "250")
	d.must("RCPT TO:<b@example.com>", "250")
	d.must("DATA", "354")
	start := time.Now()
	d.must("x\r\n.", "451 4.4.5")
	if el := time.Since(start); el < 250*time.Millisecond || el > 5*time.Second {
		t.Errorf("451 after %v, want about the store timeout", el)
	}
	d.must("NOOP", "250")
}
