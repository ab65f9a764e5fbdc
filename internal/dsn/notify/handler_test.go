package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jhillyerd/enmime/v2"
	enmimedsn "github.com/jhillyerd/enmime/v2/dsn"

	"github.com/postern/postern/internal/dsn"
	"github.com/postern/postern/internal/dsn/notify"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/relaytest"
	"github.com/postern/postern/internal/relay/smtprelay"
)

const testID postern.MsgID = "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q"

const testRaw = "Received: from scanner ([192.0.2.7]) by gw.example.net\r\n" +
	"From: scanner@lan.example\r\n" +
	"To: invoices@example.com, ap@example.com\r\n" +
	"Subject: scan 0042\r\n" +
	"Message-ID: <scan-0042@lan.example>\r\n" +
	"\r\n" +
	"PAGE ONE BODY\r\n"

var (
	testReceived = time.Date(2025, 3, 4, 9, 58, 30, 0, time.UTC)
	testFailedAt = time.Date(2025, 3, 4, 10, 2, 0, 0, time.UTC)
)

type fixture struct {
	store *relaytest.Store
	srv   *relaytest.Server
	tr    relay.Transport
	job   dsn.Job
	cfg   notify.Config
}

func newFixture(t *testing.T, opts relaytest.Options) *fixture {
	t.Helper()
	opts.DSN = true
	f := &fixture{store: relaytest.NewStore(), srv: relaytest.NewServer(t, opts)}
	tr, err := smtprelay.New(smtprelay.Config{Addr: f.srv.Addr, TLS: smtprelay.TLSNone, LocalName: "gw.example.net", Name: "mx.relaytest"})
	if err != nil {
		t.Fatal(err)
	}
	f.tr = tr
	f.store.Put(t.Context(), testID.RawKey(), strings.NewReader(testRaw), nil)
	f.cfg = notify.Config{Hostname: "gw.example.net", Domain: "example.net"}
	f.job = dsn.Job{DSNJob: postern.DSNJob{
		V: postern.JobVersion, ID: testID, Created: testFailedAt,
		Envelope: postern.Envelope{
			V: postern.EnvelopeVersion, ID: testID, Sender: "scanner@lan.example", Identity: "scanner",
			AuthMech: "PLAIN", AuthUser: "scanner", // a trusted sender: see Policy.Trusted
			Recipients: []postern.Recipient{
				{Addr: "invoices@example.com", ORCPT: "rfc822;Invoices@Example.com"},
				{Addr: "ap@example.com", Notify: []string{"FAILURE", "DELAY"}},
			},
			HELO: "scanner", ReceivedAt: testReceived, Ret: "HDRS", EnvID: "scan-0042",
		},
		Failed: []postern.Failure{
			{Recipient: "invoices@example.com", Route: "smarthost", Status: "5.1.1",
				Diagnostic: "smtp; 550 5.1.1 no such user", RemoteMTA: "smtp.example.com", LastAt: testFailedAt},
			{Recipient: "ap@example.com", Route: "smarthost", Status: "4.4.1",
				Diagnostic: "X-Postern; connection refused", LastAt: testFailedAt},
		},
	}}
	return f
}

func (f *fixture) handler(t *testing.T) *notify.Handler {
	t.Helper()
	log := slog.New(slog.NewTextHandler(tlog{t}, nil))
	h, err := notify.New(f.cfg, f.store, f.tr, log)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (f *fixture) handle(t *testing.T, h *notify.Handler, attempt int) error {
	t.Helper()
	b, err := json.Marshal(f.job)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return h.Handle(ctx, postern.Job{Body: b, Attempt: attempt})
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// readNotice parses a notice the server received, as a mail client would.
func readNotice(t *testing.T, data []byte) (*enmime.Envelope, *enmimedsn.Report, map[string]*enmime.Part) {
	t.Helper()
	env, err := enmime.ReadEnvelope(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("enmime: %v", err)
	}
	rep, err := enmimedsn.ParseReport(env.Root)
	if err != nil || rep == nil {
		t.Fatalf("dsn.ParseReport = %v, %v", rep, err)
	}
	parts := map[string]*enmime.Part{}
	for p := env.Root.FirstChild; p != nil; p = p.NextSibling {
		parts[p.ContentType] = p
	}
	return env, rep, parts
}

func eq(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func TestNoticeOverSMTP(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{})
	if err := f.handle(t, f.handler(t), 1); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	txs := f.srv.Txs()
	if len(txs) != 1 {
		t.Fatalf("%d notices sent, want 1", len(txs))
	}
	tx := txs[0]
	if tx.From != "" || !slices.Equal(tx.Rcpts, []string{"scanner@lan.example"}) {
		t.Errorf("MAIL FROM:<%s> RCPT %v; want <> to the sender", tx.From, tx.Rcpts)
	}
	if n := tx.RcptOpts[0].Notify; !slices.Equal(n, []smtp.DSNNotify{smtp.DSNNotifyNever}) {
		t.Errorf("RCPT NOTIFY %v, want NEVER", n)
	}

	env, rep, parts := readNotice(t, tx.Data)
	h := env.Root.Header
	eq(t, "From", h.Get("From"), "Mail Delivery System <MAILER-DAEMON@example.net>")
	eq(t, "To", h.Get("To"), "<scanner@lan.example>")
	eq(t, "Auto-Submitted", h.Get("Auto-Submitted"), "auto-replied")
	eq(t, "In-Reply-To", h.Get("In-Reply-To"), "<scan-0042@lan.example>")
	eq(t, "Date", h.Get("Date"), "Tue, 04 Mar 2025 10:02:00 +0000")

	pm := rep.DeliveryStatus.MessageDSNs[0]
	eq(t, "Reporting-MTA", pm.Get("Reporting-MTA"), "dns; gw.example.net")
	eq(t, "Arrival-Date", pm.Get("Arrival-Date"), "Tue, 04 Mar 2025 09:58:30 +0000")
	eq(t, "Original-Envelope-Id", pm.Get("Original-Envelope-Id"), "scan-0042")
	eq(t, "X-Postern-Id", pm.Get("X-Postern-Id"), string(testID))

	rs := rep.DeliveryStatus.RecipientDSNs
	if len(rs) != 2 {
		t.Fatalf("%d recipient blocks, want 2", len(rs))
	}
	eq(t, "Final-Recipient 0", rs[0].Get("Final-Recipient"), "rfc822; invoices@example.com")
	eq(t, "Original-Recipient 0", rs[0].Get("Original-Recipient"), "rfc822; Invoices@Example.com")
	eq(t, "Action 0", rs[0].Get("Action"), "failed")
	eq(t, "Status 0", rs[0].Get("Status"), "5.1.1")
	eq(t, "Remote-MTA 0", rs[0].Get("Remote-MTA"), "dns; smtp.example.com")
	eq(t, "Diagnostic-Code 0", rs[0].Get("Diagnostic-Code"), "smtp; 550 5.1.1 no such user")
	eq(t, "Last-Attempt-Date 0", rs[0].Get("Last-Attempt-Date"), "Tue, 04 Mar 2025 10:02:00 +0000")
	eq(t, "Final-Recipient 1", rs[1].Get("Final-Recipient"), "rfc822; ap@example.com")
	eq(t, "Original-Recipient 1", rs[1].Get("Original-Recipient"), "")
	eq(t, "Status 1", rs[1].Get("Status"), "4.4.1")
	eq(t, "Remote-MTA 1", rs[1].Get("Remote-MTA"), "")
	eq(t, "Diagnostic-Code 1", rs[1].Get("Diagnostic-Code"), "X-Postern; connection refused")

	hp := parts["text/rfc822-headers"]
	if hp == nil {
		t.Fatalf("no headers part: %v", parts)
	}
	eq(t, "returned headers", string(hp.Content), testRaw[:strings.Index(testRaw, "\r\n\r\n")+2])
	if bytes.Contains(tx.Data, []byte("PAGE ONE BODY")) {
		t.Error("RET=HDRS notice carries the body")
	}
}

func TestNoticeReturnFull(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{})
	f.job.Envelope.Ret = "FULL"
	if err := f.handle(t, f.handler(t), 1); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	_, rep, _ := readNotice(t, f.srv.Txs()[0].Data)
	eq(t, "returned message", string(rep.OriginalMessage), testRaw)

	// Over the size limit, FULL falls back to the headers.
	g := newFixture(t, relaytest.Options{})
	g.job.Envelope.Ret = "FULL"
	g.cfg.MaxReturnBytes = 16
	if err := g.handle(t, g.handler(t), 1); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	_, rep, parts := readNotice(t, g.srv.Txs()[0].Data)
	if rep.OriginalMessage != nil || parts["text/rfc822-headers"] == nil {
		t.Errorf("oversized FULL: parts %v", parts)
	}
}

func TestNoticeOwnerCopyAndRetryIdempotence(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{Script: relaytest.Script{Rcpt: map[string]*smtp.SMTPError{
		"ops@example.net": {Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"},
	}}})
	f.cfg.Policy = notify.Policy{Owner: func(id string) string { return "ops@example.net" }}
	h := f.handler(t)
	err := f.handle(t, h, 1)
	if err == nil || postern.IsPermanent(err) {
		t.Fatalf("Handle = %v, want temporary while the owner's server defers", err)
	}
	if txs := f.srv.Txs(); len(txs) != 1 || txs[0].Rcpts[0] != "scanner@lan.example" {
		t.Fatalf("first attempt sent %+v", txs)
	}
	f.srv.SetScript(relaytest.Script{})
	if err := f.handle(t, h, 2); err != nil {
		t.Fatalf("retry: %v", err)
	}
	txs := f.srv.Txs()
	if len(txs) != 2 || txs[1].Rcpts[0] != "ops@example.net" {
		t.Fatalf("after retry: %d notices, last to %v; want the owner's only", len(txs), txs[len(txs)-1].Rcpts)
	}
	env, rep, _ := readNotice(t, txs[1].Data)
	eq(t, "owner To", env.Root.Header.Get("To"), "<ops@example.net>")
	if n := len(rep.DeliveryStatus.RecipientDSNs); n != 2 {
		t.Errorf("owner's notice reports %d recipients, want 2", n)
	}
}

func TestNoticePermanentRefusalIsDropped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{Script: relaytest.Script{Rcpt: map[string]*smtp.SMTPError{
		"scanner@lan.example": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
	}}})
	if err := f.handle(t, f.handler(t), 1); err != nil {
		t.Fatalf("Handle = %v, want nil: an undeliverable notice is dropped, not retried", err)
	}
	if n := len(f.srv.Txs()); n != 0 {
		t.Errorf("%d notices delivered", n)
	}
}

func TestNoticeTransportDownIsTemporary(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{})
	f.tr = failingTransport{}
	err := f.handle(t, f.handler(t), 1)
	if err == nil || postern.IsPermanent(err) {
		t.Fatalf("Handle = %v, want temporary", err)
	}
}

// The dsn relay itself refuses for good (its app lost consent): that is
// not the notice's fault, so it is dead-lettered to be redriven, not dropped.
func TestNoticeLocalRefusalIsDeadLettered(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{})
	f.tr = refusingTransport{}
	err := f.handle(t, f.handler(t), 1)
	if !postern.IsPermanent(err) || !strings.Contains(err.Error(), "AADSTS65001") {
		t.Fatalf("Handle = %v, want a permanent error with the relay's reason", err)
	}
}

// refusingTransport is a relay whose token the provider refuses for good.
type refusingTransport struct{}

func (refusingTransport) Send(_ context.Context, m *relay.Message) (*relay.Result, error) {
	return relay.Uniform(m, "graph.microsoft.com", relay.Reply{Status: "5.7.0", Type: relay.DiagLocal,
		Text: "no Graph token: AADSTS65001: The user or administrator has not consented"}), nil
}

type failingTransport struct{}

func (failingTransport) Send(context.Context, *relay.Message) (*relay.Result, error) {
	return nil, errors.New("boom")
}

func TestNoNoticeAboutAutomaticMessages(t *testing.T) {
	t.Parallel()
	for name, raw := range map[string]string{
		"auto-submitted": "From: a@lan.example\r\nAuto-Submitted: auto-generated\r\nSubject: x\r\n\r\nbody\r\n",
		"a dsn":          "From: MAILER-DAEMON@x.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b--\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, relaytest.Options{})
			f.store.Put(t.Context(), testID.RawKey(), strings.NewReader(raw), nil)
			f.cfg.Policy = notify.Policy{Owner: func(string) string { return "ops@example.net" }}
			if err := f.handle(t, f.handler(t), 1); err != nil {
				t.Fatal(err)
			}
			if n := len(f.srv.Txs()); n != 0 {
				t.Errorf("%d notices about an automatic message", n)
			}
		})
	}
	f := newFixture(t, relaytest.Options{})
	f.job.Envelope.Sender = ""
	if err := f.handle(t, f.handler(t), 1); err != nil || len(f.srv.Txs()) != 0 {
		t.Errorf("null sender: err %v, %d notices", err, len(f.srv.Txs()))
	}
}

func TestDelayNotice(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{})
	f.job.Action = dsn.ActionDelayed
	f.job.RetryUntil = testReceived.Add(24 * time.Hour)
	f.job.Failed = f.job.Failed[1:] // ap@, NOTIFY=FAILURE,DELAY, 4.4.1
	if err := f.handle(t, f.handler(t), 1); err != nil {
		t.Fatal(err)
	}
	env, rep, _ := readNotice(t, f.srv.Txs()[0].Data)
	eq(t, "Subject", env.Root.Header.Get("Subject"), "Delayed Mail (still being retried)")
	r := rep.DeliveryStatus.RecipientDSNs[0]
	eq(t, "Action", r.Get("Action"), "delayed")
	eq(t, "Status", r.Get("Status"), "4.4.1")
	eq(t, "Will-Retry-Until", r.Get("Will-Retry-Until"), "Wed, 05 Mar 2025 09:58:30 +0000")
}

func TestNoticeWithoutStoredOriginal(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{})
	f.store.Delete(t.Context(), testID.RawKey())
	if err := f.handle(t, f.handler(t), 1); err != nil {
		t.Fatal(err)
	}
	_, _, parts := readNotice(t, f.srv.Txs()[0].Data)
	if len(parts) != 2 {
		t.Errorf("parts %v, want the text and the status only", parts)
	}
}

func TestNoticeUTF8Sender(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{SMTPUTF8: true})
	f.job.Envelope.Sender = "josé@bücher.example"
	f.job.Failed[0].Recipient = "pelé@exämple.org"
	f.job.Envelope.Recipients[0].Addr = "pelé@exämple.org"
	f.job.Envelope.Recipients[0].ORCPT = "utf-8;pelé@exämple.org"
	if err := f.handle(t, f.handler(t), 1); err != nil {
		t.Fatal(err)
	}
	tx := f.srv.Txs()[0]
	if !tx.MailOpts.UTF8 || tx.Rcpts[0] != "josé@bücher.example" {
		t.Errorf("MAIL SMTPUTF8 %v, RCPT %v", tx.MailOpts.UTF8, tx.Rcpts)
	}
	env, rep, parts := readNotice(t, tx.Data)
	eq(t, "To", env.Root.Header.Get("To"), "<josé@bücher.example>")
	if parts["message/global-delivery-status"] == nil {
		t.Errorf("parts %v, want message/global-delivery-status", parts)
	}
	eq(t, "Final-Recipient", rep.DeliveryStatus.RecipientDSNs[0].Get("Final-Recipient"), "utf-8; pelé@exämple.org")
	eq(t, "Original-Recipient", rep.DeliveryStatus.RecipientDSNs[0].Get("Original-Recipient"), "utf-8; pelé@exämple.org")
}

func TestMalformedJobIsPermanent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{})
	h := f.handler(t)
	for _, body := range []string{"{", `{"v":1,"id":"nope"}`, `{"v":2,"id":"01JNKQ3V8Z7Y6X5W4V3T2S1R0Q"}`,
		`{"v":1,"id":"01JNKQ3V8Z7Y6X5W4V3T2S1R0Q","action":"bounced"}`} {
		if err := h.Handle(t.Context(), postern.Job{Body: []byte(body), Attempt: 1}); !postern.IsPermanent(err) {
			t.Errorf("%s: Handle = %v, want permanent", body, err)
		}
	}
	// A plain postern.DSNJob (as parse and webhook send it) is a failure notice.
	f.job.Action = ""
	b, _ := json.Marshal(f.job.DSNJob)
	if err := h.Handle(t.Context(), postern.Job{Body: b, Attempt: 1}); err != nil {
		t.Fatalf("plain DSNJob: %v", err)
	}
	if n := len(f.srv.Txs()); n != 1 {
		t.Errorf("%d notices for a plain DSNJob", n)
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	st := relaytest.NewStore()
	if _, err := notify.New(notify.Config{Hostname: "bad host"}, st, failingTransport{}, nil); err == nil {
		t.Error("bad hostname accepted")
	}
	if _, err := notify.New(notify.Config{Hostname: "gw.example.net"}, st, nil, nil); err == nil {
		t.Error("nil transport accepted")
	}
}
