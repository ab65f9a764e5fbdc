package dkimsign

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/postern/postern/internal/dkimsign/dkimsigntest"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/relaytest"
	"github.com/postern/postern/internal/relay/sendas"
	"github.com/postern/postern/internal/relay/smtprelay"
)

// recorder is a Transport that keeps the message and its bytes.
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

const deviceMessage = "Received: from scanner-3f ([192.0.2.7])\n\tby gw.example (Postern); Sat, 05 Dec 2026 05:00:00 +0000\n" +
	"From: Scanner 3F <scanner@printer.example>\nTo: boss@contoso.com\nSubject: scan\n\nline 1\n.\nline 3\n"

func message(raw string) *relay.Message {
	return &relay.Message{ID: "01JEXAMPLE0000000000000000", From: "scanner@printer.example",
		To: []relay.Rcpt{{Addr: "boss@contoso.com"}}, Body: strings.NewReader(raw), Size: int64(len(raw))}
}

// sendas rewrites From, then the signer signs: the signature is made with
// the rewritten From's domain and verifies on the bytes sent; had the
// signer run first, the rewrite would break it.
func TestWrapTransportAfterSendAs(t *testing.T) {
	t.Parallel()
	contoso := Selector{"contoso.com", "s1", rsaKey()}
	printer := Selector{"printer.example", "s1", edKey()}
	var logs bytes.Buffer
	s := newSigner(t, Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, contoso, printer)
	recs := records(contoso, printer)
	rewrite := sendas.Config{SendAs: "mailbox@contoso.com", RewriteFrom: true}

	rec := &recorder{}
	res, err := sendas.Wrap(WrapTransport(rec, s), rewrite).Send(context.Background(), message(deviceMessage))
	if err != nil || !res.Rcpts[0].Reply.Accepted() {
		t.Fatalf("Send: %v %+v", err, res)
	}
	if rec.msg.Size != int64(len(rec.body)) {
		t.Errorf("Size %d, body %d bytes", rec.msg.Size, len(rec.body))
	}
	if rec.msg.From != "mailbox@contoso.com" {
		t.Errorf("envelope sender %q", rec.msg.From)
	}
	if !bytes.Contains(rec.body, []byte("\r\nFrom: \"Scanner 3F\" <mailbox@contoso.com>\r\n")) {
		t.Fatalf("From not rewritten:\n%s", rec.body)
	}
	checkPass(t, rec.body, recs, "contoso.com", 1)
	if !strings.Contains(logs.String(), `"msg":"dkim signed","msg_id":"01JEXAMPLE0000000000000000","domain":"contoso.com","selectors":"s1"`) ||
		strings.Contains(logs.String(), "mailbox@") || strings.Contains(logs.String(), "scanner@") {
		t.Errorf("log: %s", logs.String())
	}

	// The other order signs the device's From and the rewrite breaks it:
	// what this test guards against.
	rec = &recorder{}
	if _, err := WrapTransport(sendas.Wrap(rec, rewrite), s).Send(context.Background(), message(deviceMessage)); err != nil {
		t.Fatal(err)
	}
	vs := dkimsigntest.VerifyGo(t, rec.body, recs)
	if len(vs) != 1 || vs[0].Err == nil || vs[0].Domain != "printer.example" {
		t.Fatalf("signing before the rewrite: %+v", vs)
	}
}

// No key for the From domain: the message goes out unsigned, as it would
// without a signer, and the log says why.
func TestWrapTransportUnsigned(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := newSigner(t, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, Selector{"contoso.com", "s1", edKey()})
	rec := &recorder{}
	m := message(deviceMessage)
	if _, err := WrapTransport(rec, s).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rec.body, []byte("DKIM-Signature")) || rec.msg.Size != m.Size {
		t.Fatalf("Size %d:\n%s", rec.msg.Size, rec.body)
	}
	if !strings.Contains(logs.String(), `"reason":"no key for the From domain"`) {
		t.Errorf("log: %s", logs.String())
	}
}

// A body that cannot be read is this side's fault: an error the relay
// stage retries, and nothing is sent.
func TestWrapTransportReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	s := newSigner(t, Options{}, Selector{"printer.example", "s1", edKey()})
	called := false
	next := transportFunc(func(context.Context, *relay.Message) (*relay.Result, error) { called = true; return nil, nil })
	m := message("")
	m.Body = io.MultiReader(strings.NewReader("From: a@printer.example\n\n"), iotest.ErrReader(boom))
	if _, err := WrapTransport(next, s).Send(context.Background(), m); !errors.Is(err, boom) || called {
		t.Fatalf("err %v, sent %v", err, called)
	}
	// A context that ends while the body is read stops the read.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m = message(deviceMessage)
	if _, err := WrapTransport(next, s).Send(ctx, m); !errors.Is(err, context.Canceled) || called {
		t.Fatalf("cancelled: err %v, sent %v", err, called)
	}
}

// Through a real SMTP relay to a real SMTP server: what the smarthost
// receives (dot-stuffed and unstuffed on the way) verifies with both
// verifiers on the rewritten From's domain.
func TestWrapTransportThroughSMTP(t *testing.T) {
	t.Parallel()
	srv := relaytest.NewServer(t, relaytest.Options{StrictLineEnds: true})
	smtpTr, err := smtprelay.New(smtprelay.Config{Addr: srv.Addr, TLS: smtprelay.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	sels := []Selector{{"contoso.com", "rsa", rsaKey()}, {"contoso.com", "ed", edKey()}}
	s := newSigner(t, Options{}, sels...)
	tr := sendas.Wrap(WrapTransport(smtpTr, s), sendas.Config{SendAs: "mailbox@contoso.com", RewriteFrom: true, OriginalFrom: sendas.OriginalHeader})
	raw := deviceMessage + "..leading dots\n.\n" + strings.Repeat("x", 990) + "\n"
	res, err := tr.Send(context.Background(), message(raw))
	if err != nil || !res.Rcpts[0].Reply.Accepted() {
		t.Fatalf("Send: %v %+v", err, res)
	}
	txs := srv.Txs()
	if len(txs) != 1 {
		t.Fatalf("%d transactions", len(txs))
	}
	checkPass(t, txs[0].Data, records(sels...), "contoso.com", 2)
}

type transportFunc func(context.Context, *relay.Message) (*relay.Result, error)

func (f transportFunc) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	return f(ctx, m)
}
