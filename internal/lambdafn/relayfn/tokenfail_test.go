package relayfn

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dsn"
	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/oauthtok/googletest"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/relaytest"
)

// tokenFail is the relay stage as configured for XOAUTH2 into the m365
// smarthost stand-in, with a clock the test moves.
type tokenFail struct {
	m    *m365
	h    *relay.Handler
	dsnq *relaytest.Queue
	now  time.Time
	job  []byte
	logs *bytes.Buffer
}

const tokenFailID postern.MsgID = "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q"

var tokenFailCreated = time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)

// tokenFailMaxAge is the route's max_age in these tests.
const tokenFailMaxAge = 2 * time.Hour

func newTokenFail(t *testing.T, ent *entratest.Server, clientID, secret string) *tokenFail {
	t.Helper()
	m := newM365(t, ent, "scanner@example.com")
	return newTokenFailWith(t, m, xoauthConfig(t, ent, m, "contoso.example", clientID, secret))
}

// newTokenFailWith is the relay stage for cfg's first route, named m365,
// relaying to m.
func newTokenFailWith(t *testing.T, m *m365, cfg *config.Config) *tokenFail {
	t.Helper()
	cfg.Routes[0].Relay.MaxAge = config.Duration(tokenFailMaxAge)
	routes, err := Routes(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &tokenFail{m: m, dsnq: &relaytest.Queue{}, now: tokenFailCreated.Add(time.Minute), logs: &bytes.Buffer{}}
	const raw = "From: scanner@printer.local\r\nTo: accounts@example.com\r\nSubject: scan\r\n\r\nbody\r\n"
	store := relaytest.NewStore()
	if err := store.Put(t.Context(), tokenFailID.RawKey(), strings.NewReader(raw), nil); err != nil {
		t.Fatal(err)
	}
	f.h = relay.New(store, func(name string) (relay.Route, bool) { r, ok := routes[name]; return r, ok },
		f.dsnq, slog.New(slog.NewJSONHandler(f.logs, nil)), relay.WithClock(func() time.Time { return f.now }))
	f.job, err = json.Marshal(postern.RelayJob{
		V: postern.JobVersion, ID: tokenFailID, Route: "m365", Created: tokenFailCreated,
		Recipients: []string{"accounts@example.com"},
		Envelope: postern.Envelope{V: postern.EnvelopeVersion, ID: tokenFailID, Sender: "scanner@printer.local",
			Identity: "scanner", Recipients: []postern.Recipient{{Addr: "accounts@example.com"}}, Size: int64(len(raw))},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *tokenFail) handle(t *testing.T, attempt int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	return f.h.Handle(ctx, postern.Job{Body: f.job, Attempt: attempt})
}

// failure is the one failure of the one DSN job queued.
func (f *tokenFail) failure(t *testing.T) (dsn.Job, postern.Failure) {
	t.Helper()
	bodies := f.dsnq.Bodies()
	if len(bodies) != 1 {
		t.Fatalf("%d dsn jobs, want 1", len(bodies))
	}
	var j dsn.Job
	if err := json.Unmarshal(bodies[0], &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Failed) != 1 {
		t.Fatalf("dsn job fails %d recipients, want 1: %+v", len(j.Failed), j.Failed)
	}
	return j, j.Failed[0]
}

// The token endpoint refuses for good: the message is not retried but
// reported at once, and the DSN job (the dsn stage sends it to the
// identity's owner) carries Entra's code and words, never the secret.
func TestXOAUTH2TokenRefusalIsDSN(t *testing.T) {
	for name, c := range map[string]struct {
		secret  string
		fail    func(clientID string) []entratest.Failure
		code    string
		message string
	}{
		"no consent": {secret: "right-secret", code: "AADSTS65001",
			fail:    func(id string) []entratest.Failure { return []entratest.Failure{entratest.NoConsent(id)} },
			message: "The user or administrator has not consented to use the application with ID 'app-tokenfail-no-consent'"},
		"wrong secret": {secret: "the-secret-id-not-its-value", code: "AADSTS7000215",
			fail:    func(string) []entratest.Failure { return nil }, // the stand-in checks the secret itself
			message: "Invalid client secret provided"},
	} {
		t.Run(name, func(t *testing.T) {
			clientID := "app-tokenfail-" + strings.ReplaceAll(name, " ", "-")
			ent := entratest.New(t)
			ent.AddApp("contoso.example", clientID, "right-secret")
			ent.FailNext(c.fail(clientID)...)
			f := newTokenFail(t, ent, clientID, c.secret)

			if err := f.handle(t, 1); err != nil {
				t.Fatalf("Handle = %v, want nil: the recipient is settled by a DSN", err)
			}
			j, fl := f.failure(t)
			if j.Action != "" || j.ID != tokenFailID || j.Envelope.Identity != "scanner" {
				t.Errorf("dsn job action %q id %s identity %q", j.Action, j.ID, j.Envelope.Identity)
			}
			if fl.Recipient != "accounts@example.com" || fl.Route != "m365" || fl.Status != "5.7.0" || fl.RemoteMTA != "" ||
				!strings.HasPrefix(fl.Diagnostic, "X-Postern; no XOAUTH2 token: ") ||
				!strings.Contains(fl.Diagnostic, c.code+": "+c.message) {
				t.Errorf("failure %+v; want 5.7.0 with %s: %s", fl, c.code, c.message)
			}
			for what, s := range map[string]string{"dsn job": string(f.dsnq.Bodies()[0]), "log": f.logs.String()} {
				if strings.Contains(s, c.secret) {
					t.Errorf("%s holds the client secret", what)
				}
			}
			if presented, txs := f.m.snapshot(); len(presented) != 0 || len(txs) != 0 {
				t.Errorf("smarthost saw %d AUTH and %d messages; want none", len(presented), len(txs))
			}
			if n := len(ent.Requests()); n != 1 {
				t.Errorf("token requests = %d, want 1", n)
			}
		})
	}
}

// The token endpoint is down: the message waits (no DSN), retried with
// the backoff, until the route's max age; then the DSN says why.
func TestXOAUTH2TokenEndpointDownExpires(t *testing.T) {
	ent := entratest.New(t)
	ent.AddApp("contoso.example", "app-tokenfail-503", "s")
	f := newTokenFail(t, ent, "app-tokenfail-503", "s")

	ent.FailNext(entratest.Unavailable())
	err := f.handle(t, 1)
	if d, ok := postern.RetryDelay(err); err == nil || postern.IsPermanent(err) || !ok ||
		d < relay.DefaultBackoffBase/2 || d > relay.DefaultBackoffBase {
		t.Fatalf("Handle = %v (delay %v), want a retry after the first backoff", err, d)
	}
	if n := len(f.dsnq.Bodies()); n != 0 {
		t.Fatalf("%d dsn jobs while retrying, want 0", n)
	}

	// Just before max_age the retry is cut to the time left, so the last
	// try happens then.
	f.now = tokenFailCreated.Add(tokenFailMaxAge - 20*time.Second)
	ent.FailNext(entratest.Unavailable())
	if d, ok := postern.RetryDelay(f.handle(t, 8)); !ok || d != 20*time.Second {
		t.Fatalf("retry delay near max_age = %v (%v), want the 20s left", d, ok)
	}
	if n := len(f.dsnq.Bodies()); n != 0 {
		t.Fatalf("%d dsn jobs before max_age, want 0", n)
	}

	// At max_age the same answer is the last.
	f.now = tokenFailCreated.Add(tokenFailMaxAge)
	ent.FailNext(entratest.Unavailable())
	if err := f.handle(t, 9); err != nil {
		t.Fatalf("Handle after max age = %v, want nil", err)
	}
	_, fl := f.failure(t)
	if fl.Status != "4.7.0" || !strings.Contains(fl.Diagnostic, "no XOAUTH2 token: oauthtok: entra token endpoint: HTTP 503") {
		t.Errorf("failure %+v; want 4.7.0 naming the endpoint's 503", fl)
	}
	if presented, _ := f.m.snapshot(); len(presented) != 0 {
		t.Errorf("smarthost saw %d AUTH, want none", len(presented))
	}
}

// A throttled token endpoint's Retry-After is the least the relay waits,
// above what the backoff would give.
func TestXOAUTH2TokenEndpointThrottled(t *testing.T) {
	ent := entratest.New(t)
	ent.AddApp("contoso.example", "app-tokenfail-429", "s")
	f := newTokenFail(t, ent, "app-tokenfail-429", "s")
	ent.FailNext(entratest.Throttled(7 * time.Minute))
	err := f.handle(t, 1)
	if d, ok := postern.RetryDelay(err); !ok || d != 7*time.Minute {
		t.Fatalf("Handle = %v (delay %v), want a retry after the endpoint's 7m", err, d)
	}
	if n := len(f.dsnq.Bodies()); n != 0 {
		t.Errorf("%d dsn jobs, want 0", n)
	}
	// Once the endpoint answers, the message goes out.
	f.now = f.now.Add(7 * time.Minute)
	if err := f.handle(t, 2); err != nil {
		t.Fatalf("Handle after the wait = %v", err)
	}
	if _, txs := f.m.snapshot(); len(txs) != 1 || !bytes.Contains(txs[0], []byte("Subject: scan")) {
		t.Errorf("smarthost got %d messages, want the one", len(txs))
	}
}

// Google's answer when the Workspace admin has not delegated the scope to
// the service account: a DSN with Google's error and words.
func TestGoogleXOAUTH2NotDelegatedIsDSN(t *testing.T) {
	g := googletest.New(t)
	acct := g.NewAccount(t, "postern@proj.iam.gserviceaccount.com")
	// The process's token cache is keyed by mailbox and scope: a mailbox
	// no other test uses, so no token of theirs is found.
	g.AddUser("undelegated@example.org") // and no g.Delegate
	m := newM365(t, nil, "undelegated@example.org")
	m.accepts = func(string) bool { return true }
	yaml := `
routes:
  - name: m365
    match: {recipients: ["*"]}
    relay:
      type: smtp
      addr: "` + m.addr + `"
      ca_file: "` + m.caFile + `"
      auth_mechanism: xoauth2
      username: undelegated@example.org
      oauth: {provider: google, service_account_key: "file:` + googleKey(t, g, acct) + `"}
`
	cfg, err := config.Parse("test", []byte(yaml), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	f := newTokenFailWith(t, m, cfg)
	if err := f.handle(t, 1); err != nil {
		t.Fatalf("Handle = %v, want nil: the recipient is settled by a DSN", err)
	}
	_, fl := f.failure(t)
	if fl.Status != "5.7.0" || !strings.Contains(fl.Diagnostic, "unauthorized_client") ||
		!strings.Contains(fl.Diagnostic, "Client is unauthorized to retrieve access tokens using this method") {
		t.Errorf("failure %+v; want 5.7.0 with Google's unauthorized_client and its words", fl)
	}
	if strings.Contains(string(f.dsnq.Bodies()[0]), "PRIVATE KEY") {
		t.Error("dsn job holds the key")
	}
	if presented, _ := f.m.snapshot(); len(presented) != 0 {
		t.Errorf("smarthost saw %d AUTH, want none", len(presented))
	}
}
