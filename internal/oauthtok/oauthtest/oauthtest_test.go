package oauthtest

import (
	"strings"
	"testing"
	"time"
)

func TestScript(t *testing.T) {
	var s Script[string, int]
	if _, ok := s.Record("a"); ok {
		t.Fatal("failure with none queued")
	}
	s.FailNext(1, 2)
	for _, want := range []int{1, 2} {
		if f, ok := s.Record("b"); !ok || f != want {
			t.Fatalf("got %v %v, want %d", f, ok, want)
		}
	}
	if _, ok := s.Record("c"); ok {
		t.Fatal("queue not emptied")
	}
	got := s.Requests()
	if strings.Join(got, "") != "abbc" {
		t.Fatalf("requests %v", got)
	}
	got[0] = "x"
	if s.Requests()[0] != "a" {
		t.Fatal("Requests is not a copy")
	}
}

func TestTokens(t *testing.T) {
	now := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	var ts Tokens[string]
	ts.SetClock(func() time.Time { return now })
	ts.SetLifetime(time.Minute)
	a, life := ts.Issue("ya29.", 8, func(exp time.Time) string { return exp.Format(time.Kitchen) })
	b, _ := ts.Issue("", 8, func(time.Time) string { return "b" })
	if !strings.HasPrefix(a, "ya29.") || len(a) != len("ya29.")+11 || a == b || life != time.Minute {
		t.Fatalf("tokens %q %q, lifetime %v", a, b, life)
	}
	if info, ok := ts.Lookup(a); !ok || info != "4:01AM" {
		t.Fatalf("lookup %q %v", info, ok)
	}
	ts.Revoke(b)
	if ts.Valid(b) || ts.Valid("unknown") {
		t.Fatal("revoked or unknown token valid")
	}
	now = now.Add(59 * time.Second)
	if !ts.Valid(a) {
		t.Fatal("expired early")
	}
	now = now.Add(time.Second)
	if ts.Valid(a) || !ts.Now().Equal(now) {
		t.Fatal("valid at expiry")
	}
}
