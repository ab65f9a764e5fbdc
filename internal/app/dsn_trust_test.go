package app_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/logbuf"
)

// A device admitted by its network alone, with no allowed_senders, may have
// given any envelope sender: the notice about its failed mail goes to the
// identity's owner only, and with no owner to nobody, with an email.failed
// event in the log instead.
func TestDSNForUntrustedSenderGoesToOwnerOnly(t *testing.T) {
	t.Parallel()
	for name, owner := range map[string]string{"owner": "ops@lan.example", "no owner": ""} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h, hs := newHook(t)
			h.status = 410
			cfg := testConfig(t, hs.URL)
			if len(cfg.Identities[0].AllowedSenders) != 0 || cfg.Identities[0].PasswordHash != "" {
				t.Fatalf("identity %+v is not a network identity without allowed_senders", cfg.Identities[0])
			}
			cfg.Identities[0].Owner = owner
			var logs logbuf.Buffer
			a := bootLogged(t, cfg, &logs)
			if _, err := send(t, a.SMTPAddrs()[0].String(), "forged@bank.example", []string{"gone@app.test"},
				[]byte("From: forged@bank.example\r\nSubject: invoice\r\n\r\nbody\r\n")); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(cfg.DataDir, cfg.DSN.Relay.Path)
			if owner != "" {
				notices := waitFor(t, func() []string { return dsnFiles(dir) })
				raw, err := os.ReadFile(filepath.Join(dir, notices[0]))
				if err != nil {
					t.Fatal(err)
				}
				// Both notices of a job are written in turn, the sender's
				// first: by the owner's, a sender's would be there too.
				if !strings.Contains(string(raw), "X-Postern-Envelope-To: <ops@lan.example>\r\n") || len(dsnFiles(dir)) != 1 {
					t.Fatalf("notices %v; first:\n%s", dsnFiles(dir), raw[:min(len(raw), 300)])
				}
				if !strings.Contains(logs.String(), "sender not trusted") {
					t.Error("log does not say why the sender was not told")
				}
				return
			}
			waitFor(t, func() []string {
				if strings.Contains(logs.String(), `"event":"email.failed"`) {
					return []string{"logged"}
				}
				return nil
			})
			// The event is logged before any notice would be sent.
			if n := dsnFiles(dir); len(n) != 0 {
				t.Errorf("notices sent: %v", n)
			}
			for _, want := range []string{`"rcpt":"gone@app.test"`, `"sender":"forged@bank.example"`, `"identity":"local"`, `"level":"WARN"`} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %s", want)
				}
			}
		})
	}
}

// bootLogged is boot with the log kept in logs as well.
func bootLogged(t *testing.T, cfg *config.Config, logs io.Writer) *app.App {
	t.Helper()
	a, err := app.New(cfg, slog.New(slog.NewJSONHandler(io.MultiWriter(logWriter{t}, logs), nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a
}

// dsnFiles lists the finished notices in dir.
func dsnFiles(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".eml") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// waitFor polls f until it returns something, for at most 30 seconds.
func waitFor(t *testing.T, f func() []string) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got := f(); len(got) > 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatal("gave up waiting after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
