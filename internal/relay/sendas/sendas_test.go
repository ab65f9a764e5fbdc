package sendas

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"net/textproto"
	"strings"
	"testing"

	"github.com/postern/postern/internal/mailheader"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/relaytest"
	"github.com/postern/postern/internal/relay/smtprelay"
)

// recorder is a Transport that keeps what it was given: the message and
// the bytes its Body held.
type recorder struct {
	msg  relay.Message
	body []byte
}

func (r *recorder) Send(_ context.Context, m *relay.Message) (*relay.Result, error) {
	r.msg = *m
	b, err := io.ReadAll(m.Body)
	if err != nil {
		return nil, err
	}
	r.body = b
	return relay.Uniform(m, "rec.test", relay.Reply{Code: 250, Status: "2.0.0"}), nil
}

const received = "Received: from scanner-3f ([192.0.2.7])\r\n\tby gw.example (Postern) with ESMTP id 01JEXAMPLE0000000000000000;\r\n\tSat, 05 Dec 2026 05:00:00 +0000\r\n"

func send(t *testing.T, c Config, from, raw string) (*recorder, *relay.Message) {
	t.Helper()
	rec := &recorder{}
	tr := Wrap(rec, c)
	m := &relay.Message{ID: postern.MsgID("01JEXAMPLE0000000000000000"), From: from,
		To: []relay.Rcpt{{Addr: "boss@contoso.com"}}, Body: strings.NewReader(raw), Size: int64(len(raw))}
	res, err := tr.Send(context.Background(), m)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(res.Rcpts) != 1 || !res.Rcpts[0].Reply.Accepted() {
		t.Fatalf("result %+v", res.Rcpts)
	}
	if rec.msg.Size != int64(len(rec.body)) {
		t.Errorf("Size %d, body has %d bytes", rec.msg.Size, len(rec.body))
	}
	if m.From != from {
		t.Errorf("caller's message changed: From %q", m.From)
	}
	return rec, m
}

func TestWrapNothingToDo(t *testing.T) {
	rec := &recorder{}
	if got := Wrap(rec, Config{}); got != relay.Transport(rec) {
		t.Errorf("Wrap with nothing to do = %T, want the transport itself", got)
	}
	if got := Wrap(rec, Config{OriginalFrom: OriginalHeader}); got != relay.Transport(rec) {
		t.Errorf("Wrap without a mailbox = %T, want the transport itself", got)
	}
}

func TestEnvelopeOnly(t *testing.T) {
	raw := received + "From: scanner@printer.local\r\nSubject: scan\r\n\r\nbody\r\n"
	rec, _ := send(t, Config{SendAs: "mailbox@contoso.com"}, "scanner@printer.local", raw)
	if rec.msg.From != "mailbox@contoso.com" {
		t.Errorf("envelope sender %q", rec.msg.From)
	}
	if string(rec.body) != raw {
		t.Errorf("body changed without RewriteFrom:\n%q", rec.body)
	}
}

func TestNullSenderKept(t *testing.T) {
	raw := "From: MAILER-DAEMON@gw.example\r\n\r\nnotice\r\n"
	rec, _ := send(t, Config{SendAs: "mailbox@contoso.com", RewriteFrom: true}, "", raw)
	if rec.msg.From != "" {
		t.Errorf("null sender became %q", rec.msg.From)
	}
}

func TestRewriteFrom(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		raw  string
		want string
	}{{
		name: "display name kept, Reply-To added",
		c:    Config{SendAs: "mailbox@contoso.com", RewriteFrom: true},
		raw:  received + "From: Scanner 3F <scanner@printer.local>\r\nTo: boss@contoso.com\r\nSubject: scan\r\n\r\nbody\r\n",
		want: received + "From: \"Scanner 3F\" <mailbox@contoso.com>\r\nReply-To: \"Scanner 3F\" <scanner@printer.local>\r\nTo: boss@contoso.com\r\nSubject: scan\r\n\r\nbody\r\n",
	}, {
		name: "bare address, existing Reply-To left alone, LF line ends",
		c:    Config{SendAs: "mailbox@contoso.com", RewriteFrom: true, OriginalFrom: OriginalReplyTo},
		raw:  "Subject: x\nfrom: scanner@printer.local\nReply-To: helpdesk@contoso.com\n\nbody\n",
		want: "Subject: x\nFrom: <mailbox@contoso.com>\nReply-To: helpdesk@contoso.com\n\nbody\n",
	}, {
		name: "X-Original-From, folded From",
		c:    Config{SendAs: "mailbox@contoso.com", RewriteFrom: true, OriginalFrom: OriginalHeader},
		raw:  received + "From: \"Scanner\r\n 3F\"\r\n\t<scanner@printer.local>\r\nSubject: scan\r\n\r\nbody\r\n",
		want: received + "From: \"Scanner 3F\" <mailbox@contoso.com>\r\nX-Original-From: \"Scanner 3F\" <scanner@printer.local>\r\nSubject: scan\r\n\r\nbody\r\n",
	}, {
		name: "missing From",
		c:    Config{SendAs: "mailbox@contoso.com", RewriteFrom: true},
		raw:  received + "Subject: scan\r\n\r\nbody\r\n",
		want: received + "Subject: scan\r\nFrom: <mailbox@contoso.com>\r\n\r\nbody\r\n",
	}, {
		name: "encoded display name, mailbox without envelope rewrite",
		c:    Config{RewriteFrom: true, Mailbox: "mailbox@contoso.com"},
		raw:  "From: =?iso-8859-1?q?Dr=FCcker_K=FCche?= <drucker@printer.local>\r\n\r\nbody",
		want: "From: =?utf-8?q?Dr=C3=BCcker_K=C3=BCche?= <mailbox@contoso.com>\r\nReply-To: =?utf-8?q?Dr=C3=BCcker_K=C3=BCche?= <drucker@printer.local>\r\n\r\nbody",
	}, {
		name: "unparseable From: no Reply-To",
		c:    Config{SendAs: "mailbox@contoso.com", RewriteFrom: true},
		raw:  "From: scanner\r\n\r\nbody\r\n",
		want: "From: <mailbox@contoso.com>\r\n\r\nbody\r\n",
	}, {
		name: "second From dropped, header only",
		c:    Config{SendAs: "mailbox@contoso.com", RewriteFrom: true, OriginalFrom: OriginalHeader},
		raw:  "From: a@printer.local\r\nFrom: b@printer.local\r\nSubject: x",
		want: "From: <mailbox@contoso.com>\r\nX-Original-From: a@printer.local\r\nSubject: x\r\n",
	}, {
		name: "header injection in an encoded word stays encoded",
		c:    Config{SendAs: "mailbox@contoso.com", RewriteFrom: true, OriginalFrom: OriginalHeader},
		raw:  "From: =?utf-8?q?a=0D=0ABcc=3A_x?= <a@printer.local>\r\n\r\n",
		want: "From: =?utf-8?b?YQ0KQmNjOiB4?= <mailbox@contoso.com>\r\nX-Original-From: =?utf-8?q?a=0D=0ABcc=3A_x?= <a@printer.local>\r\n\r\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			sender := cmp.Or(tc.c.SendAs, "scanner@printer.local")
			rec, _ := send(t, tc.c, "scanner@printer.local", tc.raw)
			if string(rec.body) != tc.want {
				t.Errorf("sent:\n%s\nwant:\n%s", rec.body, tc.want)
			}
			if rec.msg.From != sender {
				t.Errorf("envelope sender %q, want %q", rec.msg.From, sender)
			}
		})
	}
}

// A long display name is folded at spaces, never inside a word, and
// unfolds to the same address.
func TestRewriteFromFoldsLongNames(t *testing.T) {
	name := strings.Repeat("Ärzte Scanner ", 12)
	raw := "From: " + name + "<s@printer.local>\r\n\r\n"
	rec, _ := send(t, Config{SendAs: "mailbox@contoso.com", RewriteFrom: true}, "s@printer.local", raw)
	hdr, _, _ := strings.Cut(string(rec.body), "\r\n\r\n")
	for _, l := range strings.Split(hdr, "\r\n") {
		if len(l) > 78 {
			t.Errorf("line of %d characters: %q", len(l), l)
		}
	}
	f := fieldsOf(t, rec.body)
	a, err := addressParser.Parse(f["From"][0])
	if err != nil || a.Address != "mailbox@contoso.com" || a.Name != strings.TrimSpace(name) {
		t.Errorf("From %q: %v, %+v", f["From"], err, a)
	}
}

// The body streams through: Send reads past the header only as the next
// transport reads, so a body the next one never reads is never read.
func TestBodyStreams(t *testing.T) {
	header := "From: s@printer.local\r\n\r\n"
	body := &countingReader{r: io.MultiReader(strings.NewReader(header), strings.NewReader(strings.Repeat("x", 10<<20)))}
	var got []byte
	next := transportFunc(func(_ context.Context, m *relay.Message) (*relay.Result, error) {
		buf := make([]byte, 64)
		n, _ := io.ReadFull(m.Body, buf)
		got = buf[:n]
		return relay.Uniform(m, "", relay.Reply{Status: "2.0.0"}), nil
	})
	m := &relay.Message{From: "s@printer.local", To: []relay.Rcpt{{Addr: "a@b.example"}}, Body: body}
	if _, err := Wrap(next, Config{SendAs: "mailbox@contoso.com", RewriteFrom: true}).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "From: <mailbox@contoso.com>\r\n") {
		t.Errorf("next read %q", got)
	}
	if body.n > 1<<20 {
		t.Errorf("read %d bytes of the message before the next transport read 64", body.n)
	}
	if m.Size != 0 {
		t.Errorf("unknown size became %d", m.Size)
	}
}

func TestHeaderTooBig(t *testing.T) {
	raw := "From: s@printer.local\r\nX-Junk: " + strings.Repeat("x", MaxHeaderBytes) + "\r\n\r\n" + strings.Repeat("body\r\n", 1<<20)
	called := false
	next := transportFunc(func(context.Context, *relay.Message) (*relay.Result, error) { called = true; return nil, nil })
	m := &relay.Message{From: "s@printer.local", To: []relay.Rcpt{{Addr: "a@b.example"}}, Body: strings.NewReader(raw)}
	res, err := Wrap(next, Config{SendAs: "mailbox@contoso.com", RewriteFrom: true}).Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if called || len(res.Rcpts) != 1 || res.Rcpts[0].Reply.Status != "5.3.4" {
		t.Errorf("called %v, result %+v", called, res.Rcpts)
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("store went away")
	m := &relay.Message{From: "s@printer.local", To: []relay.Rcpt{{Addr: "a@b.example"}},
		Body: io.MultiReader(strings.NewReader("From: s@printer.local\r\n"), errReader{boom})}
	_, err := Wrap(&recorder{}, Config{SendAs: "mailbox@contoso.com", RewriteFrom: true}).Send(context.Background(), m)
	if !errors.Is(err, boom) {
		t.Errorf("err %v, want the read error (retried by the caller)", err)
	}
}

// Through a real SMTP relay: the smarthost gets MAIL FROM the mailbox and
// the rewritten header with CRLF line ends, the gateway's Received field
// byte for byte, and the body unchanged.
func TestThroughSMTPRelay(t *testing.T) {
	srv := relaytest.NewServer(t, relaytest.Options{})
	smtpTr, err := smtprelay.New(smtprelay.Config{Addr: srv.Addr, TLS: smtprelay.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	tr := Wrap(smtpTr, Config{SendAs: "mailbox@contoso.com", RewriteFrom: true, OriginalFrom: OriginalHeader})
	raw := received + "From: Scanner 3F <scanner@printer.local>\nSubject: scan\n\nline 1\n.\nline 3\n"
	m := &relay.Message{ID: "01JEXAMPLE0000000000000000", From: "scanner@printer.local",
		To: []relay.Rcpt{{Addr: "boss@contoso.com"}}, Body: strings.NewReader(raw), Size: int64(len(raw))}
	res, err := tr.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rcpts[0].Reply.Accepted() {
		t.Fatalf("reply %v", res.Rcpts[0].Reply)
	}
	txs := srv.Txs()
	if len(txs) != 1 {
		t.Fatalf("%d transactions", len(txs))
	}
	if txs[0].From != "mailbox@contoso.com" {
		t.Errorf("MAIL FROM %q", txs[0].From)
	}
	want := received + "From: \"Scanner 3F\" <mailbox@contoso.com>\r\nX-Original-From: Scanner 3F <scanner@printer.local>\r\nSubject: scan\r\n\r\nline 1\r\n.\r\nline 3\r\n"
	if string(txs[0].Data) != want {
		t.Errorf("smarthost got:\n%q\nwant:\n%q", txs[0].Data, want)
	}
}

type transportFunc func(context.Context, *relay.Message) (*relay.Result, error)

func (f transportFunc) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	return f(ctx, m)
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// fieldsOf returns the header fields of raw as mailheader reads them,
// keyed by canonical name.
func fieldsOf(t *testing.T, raw []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	block, _ := mailheader.Block(raw)
	for _, f := range mailheader.Fields(block) {
		k := textproto.CanonicalMIMEHeaderKey(f.Name)
		out[k] = append(out[k], f.Value)
	}
	return out
}

// BenchmarkRewriteFrom: a scanner's 1 MiB message through Wrap with From
// rewritten; the body streams, so allocations stay near the header's size.
func BenchmarkRewriteFrom(b *testing.B) {
	raw := []byte(received + "From: Scanner 3F <scanner@printer.local>\r\nTo: boss@contoso.com\r\nSubject: scan\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: application/pdf\r\n\r\n" + strings.Repeat("JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBS\r\n", 1<<20/58))
	next := transportFunc(func(_ context.Context, m *relay.Message) (*relay.Result, error) {
		_, err := io.Copy(io.Discard, m.Body)
		return relay.Uniform(m, "", relay.Reply{Status: "2.0.0"}), err
	})
	tr := Wrap(next, Config{SendAs: "mailbox@contoso.com", RewriteFrom: true})
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		m := &relay.Message{From: "scanner@printer.local", To: []relay.Rcpt{{Addr: "boss@contoso.com"}}, Body: bytes.NewReader(raw), Size: int64(len(raw))}
		if _, err := tr.Send(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}
