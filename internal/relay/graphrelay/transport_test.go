package graphrelay_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/apirelay"
	"github.com/postern/postern/internal/relay/graphrelay"
	"github.com/postern/postern/internal/relay/graphrelay/graphtest"
)

const mailbox = "scanner@contoso.com"

// stored has bare LF line ends, as a device may send them.
const stored = "Received: from printer.local by postern\n\tfor <a@contoso.com>; Sat, 5 Dec 2026 04:00:00 +0000\n" +
	"From: Scanner <scanner@contoso.com>\nTo: a@contoso.com, B <b@fabrikam.com>\nSubject: scan\n\nbody line\n.\nend\n"

type env struct {
	graph   *graphtest.Server
	entra   *entratest.Server
	tr      *graphrelay.Transport
	fetches atomic.Int32
}

// setup sends with SaveToSentItems, the one-call sendMail path.
func setup(t *testing.T) *env { return setupSave(t, true) }

func setupSave(t *testing.T, save bool) *env {
	t.Helper()
	e := &env{entra: entratest.New(t)}
	e.entra.AddApp("contoso", "app", "s3cret")
	e.graph = graphtest.New(t, e.entra.Valid)
	cache := oauthtok.NewCache()
	f := &oauthtok.Entra{Tenant: "contoso", ClientID: "app", Scope: "https://graph.microsoft.com/.default",
		TokenURL: e.entra.TokenURL("contoso"), Secret: func(context.Context) (string, error) { return "s3cret", nil }}
	tr, err := graphrelay.New(graphrelay.Config{Config: apirelay.Config{
		Mailbox: mailbox, BaseURL: e.graph.URL,
		TokenSource: func(ctx context.Context) (string, error) {
			tok, err := cache.Token(ctx, f)
			if err != nil {
				return "", err
			}
			return tok.AccessToken, nil
		},
		InvalidateToken: func(tok string) { e.fetches.Add(1); cache.Invalidate(f.Key(), tok) },
	}, SaveToSentItems: save})
	if err != nil {
		t.Fatal(err)
	}
	e.tr = tr
	return e
}

func msg(body string, to ...string) *relay.Message {
	m := &relay.Message{ID: "m1", From: "scanner@printer.local", Body: strings.NewReader(body), Size: int64(len(body))}
	for _, a := range to {
		m.To = append(m.To, relay.Rcpt{Addr: a})
	}
	return m
}

func send(t *testing.T, e *env, m *relay.Message) *relay.Result {
	t.Helper()
	res, err := e.tr.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rcpts) != len(m.To) {
		t.Fatalf("got %d results for %d recipients", len(res.Rcpts), len(m.To))
	}
	for i, r := range res.Rcpts {
		if r.Addr != m.To[i].Addr {
			t.Fatalf("result %d is for %q", i, r.Addr)
		}
	}
	return res
}

func TestExactRequestAndDelivered(t *testing.T) {
	e := setup(t)
	res := send(t, e, msg(stored, "a@contoso.com", "b@fabrikam.com"))
	for _, r := range res.Rcpts {
		if !r.Reply.Accepted() || r.Reply.Type != graphrelay.DiagGraph {
			t.Fatalf("%s: %v", r.Addr, r.Reply)
		}
	}
	reqs := e.graph.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	q := reqs[0]
	if q.Method != "POST" || q.Path != "/v1.0/users/scanner@contoso.com/sendMail" || q.Mailbox != mailbox {
		t.Errorf("request %s %s (mailbox %q)", q.Method, q.Path, q.Mailbox)
	}
	if q.ContentType != "text/plain" {
		t.Errorf("content type %q", q.ContentType)
	}
	if q.Header.Get("Authorization") != "Bearer "+q.Token || !e.entra.Valid(q.Token) {
		t.Errorf("authorization %q is not a valid bearer token", q.Header.Get("Authorization"))
	}
	want := strings.ReplaceAll(stored, "\n", "\r\n")
	if string(q.MIME) != want {
		t.Errorf("MIME received:\n%q\nwant\n%q", q.MIME, want)
	}
	if string(q.Body) != base64.StdEncoding.EncodeToString([]byte(want)) {
		t.Error("body is not the standard base64 of the message")
	}
}

func TestBccForEnvelopeOnlyRecipient(t *testing.T) {
	e := setup(t)
	body := "From: s@contoso.com\r\nTo: a@contoso.com\r\nBcc: old@fabrikam.com,\r\n other@fabrikam.com\r\nSubject: x\r\n\r\nhi\r\n"
	send(t, e, msg(body, "a@contoso.com", "hidden@fabrikam.com"))
	got := string(e.graph.Requests()[0].MIME)
	want := "From: s@contoso.com\r\nTo: a@contoso.com\r\nSubject: x\r\nBcc: hidden@fabrikam.com\r\n\r\nhi\r\n"
	if got != want {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

func TestToOutsideEnvelopeRefused(t *testing.T) {
	e := setup(t)
	// b was delivered on an earlier attempt; Graph would send it again.
	res := send(t, e, msg(stored, "a@contoso.com"))
	if r := res.Rcpts[0].Reply; !r.Permanent() || !strings.Contains(r.Text, "not recipients") {
		t.Fatalf("reply %v", r)
	}
	if n := len(e.graph.Requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func TestUnauthorizedRenewsOnce(t *testing.T) {
	e := setup(t)
	send(t, e, msg(stored, "a@contoso.com", "b@fabrikam.com"))
	first := e.graph.Requests()[0].Token
	e.entra.Revoke(first)
	res := send(t, e, msg(stored, "a@contoso.com", "b@fabrikam.com"))
	if !res.Rcpts[0].Reply.Accepted() {
		t.Fatalf("reply %v", res.Rcpts[0].Reply)
	}
	reqs := e.graph.Requests()
	if len(reqs) != 3 || reqs[1].Token != first || reqs[2].Token == first || e.fetches.Load() != 1 {
		t.Fatalf("%d requests, %d invalidations; retry with the same token: %v", len(reqs), e.fetches.Load(), len(reqs) == 3 && reqs[2].Token == first)
	}

	// Refused twice: reported, temporary, no third call.
	e.graph.FailNext(graphtest.Unauthorized(), graphtest.Unauthorized())
	res = send(t, e, msg(stored, "a@contoso.com", "b@fabrikam.com"))
	if r := res.Rcpts[0].Reply; r.Permanent() || r.Accepted() || !strings.Contains(r.Text, "InvalidAuthenticationToken") {
		t.Fatalf("reply %v", r)
	}
	if n := len(e.graph.Requests()); n != 5 {
		t.Fatalf("%d requests", n)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		f      graphtest.Failure
		status string
		after  time.Duration
	}{
		{graphtest.AccessDenied(), "5.7.1", 0},
		{graphtest.InvalidUser(), "5.7.0", 0},
		{graphtest.NotRESTEnabled(), "5.7.0", 0},
		{graphtest.TooLarge(), "5.3.4", 0},
		{graphtest.InvalidRecipients(), "5.1.3", 0},
		{graphtest.Throttled(30 * time.Second), "4.4.5", 30 * time.Second},
		{graphtest.Unavailable(0), "4.3.0", 0},
		{graphtest.Unavailable(7 * time.Second), "4.3.0", 7 * time.Second},
		{graphtest.Failure{Status: 504, Code: "GatewayTimeout", Message: "x"}, "4.3.0", 0},
	} {
		t.Run(fmt.Sprint(c.f.Status, c.f.Code), func(t *testing.T) {
			e := setup(t)
			e.graph.FailNext(c.f)
			res := send(t, e, msg(stored, "a@contoso.com", "b@fabrikam.com"))
			for _, r := range res.Rcpts {
				rp := r.Reply
				if rp.Status != c.status || !strings.Contains(rp.Text, c.f.Code) || !strings.Contains(rp.Text, c.f.Message) {
					t.Fatalf("reply %v, want status %s with %s: %s", rp, c.status, c.f.Code, c.f.Message)
				}
				d, ok := graphrelay.RetryAfter(rp)
				if ok != (c.after > 0) || d != c.after {
					t.Fatalf("retry after %v %v, want %v", d, ok, c.after)
				}
			}
		})
	}
}

func TestMIMEInvalidFromGraph(t *testing.T) {
	e := setup(t)
	// The stand-in answers an empty message as Graph does; it needs a header.
	res := send(t, e, msg("X: y\r\n\r\n", "a@contoso.com"))
	if !res.Rcpts[0].Reply.Accepted() {
		t.Fatalf("reply %v", res.Rcpts[0].Reply)
	}
}

// sized builds a message of exactly n bytes (CRLF line ends).
func sized(n int) string {
	head := "From: s@contoso.com\r\nTo: a@contoso.com\r\nSubject: big\r\n\r\n"
	line := strings.Repeat("x", 74) + "\r\n"
	var b strings.Builder
	b.WriteString(head)
	for b.Len()+len(line) <= n {
		b.WriteString(line)
	}
	b.WriteString(strings.Repeat("y", n-b.Len()))
	return b.String()
}

func TestSizeLimit(t *testing.T) {
	e := setup(t)
	under := sized(graphrelay.MaxMessageBytes)
	res := send(t, e, msg(under, "a@contoso.com"))
	if !res.Rcpts[0].Reply.Accepted() {
		t.Fatalf("at the limit: %v", res.Rcpts[0].Reply)
	}
	q := e.graph.Requests()[0]
	if len(q.Body) > graphrelay.MaxRequestBytes || !bytes.Equal(q.MIME, []byte(under)) {
		t.Fatalf("request of %d bytes", len(q.Body))
	}

	// One byte more needs the draft path, where a single-part message
	// has no attachment to upload apart.
	res = send(t, e, msg(sized(graphrelay.MaxMessageBytes+1), "a@contoso.com"))
	if r := res.Rcpts[0].Reply; r.Status != "5.3.4" || !strings.Contains(r.Text, "3 MiB") {
		t.Fatalf("over the limit: %v", r)
	}
	// Bare LFs count as the CRLFs they become.
	bare := strings.ReplaceAll(sized(graphrelay.MaxMessageBytes+500), "\r\n", "\n")
	if len(bare) > graphrelay.MaxMessageBytes {
		t.Fatalf("stored size %d is not under the limit", len(bare))
	}
	res = send(t, e, msg(bare, "a@contoso.com"))
	if r := res.Rcpts[0].Reply; !r.Permanent() {
		t.Fatalf("over the limit once CRLF: %v", r)
	}
	if n := len(e.graph.Requests()); n != 1 {
		t.Fatalf("%d requests", n)
	}
}

func TestDeadline(t *testing.T) {
	e := setup(t)
	e.graph.SetDelay(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := e.tr.Send(ctx, msg(stored, "a@contoso.com", "b@fabrikam.com"))
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Rcpts[1].Reply; r.Status != "4.4.2" || r.Remote() {
		t.Fatalf("reply %v", r)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("Send took %v past a 200ms deadline", el)
	}
}

func TestTokenSourceErrors(t *testing.T) {
	g := graphtest.New(t, nil)
	for _, c := range []struct {
		err    error
		status string
	}{
		{postern.Permanent(errors.New("AADSTS65001: no consent")), "5.7.0"},
		{errors.New("token endpoint unreachable"), "4.7.0"},
	} {
		tr, err := graphrelay.New(graphrelay.Config{Config: apirelay.Config{Mailbox: mailbox, BaseURL: g.URL,
			TokenSource: func(context.Context) (string, error) { return "", c.err }}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := tr.Send(context.Background(), msg(stored, "a@contoso.com", "b@fabrikam.com"))
		if err != nil {
			t.Fatal(err)
		}
		if r := res.Rcpts[0].Reply; r.Status != c.status || !strings.Contains(r.Text, c.err.Error()) {
			t.Fatalf("reply %v", r)
		}
	}
	if n := len(g.Requests()); n != 0 {
		t.Fatalf("%d requests without a token", n)
	}
}

func TestNewChecks(t *testing.T) {
	if _, err := graphrelay.New(graphrelay.Config{Config: apirelay.Config{TokenSource: func(context.Context) (string, error) { return "t", nil }}}); err == nil {
		t.Error("no mailbox accepted")
	}
	if _, err := graphrelay.New(graphrelay.Config{Config: apirelay.Config{Mailbox: mailbox}}); err == nil {
		t.Error("no token source accepted")
	}
}

func TestUndisclosedRecipients(t *testing.T) {
	e := setup(t)
	body := "From: s@contoso.com\r\nTo: undisclosed-recipients:;\r\n\r\nhi\r\n"
	send(t, e, msg(body, "a@contoso.com", "b@fabrikam.com"))
	want := "From: s@contoso.com\r\nTo: undisclosed-recipients:;\r\nBcc: a@contoso.com,\r\n b@fabrikam.com\r\n\r\nhi\r\n"
	if got := string(e.graph.Requests()[0].MIME); got != want {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

func TestFoldedCc(t *testing.T) {
	e := setup(t)
	body := "From: s@contoso.com\r\nTo: a@contoso.com\r\nCc: b@fabrikam.com,\r\n c@fabrikam.com\r\nSubject: x\r\n\r\nhi\r\n"
	res := send(t, e, msg(body, "a@contoso.com", "b@fabrikam.com", "c@fabrikam.com"))
	if r := res.Rcpts[0].Reply; !r.Accepted() {
		t.Fatalf("reply %v", r)
	}
	if got := string(e.graph.Requests()[0].MIME); got != body {
		t.Fatalf("sent %q, want the message unchanged", got)
	}
}
