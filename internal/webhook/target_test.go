package webhook

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// texts is a secret store whose values a test changes, as a rotation does.
type texts struct {
	mu    sync.Mutex
	m     map[string]string
	err   error
	calls int
}

func (s *texts) resolve(_ context.Context, ref string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return "", s.err
	}
	return s.m[ref], nil
}

func (s *texts) set(ref, v string) {
	s.mu.Lock()
	s.m[ref] = v
	s.mu.Unlock()
}

func whsec(key []byte) string { return "whsec_" + base64.StdEncoding.EncodeToString(key) }

func TestSecretSourceSignsWithTheCurrentKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	srv := serve(t, rec)
	store := &texts{m: map[string]string{"secretsmanager:app": whsec(testSecret)}}
	src := NewSecretSource("scans", []string{"secretsmanager:app"}, store.resolve)
	h := f.handler(t, Target{URL: srv.URL, SecretSource: src}, &fakeSender{}, testNow)

	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	// Rotated: the next delivery signs with the new key only.
	store.set("secretsmanager:app", whsec(testSecret2))
	if err := h.Handle(t.Context(), f.jobBody(t, 2)); err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for i, key := range [][]byte{testSecret, testSecret2} {
		if err := Verify([][]byte{key}, reqs[i].header, reqs[i].body, time.Minute, testNow); err != nil {
			t.Errorf("request %d not signed with the key current then: %v", i, err)
		}
	}
	if err := Verify([][]byte{testSecret}, reqs[1].header, reqs[1].body, time.Minute, testNow); err == nil {
		t.Error("after the rotation the old key still signs")
	}

	// The source failing is Postern's trouble: the job is retried and
	// nothing goes out unsigned.
	store.mu.Lock()
	store.err = errors.New("secret app: access denied")
	store.mu.Unlock()
	err := h.Handle(t.Context(), f.jobBody(t, 3))
	mustTemporary(t, err)
	if !strings.Contains(err.Error(), "routes scans webhook.secrets[0]: secret app: access denied") {
		t.Errorf("error does not name the route and secret: %v", err)
	}
	if n := len(rec.requests()); n != 2 {
		t.Errorf("%d requests after the source failed, want still 2", n)
	}
}

func TestNewSecretSourceParsesOnChange(t *testing.T) {
	t.Parallel()
	store := &texts{m: map[string]string{"a": whsec(testSecret), "b": "plain-text-key"}}
	src := NewSecretSource("r1", []string{"a", "b"}, store.resolve)
	k1, err := src(t.Context())
	if err != nil || len(k1) != 2 || string(k1[0]) != string(testSecret) || string(k1[1]) != "plain-text-key" {
		t.Fatalf("keys %q, %v", k1, err)
	}
	k2, _ := src(t.Context())
	if &k1[0][0] != &k2[0][0] {
		t.Error("an unchanged text was parsed again")
	}
	store.set("b", "whsec_not*base64")
	_, err = src(t.Context())
	if err == nil || !strings.Contains(err.Error(), "routes r1 webhook.secrets[1]: webhook secret starts with whsec_") || strings.Contains(err.Error(), "not*base64") {
		t.Errorf("a bad rotated secret: %v; want the route, index and form, not the value", err)
	}
	store.set("b", whsec(testSecret2))
	if k, err := src(t.Context()); err != nil || string(k[1]) != string(testSecret2) {
		t.Errorf("after a fix: %q, %v", k, err)
	}
}
