package smtprelay

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/relaytest"
)

const testBody = "From: scanner@lan.example\r\nTo: a@example.com\r\nSubject: scan\r\n\r\nhello\r\n.leading dot\r\n"

func message(from string, to ...string) *relay.Message {
	m := &relay.Message{ID: "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q", From: from, Body: strings.NewReader(testBody), Size: int64(len(testBody))}
	for _, a := range to {
		m.To = append(m.To, relay.Rcpt{Addr: a})
	}
	return m
}

func newTransport(t *testing.T, cfg Config) *Transport {
	t.Helper()
	if cfg.LocalName == "" {
		cfg.LocalName = "gw.example.net"
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tr
}

func send(t *testing.T, tr *Transport, m *relay.Message) *relay.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := tr.Send(ctx, m)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(res.Rcpts) != len(m.To) {
		t.Fatalf("%d results for %d recipients", len(res.Rcpts), len(m.To))
	}
	return res
}

type want struct {
	code   int
	status string
	text   string // substring of Text
	typ    string
}

func check(t *testing.T, res *relay.Result, wants map[string]want) {
	t.Helper()
	for _, r := range res.Rcpts {
		w, ok := wants[r.Addr]
		if !ok {
			t.Errorf("unexpected result for %s", r.Addr)
			continue
		}
		got := r.Reply
		typ := w.typ
		if typ == "" {
			typ = relay.DiagSMTP
		}
		if got.Code != w.code || got.Status != w.status || !strings.Contains(got.Text, w.text) || got.Type != typ {
			t.Errorf("%s: reply %+v, want code %d status %s text ~%q type %s", r.Addr, got, w.code, w.status, w.text, typ)
		}
	}
}

func TestSendPerRecipientReplies(t *testing.T) {
	t.Parallel()
	srv := relaytest.NewServer(t, relaytest.Options{Script: relaytest.Script{Rcpt: map[string]*smtp.SMTPError{
		"gone@example.com": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
		"busy@example.com": {Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy, try later"},
		"odd@example.com":  {Code: 451, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "mismatched classes"},
	}}})
	tr := newTransport(t, Config{Addr: srv.Addr, TLS: TLSNone})
	m := message("scanner@lan.example", "a@example.com", "gone@example.com", "busy@example.com", "b@example.com", "odd@example.com")
	res := send(t, tr, m)

	if res.Remote != "127.0.0.1" {
		t.Errorf("Remote = %q, want the smarthost host", res.Remote)
	}
	check(t, res, map[string]want{
		"a@example.com":    {250, "2.0.0", "", ""},
		"b@example.com":    {250, "2.0.0", "", ""},
		"gone@example.com": {550, "5.1.1", "5.1.1 no such user", ""},
		"busy@example.com": {450, "4.2.1", "4.2.1 mailbox busy", ""},
		"odd@example.com":  {451, "4.7.1", "5.7.1 mismatched", ""},
	})
	if d := res.Rcpts[1].Reply.Diagnostic(); d != "smtp; 550 5.1.1 no such user" {
		t.Errorf("Diagnostic = %q", d)
	}
	if !res.Rcpts[1].Reply.Permanent() || res.Rcpts[2].Reply.Permanent() || res.Rcpts[2].Reply.Accepted() || !res.Rcpts[0].Reply.Accepted() {
		t.Error("classification of 550 / 450 / 250 is wrong")
	}

	txs := srv.Txs()
	if len(txs) != 1 {
		t.Fatalf("%d transactions, want 1", len(txs))
	}
	tx := txs[0]
	if tx.From != "scanner@lan.example" || !slices.Equal(tx.Rcpts, []string{"a@example.com", "b@example.com"}) {
		t.Errorf("tx from %q to %v", tx.From, tx.Rcpts)
	}
	if string(tx.Data) != testBody {
		t.Errorf("data = %q, want %q", tx.Data, testBody)
	}
	if tx.MailOpts.Size != int64(len(testBody)) {
		t.Errorf("SIZE = %d", tx.MailOpts.Size)
	}
}

func TestSendNullSenderAndDSNParams(t *testing.T) {
	t.Parallel()
	srv := relaytest.NewServer(t, relaytest.Options{DSN: true})
	tr := newTransport(t, Config{Addr: srv.Addr, TLS: TLSNone})
	m := message("", "a@example.com", "b@example.com")
	m.Ret, m.EnvID = "HDRS", "env-42"
	m.To[0].Notify = []string{"FAILURE", "DELAY"}
	m.To[0].ORCPT = "rfc822;A@Example.com"
	m.To[1].Notify = []string{"NEVER", "FAILURE"} // invalid: dropped, not fatal
	res := send(t, tr, m)
	check(t, res, map[string]want{"a@example.com": {250, "2.0.0", "", ""}, "b@example.com": {250, "2.0.0", "", ""}})
	tx := srv.Txs()[0]
	if tx.From != "" {
		t.Errorf("MAIL FROM %q, want <>", tx.From)
	}
	if tx.MailOpts.Return != smtp.DSNReturnHeaders || tx.MailOpts.EnvelopeID != "env-42" {
		t.Errorf("RET, ENVID = %q, %q", tx.MailOpts.Return, tx.MailOpts.EnvelopeID)
	}
	o := tx.RcptOpts[0]
	if !slices.Equal(o.Notify, []smtp.DSNNotify{smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed}) ||
		o.OriginalRecipientType != smtp.DSNAddressTypeRFC822 || o.OriginalRecipient != "A@Example.com" {
		t.Errorf("rcpt 0 options %+v", o)
	}
	if len(tx.RcptOpts[1].Notify) != 0 {
		t.Errorf("rcpt 1 NOTIFY %v, want none", tx.RcptOpts[1].Notify)
	}
}

func TestSendStartTLSAndAuth(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := relaytest.TLSConfigs(t)
	for _, mech := range []string{"", "PLAIN", "LOGIN"} {
		t.Run("mech="+mech, func(t *testing.T) {
			t.Parallel()
			srv := relaytest.NewServer(t, relaytest.Options{TLS: serverTLS,
				Script: relaytest.Script{Users: map[string]string{"gw": "s3cret"}, RequireAuth: true}})
			tr := newTransport(t, Config{Addr: srv.Addr, TLSConfig: clientTLS, Username: "gw", Password: "s3cret", AuthMechanism: mech})
			res := send(t, tr, message("scanner@lan.example", "a@example.com"))
			check(t, res, map[string]want{"a@example.com": {250, "2.0.0", "", ""}})
			tx := srv.Txs()[0]
			wantMech := mech
			if wantMech == "" {
				wantMech = "PLAIN"
			}
			if !tx.TLS || tx.AuthUser != "gw" || tx.AuthMech != wantMech {
				t.Errorf("tls %v, user %q, mech %q; want true, gw, %s", tx.TLS, tx.AuthUser, tx.AuthMech, wantMech)
			}
		})
	}
}

func TestSendImplicitTLS(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := relaytest.TLSConfigs(t)
	srv := relaytest.NewServer(t, relaytest.Options{TLS: serverTLS, Implicit: true,
		Script: relaytest.Script{Users: map[string]string{"gw": "s3cret"}}})
	tr := newTransport(t, Config{Addr: srv.Addr, TLS: TLSImplicit, TLSConfig: clientTLS, Username: "gw", Password: "s3cret"})
	res := send(t, tr, message("scanner@lan.example", "a@example.com"))
	check(t, res, map[string]want{"a@example.com": {250, "2.0.0", "", ""}})
	if tx := srv.Txs()[0]; !tx.TLS || tx.AuthUser != "gw" {
		t.Errorf("tls %v, user %q", tx.TLS, tx.AuthUser)
	}
}

func TestSendUntrustedCertificateIsTemporary(t *testing.T) {
	t.Parallel()
	serverTLS, _ := relaytest.TLSConfigs(t)
	_, otherClient := relaytest.TLSConfigs(t)
	srv := relaytest.NewServer(t, relaytest.Options{TLS: serverTLS})
	tr := newTransport(t, Config{Addr: srv.Addr, TLSConfig: otherClient})
	res := send(t, tr, message("scanner@lan.example", "a@example.com"))
	check(t, res, map[string]want{"a@example.com": {0, "4.7.5", "TLS handshake", relay.DiagLocal}})
	if len(srv.Txs()) != 0 {
		t.Error("message sent over an unverified connection")
	}
}

func TestSendStartTLSMissingIsTemporary(t *testing.T) {
	t.Parallel()
	srv := relaytest.NewServer(t, relaytest.Options{})
	tr := newTransport(t, Config{Addr: srv.Addr})
	res := send(t, tr, message("scanner@lan.example", "a@example.com"))
	check(t, res, map[string]want{"a@example.com": {0, "4.7.4", "STARTTLS", relay.DiagLocal}})
	if len(srv.Txs()) != 0 {
		t.Error("message sent in clear though STARTTLS was required")
	}
}

func TestSendAuthFailureIsTemporary(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := relaytest.TLSConfigs(t)
	srv := relaytest.NewServer(t, relaytest.Options{TLS: serverTLS,
		Script: relaytest.Script{Users: map[string]string{"gw": "s3cret"}, RequireAuth: true}})
	tr := newTransport(t, Config{Addr: srv.Addr, TLSConfig: clientTLS, Username: "gw", Password: "wrong"})
	res := send(t, tr, message("scanner@lan.example", "a@example.com", "b@example.com"))
	// 535 5.7.8 is the smarthost refusing us, not the recipient: retry.
	check(t, res, map[string]want{
		"a@example.com": {535, "4.7.8", "Authentication failed", ""},
		"b@example.com": {535, "4.7.8", "Authentication failed", ""},
	})
}

func TestSendMailAndDataReplies(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		script relaytest.Script
		want   want
	}{
		"MAIL 553": {relaytest.Script{Mail: &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender not allowed"}},
			want{553, "5.7.1", "sender not allowed", ""}},
		"MAIL 421": {relaytest.Script{Mail: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down"}},
			want{421, "4.3.2", "shutting down", ""}},
		"DATA 554": {relaytest.Script{Data: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "content rejected"}},
			want{554, "5.6.0", "content rejected", ""}},
		"DATA 451": {relaytest.Script{Data: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "local error"}},
			want{451, "4.3.0", "local error", ""}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := relaytest.NewServer(t, relaytest.Options{Script: c.script})
			tr := newTransport(t, Config{Addr: srv.Addr, TLS: TLSNone})
			res := send(t, tr, message("scanner@lan.example", "a@example.com", "b@example.com"))
			check(t, res, map[string]want{"a@example.com": c.want, "b@example.com": c.want})
		})
	}
}

func TestSendDataReplyKeepsRcptRefusals(t *testing.T) {
	t.Parallel()
	srv := relaytest.NewServer(t, relaytest.Options{Script: relaytest.Script{
		Rcpt: map[string]*smtp.SMTPError{"gone@example.com": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}},
		Data: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "out of storage"},
	}})
	tr := newTransport(t, Config{Addr: srv.Addr, TLS: TLSNone})
	res := send(t, tr, message("scanner@lan.example", "a@example.com", "gone@example.com"))
	check(t, res, map[string]want{
		"a@example.com":    {452, "4.3.1", "out of storage", ""},
		"gone@example.com": {550, "5.1.1", "no such user", ""},
	})
}

func TestSendSMTPUTF8(t *testing.T) {
	t.Parallel()
	t.Run("supported", func(t *testing.T) {
		t.Parallel()
		srv := relaytest.NewServer(t, relaytest.Options{SMTPUTF8: true})
		tr := newTransport(t, Config{Addr: srv.Addr, TLS: TLSNone})
		res := send(t, tr, message("josé@bücher.example", "pelé@exämple.org"))
		check(t, res, map[string]want{"pelé@exämple.org": {250, "2.0.0", "", ""}})
		tx := srv.Txs()[0]
		if !tx.MailOpts.UTF8 || tx.From != "josé@bücher.example" || tx.Rcpts[0] != "pelé@exämple.org" {
			t.Errorf("tx %+v", tx)
		}
	})
	t.Run("unsupported", func(t *testing.T) {
		t.Parallel()
		srv := relaytest.NewServer(t, relaytest.Options{})
		tr := newTransport(t, Config{Addr: srv.Addr, TLS: TLSNone})
		res := send(t, tr, message("scanner@lan.example", "pelé@exämple.org"))
		check(t, res, map[string]want{"pelé@exämple.org": {0, "5.6.7", "SMTPUTF8", relay.DiagLocal}})
		if srv.RcptCount() != 0 {
			t.Error("RCPT sent without SMTPUTF8")
		}
	})
}

func TestSendTooBigForSmarthost(t *testing.T) {
	t.Parallel()
	srv := relaytest.NewServer(t, relaytest.Options{MaxMessageBytes: 10})
	tr := newTransport(t, Config{Addr: srv.Addr, TLS: TLSNone})
	res := send(t, tr, message("scanner@lan.example", "a@example.com"))
	check(t, res, map[string]want{"a@example.com": {0, "5.3.4", "exceeds", relay.DiagLocal}})
}

func TestSendConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tr := newTransport(t, Config{Addr: addr, TLS: TLSNone})
	res := send(t, tr, message("scanner@lan.example", "a@example.com"))
	check(t, res, map[string]want{"a@example.com": {0, "4.4.1", "connection refused", relay.DiagLocal}})
	if res.Rcpts[0].Reply.Remote() {
		t.Error("a refused connection counts as a remote reply")
	}
}

// A smarthost that accepts the connection and never says a word must not
// hold the stage past its context.
func TestSendHonoursContextDeadline(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	for _, mode := range []TLSMode{TLSNone, TLSStartTLS} {
		tr := newTransport(t, Config{Addr: ln.Addr().String(), TLS: mode})
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		start := time.Now()
		res, err := tr.Send(ctx, message("scanner@lan.example", "a@example.com"))
		cancel()
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: Send took %v past a 300ms deadline", mode, d)
		}
		r := res.Rcpts[0].Reply
		if r.Accepted() || r.Permanent() {
			t.Errorf("%s: reply %+v, want temporary", mode, r)
		}
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"no port":             {Addr: "smtp.example.com"},
		"auth in clear":       {Addr: "smtp.example.com:25", TLS: TLSNone, Username: "u", Password: "p"},
		"user without secret": {Addr: "smtp.example.com:587", Username: "u"},
		"unknown tls":         {Addr: "smtp.example.com:587", TLS: "ssl"},
		"unknown mechanism":   {Addr: "smtp.example.com:587", Username: "u", Password: "p", AuthMechanism: "CRAM-MD5"},
		"local name":          {Addr: "smtp.example.com:587", LocalName: "a b"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New = nil error", name)
		}
	}
	if _, err := New(Config{Addr: "127.0.0.1:25", TLS: TLSNone, Username: "u", Password: "p", AllowInsecureAuth: true}); err != nil {
		t.Errorf("AllowInsecureAuth: %v", err)
	}
}

// bareRaw has a bare CR (one that ends a DATA at some next hops when a dot
// follows), a bare LF, and a CR run before an LF.
const (
	bareRaw  = "From: scanner@lan.example\nSubject: scan\r\r\n\r\nline one\rline two\r\n\r.\rRCPT TO:<victim@example.com>\r\nend\r"
	bareSent = "From: scanner@lan.example\r\nSubject: scan\r\n\r\nline one\r\nline two\r\n\r\n.\r\nRCPT TO:<victim@example.com>\r\nend\r\n"
)

// go-smtp's client on its own sends a bare CR, and a server that refuses
// them says so: the premise of TestSendBareLineEndsAsCRLF.
func TestStrictServerRefusesBareCR(t *testing.T) {
	t.Parallel()
	srv := relaytest.NewServer(t, relaytest.Options{StrictLineEnds: true})
	c, err := smtp.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.SendMail("scanner@lan.example", []string{"a@example.com"}, strings.NewReader("Subject: x\r\n\r\na\rb\r\n"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 554 {
		t.Fatalf("SendMail with a bare CR = %v, want the server's 554", err)
	}
	if txs := srv.Txs(); len(txs) != 0 {
		t.Fatalf("transactions %+v", txs)
	}
}

// The transport sends CRLF line ends only, also when the body comes a byte
// at a time (every CR at the end of one Read, its LF at the start of the
// next), to a server that refuses anything else.
func TestSendBareLineEndsAsCRLF(t *testing.T) {
	t.Parallel()
	srv := relaytest.NewServer(t, relaytest.Options{StrictLineEnds: true})
	tr := newTransport(t, Config{Addr: srv.Addr, TLS: TLSNone})
	for _, body := range []io.Reader{strings.NewReader(bareRaw), iotest.OneByteReader(strings.NewReader(bareRaw))} {
		m := message("scanner@lan.example", "a@example.com")
		m.Body, m.Size = body, int64(len(bareRaw))
		check(t, send(t, tr, m), map[string]want{"a@example.com": {code: 250, status: "2.0.0"}})
	}
	txs := srv.Txs()
	if len(txs) != 2 {
		t.Fatalf("%d transactions, want 2", len(txs))
	}
	for _, tx := range txs {
		if string(tx.Data) != bareSent {
			t.Errorf("sent %q, want %q", tx.Data, bareSent)
		}
	}
	if n := srv.RcptCount(); n != 2 {
		t.Errorf("server saw %d RCPT commands, want 2", n)
	}
}
