package apirelay

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
)

func rcpts(addrs ...string) []relay.Rcpt {
	var rs []relay.Rcpt
	for _, a := range addrs {
		rs = append(rs, relay.Rcpt{Addr: a})
	}
	return rs
}

func TestWithEnvelopeFoldedCc(t *testing.T) {
	// A folded Cc is one field; unfolded before parsing it names both.
	raw := "From: s@x\r\nTo: a@x\r\nCc: b@x,\r\n c@x\r\nSubject: s\r\n\r\nhi\r\n"
	got, r, ok := WithEnvelope([]byte(raw), rcpts("a@x", "b@x", "c@x"), "API")
	if !ok || string(got) != raw {
		t.Fatalf("got %q, %v, %v; want the message unchanged", got, r, ok)
	}
	_, r, ok = WithEnvelope([]byte(raw), rcpts("a@x", "b@x"), "API")
	if ok || r.Status != "5.3.3" || !strings.Contains(r.Text, "1 of them") {
		t.Fatalf("c@x outside the envelope: %v %v", r, ok)
	}
}

func TestWithEnvelopeBcc(t *testing.T) {
	raw := "From: s@x\r\nTo: a@x\r\nBcc: old@y,\r\n other@y\r\nSubject: x\r\n\r\nhi\r\n"
	got, _, ok := WithEnvelope([]byte(raw), rcpts("a@x", "h1@y", "H1@y", "h2@y"), "API")
	want := "From: s@x\r\nTo: a@x\r\nSubject: x\r\nBcc: h1@y,\r\n h2@y\r\n\r\nhi\r\n"
	if !ok || string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestWithEnvelopeRefusals(t *testing.T) {
	for _, tc := range []struct{ name, raw, status, text string }{
		{"no separation", "To: a@x\r\n", "5.6.0", "no header and body"},
		{"unparsable", "To: a@x\r\nCc: <<<\r\n\r\nhi\r\n", "5.6.0", "the Cc field cannot be parsed; API takes"},
		{"outside", "To: a@x, z@x\r\n\r\nhi\r\n", "5.3.3", "API sends to every To and Cc address; 1 of them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r, ok := WithEnvelope([]byte(tc.raw), rcpts("a@x"), "API")
			if ok || r.Status != tc.status || !strings.Contains(r.Text, tc.text) || r.Type != relay.DiagLocal {
				t.Fatalf("%v %v", r, ok)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		status string
		want   time.Duration
		ok     bool
	}{
		{"30", "4.4.5", 30 * time.Second, true},
		{"99999", "4.4.5", time.Hour, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), "4.3.0", 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), "4.3.0", 0, true},
		{"soon", "4.4.5", 0, false},
		{"", "4.4.5", 0, false},
		{"30", "5.6.0", 0, false},
	} {
		h := http.Header{"Retry-After": {tc.header}}
		r := WithRetryAfter(relay.Reply{Status: tc.status, Text: "HTTP 429 (reason) (Retry-After x): y", Type: "X-API"}, h, now)
		d, ok := RetryAfter(r, "X-API")
		if d != tc.want || ok != tc.ok {
			t.Errorf("Retry-After %q: %v %v, want %v %v (text %q)", tc.header, d, ok, tc.want, tc.ok, r.Text)
		}
		if _, ok := RetryAfter(r, "X-Other"); ok {
			t.Errorf("Retry-After %q read back from another API's reply", tc.header)
		}
	}
}

func TestSenderRenewsOnce(t *testing.T) {
	var tokens, invalidated []string
	n := 0
	s := &Sender{Config: Config{Mailbox: "m@x",
		TokenSource: func(context.Context) (string, error) {
			n++
			return "tok" + string(rune('0'+n)), nil
		},
		InvalidateToken: func(tok string) { invalidated = append(invalidated, tok) },
	}, API: "API", MaxMessageBytes: 1 << 10, TooLarge: relay.LocalReply("5.3.4", "too large"),
		Post: func(_ context.Context, tok string, msg []byte) (relay.Reply, bool) {
			tokens = append(tokens, tok)
			return relay.Reply{Status: "4.7.0", Text: "HTTP 401", Type: "X-API"}, true
		},
	}
	if err := s.Init("apitest", "http://api.invalid", "api.example"); err != nil {
		t.Fatal(err)
	}
	m := &relay.Message{ID: "m1", To: rcpts("a@x"), Body: strings.NewReader("To: a@x\n\nhi\n")}
	res, err := s.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tokens, ",") != "tok1,tok2" || strings.Join(invalidated, ",") != "tok1" {
		t.Fatalf("posted with %v, invalidated %v", tokens, invalidated)
	}
	if r := res.Rcpts[0].Reply; r.Status != "4.7.0" || res.Rcpts[0].Addr != "a@x" || res.Remote != "api.example" {
		t.Fatalf("result %+v", res)
	}
}

func TestSenderTokenAndSize(t *testing.T) {
	posted := false
	s := &Sender{Config: Config{Name: "api.example", Log: discard()}, API: "API", MaxMessageBytes: 16,
		TooLarge: relay.LocalReply("5.3.4", "too large"),
		Post: func(context.Context, string, []byte) (relay.Reply, bool) {
			posted = true
			return relay.Reply{Status: "2.0.0"}, false
		},
	}
	for _, tc := range []struct {
		name, body, status, text string
		tok                      func(context.Context) (string, error)
		after                    time.Duration
	}{
		{"permanent", "To: a@x\n\nhi\n", "5.7.0", "no API token: consent",
			func(context.Context) (string, error) { return "", postern.Permanent(errors.New("consent")) }, 0},
		{"throttled", "To: a@x\n\nhi\n", "4.7.0", "no API token: slow down",
			func(context.Context) (string, error) {
				return "", postern.RetryAfter(errors.New("slow down"), 42*time.Second)
			}, 42 * time.Second},
		{"temporary", "To: a@x\n\nhi\n", "4.7.0", "no API token: down",
			func(context.Context) (string, error) { return "", errors.New("down") }, 0},
		{"malformed", "To: a@x\n\nhi\n", "4.7.0", "malformed",
			func(context.Context) (string, error) { return "a b", nil }, 0},
		// 15 bytes with LF, 18 with CRLF: the limit counts CRLF.
		{"crlf size", "To: a@x\n\nhello\n", "5.3.4", "too large",
			func(context.Context) (string, error) { return "t", nil }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.TokenSource = tc.tok
			res, err := s.Send(context.Background(), &relay.Message{ID: "m1", To: rcpts("a@x"), Body: strings.NewReader(tc.body)})
			if err != nil {
				t.Fatal(err)
			}
			if r := res.Rcpts[0].Reply; r.Status != tc.status || !strings.Contains(r.Text, tc.text) || r.RetryAfter != tc.after {
				t.Fatalf("reply %v (retry after %s)", r, r.RetryAfter)
			}
			if posted {
				t.Fatal("posted")
			}
		})
	}
}

func TestCallError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want string
	}{
		{context.Background(), context.DeadlineExceeded, "timeout talking to the API"},
		{ctx, context.Canceled, "interrupted"},
		{context.Background(), errors.New("connection refused"), "could not reach the API"},
	} {
		if r := CallError(tc.ctx, tc.err, "the API"); r.Text != tc.want || r.Permanent() {
			t.Errorf("%v: %v", tc.err, r)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestInit(t *testing.T) {
	tok := func(context.Context) (string, error) { return "t", nil }
	for _, c := range []Config{{TokenSource: tok}, {Mailbox: "m@x"}} {
		s := &Sender{Config: c}
		if err := s.Init("apitest", "http://api.invalid", "api.example"); err == nil || !strings.HasPrefix(err.Error(), "apitest: ") {
			t.Errorf("%+v: %v", c, err)
		}
	}
	s := &Sender{Config: Config{Mailbox: "m@x", TokenSource: tok}}
	if err := s.Init("apitest", "http://api.invalid", "api.example"); err != nil {
		t.Fatal(err)
	}
	if s.BaseURL != "http://api.invalid" || s.Name != "api.example" || s.HTTPClient != http.DefaultClient || s.Log == nil {
		t.Fatalf("defaults %+v", s.Config)
	}
}

func TestStatus(t *testing.T) {
	for code, want := range map[int]string{400: "5.6.0", 401: "4.7.0", 403: "5.7.1", 404: "5.7.0",
		413: "5.3.4", 429: "4.4.5", 500: "4.3.0", 503: "4.3.0", 409: "4.3.0"} {
		if got := Status(code); got != want {
			t.Errorf("HTTP %d: %s, want %s", code, got, want)
		}
	}
}
