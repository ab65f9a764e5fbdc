package gmailrelay

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/oauthtok/googletest"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/gmailrelay/gmailtest"
)

const (
	account = "relay@postern-test.iam.gserviceaccount.com"
	mailbox = "noreply@example.com"
)

type env struct {
	auth  *googletest.Server
	gmail *gmailtest.Server
	acct  *googletest.Account
	g     *oauthtok.Google
	cache *oauthtok.Cache
	tr    *Transport
}

// setup wires the real token fetcher and cache to the two stand-ins.
func setup(t *testing.T, scopes ...string) *env {
	t.Helper()
	e := &env{auth: googletest.New(t)}
	e.gmail = gmailtest.New(t, e.auth)
	e.acct = e.auth.NewAccount(t, account)
	e.auth.Delegate(e.acct, oauthtok.ScopeGmailSend, "https://www.googleapis.com/auth/gmail.readonly")
	e.auth.AddUser(mailbox)
	key := e.auth.KeyJSON(e.acct)
	e.g = &oauthtok.Google{
		ServiceAccountJSON: func(context.Context) ([]byte, error) { return key, nil },
		Subject:            mailbox, Scopes: scopes,
	}
	e.cache = oauthtok.NewCache()
	tr, err := New(Config{
		Mailbox: mailbox, BaseURL: e.gmail.URL,
		TokenSource: func(ctx context.Context) (string, error) {
			tok, err := e.cache.Token(ctx, e.g)
			if err != nil {
				return "", err
			}
			return tok.AccessToken, nil
		},
		InvalidateToken: func(tok string) { e.cache.Invalidate(e.g.Key(), tok) },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.tr = tr
	return e
}

func message(body string, to ...string) *relay.Message {
	m := &relay.Message{ID: "msg-1", From: "app@example.com", Body: strings.NewReader(body)}
	for _, a := range to {
		m.To = append(m.To, relay.Rcpt{Addr: a})
	}
	return m
}

// one sends m and returns the single reply every recipient got.
func one(t *testing.T, tr *Transport, m *relay.Message) relay.Reply {
	t.Helper()
	res, err := tr.Send(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	if res.Remote != DefaultName || len(res.Rcpts) != len(m.To) {
		t.Fatalf("result %+v", res)
	}
	for i, r := range res.Rcpts {
		if r.Addr != m.To[i].Addr || r.Reply != res.Rcpts[0].Reply {
			t.Fatalf("result %d: %+v, first %+v", i, r, res.Rcpts[0])
		}
	}
	return res.Rcpts[0].Reply
}

const stored = "From: App <app@example.com>\n" +
	"To: A <a@example.org>\n" +
	"Bcc: old@example.org\n" +
	"Cc: b@example.org,\n c@example.org\n" +
	"Subject: hi\n" +
	"\n" +
	"line one\r\nline two\n"

func TestExactRequest(t *testing.T) {
	e := setup(t)
	r := one(t, e.tr, message(stored, "a@example.org", "B@example.org", "c@example.org", "d@example.org"))
	if !r.Accepted() || r.Type != DiagGmail || !strings.HasPrefix(r.Text, "accepted as ") {
		t.Fatalf("reply %+v", r)
	}
	reqs := e.gmail.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	q := reqs[0]
	if q.Method != http.MethodPost || q.Path != "/upload/gmail/v1/users/"+mailbox+"/messages/send" ||
		q.Query.Encode() != "uploadType=media" || q.Header.Get("Content-Type") != "message/rfc822" {
		t.Fatalf("request %s %s?%s (%s)", q.Method, q.Path, q.Query.Encode(), q.Header.Get("Content-Type"))
	}
	tok, _ := strings.CutPrefix(q.Header.Get("Authorization"), "Bearer ")
	if is, ok := e.auth.Lookup(tok); !ok || is.Subject != mailbox || is.Scope != oauthtok.ScopeGmailSend {
		t.Fatalf("token issued for %+v (%v)", is, ok)
	}
	// CRLF throughout, the old Bcc gone, the envelope-only recipient added.
	want := "From: App <app@example.com>\r\n" +
		"To: A <a@example.org>\r\n" +
		"Cc: b@example.org,\r\n c@example.org\r\n" +
		"Subject: hi\r\n" +
		"Bcc: d@example.org\r\n" +
		"\r\n" +
		"line one\r\nline two\r\n"
	if string(q.Body) != want {
		t.Fatalf("body\n%q\nwant\n%q", q.Body, want)
	}
	if s := e.gmail.Sent(); len(s) != 1 || r.Text != "accepted as "+s[0].ID {
		t.Fatalf("sent %+v, reply %q", s, r.Text)
	}
}

func TestUnchangedWhenEnvelopeMatches(t *testing.T) {
	e := setup(t)
	const body = "From: app@example.com\r\nTo: a@example.org\r\nSubject: x\r\n\r\nhello\r\n"
	if r := one(t, e.tr, message(body, "a@example.org")); !r.Accepted() {
		t.Fatalf("reply %+v", r)
	}
	if got := e.gmail.Requests()[0].Body; string(got) != body {
		t.Fatalf("body %q", got)
	}
}

func TestRecipientOutsideEnvelopeRefused(t *testing.T) {
	e := setup(t)
	r := one(t, e.tr, message(stored, "a@example.org", "b@example.org"))
	if r.Status != "5.3.3" || !strings.Contains(r.Text, "1 of them are not recipients") {
		t.Fatalf("reply %+v", r)
	}
	if n := len(e.gmail.Requests()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

func TestRevokedTokenRenewedOnce(t *testing.T) {
	e := setup(t)
	body := "To: a@example.org\r\n\r\nx\r\n"
	if r := one(t, e.tr, message(body, "a@example.org")); !r.Accepted() {
		t.Fatalf("first: %+v", r)
	}
	first, _ := strings.CutPrefix(e.gmail.Requests()[0].Header.Get("Authorization"), "Bearer ")
	e.auth.Revoke(first)
	if r := one(t, e.tr, message(body, "a@example.org")); !r.Accepted() {
		t.Fatalf("after revoke: %+v", r)
	}
	reqs := e.gmail.Requests()
	if len(reqs) != 3 || len(e.auth.Requests()) != 2 {
		t.Fatalf("%d sends, %d token fetches; want 3 and 2", len(reqs), len(e.auth.Requests()))
	}
	if reqs[1].Header.Get("Authorization") != "Bearer "+first || reqs[2].Header.Get("Authorization") == "Bearer "+first {
		t.Fatal("retry did not use a fresh token")
	}
	// Refused twice: temporary, the credentials need a fix.
	e.gmail.FailNext(gmailtest.Unauthenticated(), gmailtest.Unauthenticated())
	r := one(t, e.tr, message(body, "a@example.org"))
	if r.Status != "4.7.0" || !strings.Contains(r.Text, "HTTP 401 UNAUTHENTICATED (authError)") {
		t.Fatalf("twice refused: %+v", r)
	}
	if n := len(e.gmail.Requests()); n != 5 {
		t.Fatalf("%d sends, want 5", n)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scopes []string
		fail   []gmailtest.Failure
		status string
		text   string
		after  time.Duration
	}{
		{"scope without send", []string{"https://www.googleapis.com/auth/gmail.readonly"}, nil,
			"5.7.1", "HTTP 403 PERMISSION_DENIED (insufficientPermissions): Request had insufficient authentication scopes.", 0},
		{"bad request", nil, []gmailtest.Failure{{Status: 400, Reason: "invalidArgument", Message: "Invalid To header"}},
			"5.6.0", "HTTP 400 INVALID_ARGUMENT (invalidArgument): Invalid To header", 0},
		{"throttled", nil, []gmailtest.Failure{gmailtest.Throttled(7 * time.Second)},
			"4.4.5", "HTTP 429 RESOURCE_EXHAUSTED (rateLimitExceeded): Too many concurrent requests for user. (Retry-After 7s)", 7 * time.Second},
		{"daily limit", nil, []gmailtest.Failure{gmailtest.DailyLimit()},
			"4.4.5", "HTTP 403 PERMISSION_DENIED (dailyLimitExceeded): Daily Limit Exceeded", 0},
		{"unavailable", nil, []gmailtest.Failure{{Status: 503, RetryAfter: "30"}},
			"4.3.0", "HTTP 503 (Retry-After 30s)", 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, tc.scopes...)
			e.gmail.FailNext(tc.fail...)
			r := one(t, e.tr, message("To: a@example.org\r\n\r\nx\r\n", "a@example.org"))
			if r.Status != tc.status || r.Text != tc.text || r.Type != DiagGmail {
				t.Fatalf("reply %+v, want %s %q", r, tc.status, tc.text)
			}
			d, ok := RetryAfter(r)
			if ok != (tc.after > 0) || d != tc.after {
				t.Fatalf("RetryAfter %v %v, want %v", d, ok, tc.after)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	// No delegation for the scope: permanent, with Google's words.
	e := setup(t, "https://mail.google.com/")
	r := one(t, e.tr, message("To: a@example.org\r\n\r\nx\r\n", "a@example.org"))
	if r.Status != "5.7.0" || r.Type != relay.DiagLocal || !strings.Contains(r.Text, "unauthorized_client: Client is unauthorized") {
		t.Fatalf("reply %+v", r)
	}
	// The token endpoint throttling: temporary.
	e = setup(t)
	e.auth.FailNext(googletest.Throttled(time.Second))
	if r := one(t, e.tr, message("To: a@example.org\r\n\r\nx\r\n", "a@example.org")); r.Status != "4.7.0" {
		t.Fatalf("reply %+v", r)
	}
	if n := len(e.gmail.Requests()); n != 0 {
		t.Fatalf("%d sends", n)
	}
}

func TestTooLarge(t *testing.T) {
	e := setup(t)
	head := "To: a@example.org\r\n\r\n"
	// Bare LFs grow to CRLF: under the limit as stored, over it as sent.
	body := io.MultiReader(strings.NewReader(head), bytes.NewReader(bytes.Repeat([]byte("\n"), MaxMessageBytes/2+1)))
	m := &relay.Message{ID: "big", To: []relay.Rcpt{{Addr: "a@example.org"}}, Body: body}
	r := one(t, e.tr, m)
	if r.Status != "5.3.4" || !strings.Contains(r.Text, "35 MB") {
		t.Fatalf("reply %+v", r)
	}
	if n := len(e.gmail.Requests()); n != 0 {
		t.Fatalf("%d sends", n)
	}
}

func TestUnreachable(t *testing.T) {
	e := setup(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	e.tr.url = dead.URL + "/upload/gmail/v1/users/me/messages/send?uploadType=media"
	if r := one(t, e.tr, message("To: a@example.org\r\n\r\nx\r\n", "a@example.org")); r.Status != "4.4.1" || r.Type != relay.DiagLocal {
		t.Fatalf("reply %+v", r)
	}
}
