package dsnfn_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob/memblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/dsnfn"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/postern"
)

// cfgDSN is the default configuration with one identity, dev, whose
// owner is boss@example.com and whose allowed sender is scan@example.com,
// and notices written as files under data_dir/notices.
func cfgDSN(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Hostname = "mx.example.com"
	cfg.DataDir = t.TempDir()
	cfg.Identities = []config.Identity{{Name: "dev", Owner: "boss@example.com", AllowedSenders: []string{"scan@example.com"}}}
	cfg.DSN.Relay = config.Relay{Type: "file", Path: "notices"}
	return cfg
}

// envelopeTo returns the envelope recipients of the notices written
// under dir.
func envelopeTo(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	var to []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\r\n") {
			if a, ok := strings.CutPrefix(line, "X-Postern-Envelope-To: "); ok {
				to = append(to, strings.Trim(a, "<>"))
			}
		}
	}
	slices.Sort(to)
	return to
}

// The built stage sends a failure's notices through dsn.relay (here
// files under data_dir), to the sender the identity allows and to the
// identity's owner: the policy is wired from the identities. Its budget
// is dsn.relay's transport's.
func TestBuildSendsThroughDSNRelay(t *testing.T) {
	cfg := cfgDSN(t)
	store := memblob.New()
	st, err := dsnfn.Build(context.Background(), &lambdafn.Deps{Config: cfg, Store: store, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if st.Handler == nil || st.Budget == nil {
		t.Fatalf("stage = %+v, want a handler and a budget", st)
	}
	if got, want := st.Budget([]byte(`{"v":1}`)), relayfn.TransportBudget("file"); got != want {
		t.Errorf("budget = %s, want dsn.relay's (file) %s", got, want)
	}

	ctx := context.Background()
	send := func(sender string) {
		t.Helper()
		id := postern.NewMsgID()
		raw := "From: " + sender + "\r\nTo: gone@example.org\r\nSubject: scan\r\n\r\nhello\r\n"
		if err := store.Put(ctx, id.RawKey(), strings.NewReader(raw), nil); err != nil {
			t.Fatal(err)
		}
		body, err := json.Marshal(postern.DSNJob{V: postern.JobVersion, ID: id, Created: time.Now(),
			Envelope: postern.Envelope{V: postern.EnvelopeVersion, ID: id, Sender: sender, Identity: "dev",
				Recipients: []postern.Recipient{{Addr: "gone@example.org"}}, Size: int64(len(raw))},
			Failed: []postern.Failure{{Recipient: "gone@example.org", Route: "out", Status: "5.1.1",
				Diagnostic: "smtp; 550 5.1.1 no such user", LastAt: time.Now()}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Handler.Handle(ctx, postern.Job{Body: body, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}

	dir := filepath.Join(cfg.DataDir, "notices")
	send("scan@example.com")
	if got, want := envelopeTo(t, dir), []string{"boss@example.com", "scan@example.com"}; !slices.Equal(got, want) {
		t.Errorf("allowed sender: notices to %q, want %q (the sender and the owner)", got, want)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	send("intruder@example.com")
	if got, want := envelopeTo(t, dir), []string{"boss@example.com"}; !slices.Equal(got, want) {
		t.Errorf("sender not in allowed_senders: notices to %q, want %q (the owner only)", got, want)
	}
}

// A dsn configuration the stage cannot build stops it with an error
// naming the key to fix.
func TestNewErrorsNameKey(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*config.Config)
		want string
	}{
		{"unknown relay type", func(c *config.Config) { c.DSN.Relay = config.Relay{Type: "fax"} }, "config: dsn.relay.type"},
		{"smtp relay without addr", func(c *config.Config) { c.DSN.Relay = config.Relay{Type: "smtp"} }, "config: dsn.relay: "},
		{"secretsmanager password outside AWS", func(c *config.Config) {
			c.DSN.Relay = config.Relay{Type: "smtp", Addr: "127.0.0.1:2587", Username: "u", Password: "secretsmanager:postern/smtp"}
		}, "config: dsn.relay.password"},
		{"bad allowed_senders", func(c *config.Config) { c.Identities[0].AllowedSenders = []string{""} }, "config: identities dev allowed_senders"},
		{"bad domain", func(c *config.Config) { c.DSN.Domain = "not a host" }, "config: dsn: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := cfgDSN(t)
			c.edit(cfg)
			h, err := dsnfn.New(context.Background(), &lambdafn.Deps{Config: cfg, Store: memblob.New(), Log: slog.New(slog.DiscardHandler)}, nil)
			if err == nil {
				t.Fatalf("built %v, want an error", h)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %q, want it to start %q", err, c.want)
			}
		})
	}
}
