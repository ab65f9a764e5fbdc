package parsefn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/postern/postern/internal/blob/memblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dnstest"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/parsefn"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue"
	"github.com/postern/postern/internal/queue/fsqueue"
)

// queues are the stages' queues in one on-disk queue file.
func queues(t *testing.T) map[string]queue.Queue {
	t.Helper()
	db, err := fsqueue.Open(filepath.Join(t.TempDir(), "queue.db"), fsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	qs := map[string]queue.Queue{}
	for _, name := range []string{lambdafn.QueueInbound, lambdafn.QueueWebhook, lambdafn.QueueRelay, lambdafn.QueueDSN} {
		q, err := db.Queue(name, fsqueue.Config{})
		if err != nil {
			t.Fatal(err)
		}
		qs[name] = q
	}
	return qs
}

// routes returns the job bodies waiting in q, by route.
func routes(t *testing.T, q queue.Queue) []string {
	t.Helper()
	msgs, err := q.Receive(context.Background(), 10, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range msgs {
		var job struct {
			Route string `json:"route"`
		}
		if err := json.Unmarshal(m.Body, &job); err != nil {
			t.Fatalf("job %s: %v", m.Body, err)
		}
		names = append(names, job.Route)
	}
	return names
}

// The built stage parses a stored message and hands each route's job to
// that route's kind of queue: webhook jobs to the webhook queue, relay
// jobs to the relay queue, and nothing to the dsn queue when every
// recipient was routed. Its budget is Budget whatever the job, and it
// leaves the record concurrency to lambdafn (the stage's default or
// POSTERN_RECORD_CONCURRENCY).
func TestBuildRoutesToQueues(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Routes = []config.Route{
		{Name: "app", Match: config.Match{Recipients: []string{"ops@example.com"}}, Webhook: &config.Webhook{URL: "https://app.example.com/in"}},
		{Name: "out", Match: config.Match{Recipients: []string{"*@example.org"}}, Relay: &config.Relay{Type: "file", Path: "out"}},
	}
	store := memblob.New()
	qs := queues(t)
	st, err := parsefn.Build(context.Background(), &lambdafn.Deps{Config: cfg, Store: store, Queues: qs, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if st.Handler == nil || st.Budget == nil {
		t.Fatalf("stage = %+v, want a handler and a budget", st)
	}
	for _, body := range []string{`{"route":"app"}`, `not json`, ``} {
		if got := st.Budget([]byte(body)); got != parsefn.Budget {
			t.Errorf("budget of %q = %s, want %s", body, got, parsefn.Budget)
		}
	}
	if st.Concurrency != 0 {
		t.Errorf("concurrency %d, want 0 so that lambdafn.DefaultConcurrency or %s applies", st.Concurrency, lambdafn.ConcurrencyEnv)
	}

	ctx := context.Background()
	id := postern.NewMsgID()
	raw := "From: scan@example.com\r\nTo: ops@example.com\r\nSubject: scan\r\n\r\nhello\r\n"
	if err := store.Put(ctx, id.RawKey(), strings.NewReader(raw), nil); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: id, Envelope: postern.Envelope{
		V: postern.EnvelopeVersion, ID: id, Sender: "scan@example.com", Size: int64(len(raw)),
		Recipients: []postern.Recipient{{Addr: "ops@example.com"}, {Addr: "someone@example.org"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Handler.Handle(ctx, postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if got := routes(t, qs[lambdafn.QueueWebhook]); len(got) != 1 || got[0] != "app" {
		t.Errorf("webhook queue holds jobs for %q, want one for app", got)
	}
	if got := routes(t, qs[lambdafn.QueueRelay]); len(got) != 1 || got[0] != "out" {
		t.Errorf("relay queue holds jobs for %q, want one for out", got)
	}
	if got := routes(t, qs[lambdafn.QueueDSN]); len(got) != 0 {
		t.Errorf("dsn queue holds %d jobs, want none (every recipient was routed)", len(got))
	}
	var parsed bytes.Buffer
	if rc, err := store.Get(ctx, id.ParsedKey()); err != nil {
		t.Errorf("parsed.json: %v", err)
	} else {
		parsed.ReadFrom(rc)
		rc.Close()
		if !strings.Contains(parsed.String(), "scan") {
			t.Errorf("parsed.json %s lacks the subject", parsed.String())
		}
	}
}

// A route table the configuration cannot make stops the build, naming
// the routes key.
func TestBuildBadRoutes(t *testing.T) {
	cfg := config.Default()
	cfg.Routes = []config.Route{
		{Name: "app", Match: config.Match{Recipients: []string{"*"}}, Webhook: &config.Webhook{URL: "https://app.example.com/in"}},
		{Name: "app", Match: config.Match{Recipients: []string{"*"}}, Webhook: &config.Webhook{URL: "https://app.example.com/in"}},
	}
	_, err := parsefn.Build(context.Background(), &lambdafn.Deps{Config: cfg, Store: memblob.New(), Log: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.HasPrefix(err.Error(), "config: routes") || !strings.Contains(err.Error(), "name already used") {
		t.Errorf("duplicate route names: %v, want an error starting \"config: routes\" saying the name is used", err)
	}
}

// With an internet identity the built stage asks dns.servers for the
// sender checks of that identity's mail, and the verdicts reach
// parsed.json; another identity's mail asks nothing.
func TestBuildChecksInternetMail(t *testing.T) {
	srv := dnstest.New(t)
	srv.AddTXT("good.example", "v=spf1 ip4:192.0.2.10 -all")
	cfg := config.Default()
	cfg.Hostname = "mx.corp.example"
	cfg.DNS.Servers = []string{srv.Addr()}
	cfg.Identities = []config.Identity{{Name: "mx", Internet: true, Networks: []string{"0.0.0.0/0"}}, {Name: "printer", Networks: []string{"10.0.0.0/8"}}}
	cfg.Routes = []config.Route{
		{Name: "app", Match: config.Match{Recipients: []string{"*"}}, Webhook: &config.Webhook{URL: "https://app.example.com/in"}},
	}
	store := memblob.New()
	st, err := parsefn.Build(context.Background(), &lambdafn.Deps{Config: cfg, Store: store, Queues: queues(t), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	handle := func(identity string) postern.Parsed {
		ctx := context.Background()
		id := postern.NewMsgID()
		raw := "From: a@good.example\r\nTo: ops@corp.example\r\nSubject: hi\r\n\r\nhello\r\n"
		if err := store.Put(ctx, id.RawKey(), strings.NewReader(raw), nil); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: id, Envelope: postern.Envelope{
			V: postern.EnvelopeVersion, ID: id, Sender: "a@good.example", Identity: identity, ClientIP: "192.0.2.10",
			HELO: "mx.good.example", Size: int64(len(raw)), Recipients: []postern.Recipient{{Addr: "ops@corp.example"}},
		}})
		if err := st.Handler.Handle(ctx, postern.Job{Body: body, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		rc, err := store.Get(ctx, id.ParsedKey())
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var p postern.Parsed
		if err := json.NewDecoder(rc).Decode(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := handle("printer"); p.Auth == nil || p.Auth.SPF.Result != "none" || p.Auth.SPF.Reason != "trusted" || srv.Count() != 0 {
		t.Errorf("trusted mail: auth %+v after %d DNS queries, want none (trusted) and none asked", p.Auth, srv.Count())
	}
	if p := handle("mx"); p.Auth == nil || p.Auth.SPF.Result != "pass" || srv.CountFor("good.example", dns.TypeTXT) == 0 {
		t.Errorf("internet mail: auth %+v, want spf pass from the configured server", p.Auth)
	}
}
