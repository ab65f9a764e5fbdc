package smtprelay

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/internal/relay/relaytest"
)

// A password read at run time applies at the next send, without a new
// Transport; a source that fails is this side's fault and nothing is sent.
func TestPasswordSourceRotation(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := relaytest.TLSConfigs(t)
	srv := relaytest.NewServer(t, relaytest.Options{TLS: serverTLS,
		Script: relaytest.Script{Users: map[string]string{"gw": "rotated"}, RequireAuth: true}})
	var mu sync.Mutex
	current, fail := "before-rotation", error(nil)
	source := func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		return current, fail
	}
	tr := newTransport(t, Config{Addr: srv.Addr, TLSConfig: clientTLS, Username: "gw", PasswordSource: source})

	res := send(t, tr, message("scanner@lan.example", "a@example.com"))
	check(t, res, map[string]want{"a@example.com": {535, "4.7.8", "Authentication failed", ""}})

	mu.Lock()
	current = "rotated"
	mu.Unlock()
	res = send(t, tr, message("scanner@lan.example", "a@example.com"))
	check(t, res, map[string]want{"a@example.com": {250, "2.0.0", "", ""}})
	if txs := srv.Txs(); len(txs) != 1 || txs[0].AuthUser != "gw" {
		t.Fatalf("transactions %+v, want one by gw", txs)
	}

	mu.Lock()
	fail = errors.New("secret postern/relay: access denied")
	mu.Unlock()
	_, err := tr.Send(t.Context(), message("scanner@lan.example", "a@example.com"))
	if err == nil || !strings.Contains(err.Error(), "password for gw: secret postern/relay: access denied") {
		t.Fatalf("Send with a failing source: %v; want an error naming the user and the secret", err)
	}
	if n := len(srv.Txs()); n != 1 {
		t.Errorf("%d transactions after the source failed, want still 1", n)
	}

	if _, err := New(Config{Addr: srv.Addr, Username: "gw"}); err == nil {
		t.Error("a username with neither password nor source was accepted")
	}
}
