package parse

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/postern/postern/internal/dnsresolve"
	"github.com/postern/postern/internal/dnstest"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/route"
)

// authRules put mail whose DMARC fails in quarantine before the inbox
// takes the rest, and relay DKIM-signed mail to partners.
var authRules = []route.Rule{
	{Name: "quarantine", Recipients: []string{"*@corp.example"}, DMARC: []string{"fail"}, Target: route.Target{Kind: route.KindDirectory}},
	{Name: "inbox", Recipients: []string{"*@corp.example"}, Target: route.Target{Kind: route.KindWebhook}},
	{Name: "partners", Recipients: []string{"*@partner.example"}, DKIM: []string{"pass"}, Target: route.Target{Kind: route.KindRelay}},
}

// authWorld is a DNS server publishing good.example's SPF, DKIM key and
// DMARC policy (p=reject), and a parse stage that asks it for the mail of
// the identity "mx" (internet) but not of "printer" (trusted).
type authWorld struct {
	*harness
	dns *dnstest.Server
	key ed25519.PrivateKey
}

func newAuthWorld(t *testing.T, rules []route.Rule) *authWorld {
	t.Helper()
	srv := dnstest.New(t)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv.AddTXT("good.example", "v=spf1 ip4:192.0.2.10 -all")
	srv.AddTXT("_dmarc.good.example", "v=DMARC1; p=reject")
	srv.AddTXT("sel._domainkey.good.example", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
	resolver, err := dnsresolve.New(dnsresolve.Config{Servers: []string{srv.Addr()}, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	table, err := route.New(rules)
	if err != nil {
		t.Fatal(err)
	}
	hs := &harness{store: newMemStore(), wh: &recorder{}, relay: &recorder{}, dsn: &recorder{}, logs: &logWriter{t: t}}
	cfg := Config{InlineAttachmentMax: testInlineMax, Now: func() time.Time { return testNow }}
	out := Outbox{Webhook: hs.wh, Relay: hs.relay, DSN: hs.dsn}
	hs.h = New(cfg, hs.store, table, out, slog.New(slog.NewJSONHandler(hs.logs, nil)), WithAuth(Auth{
		Resolver:   resolver,
		Internet:   func(id string) bool { return id == "mx" },
		AuthServID: "mx.corp.example",
		Timeout:    5 * time.Second,
	}))
	return &authWorld{harness: hs, dns: srv, key: key}
}

// message is mail from alice@good.example, DKIM-signed by good.example
// when signed is set. The gateway's Received field comes first, as stored.
func (w *authWorld) message(t *testing.T, signed bool) []byte {
	t.Helper()
	msg := []byte("From: Alice <alice@good.example>\r\n" +
		"To: bob@corp.example\r\n" +
		"Subject: invoice\r\n" +
		"Date: Sat, 05 Dec 2026 06:00:00 +0000\r\n" +
		"Message-ID: <1@good.example>\r\n" +
		"\r\n" +
		"Please pay.\r\n")
	if signed {
		var out bytes.Buffer
		err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
			Domain: "good.example", Selector: "sel", Signer: w.key,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		})
		if err != nil {
			t.Fatal(err)
		}
		msg = out.Bytes()
	}
	return append([]byte("Received: from mx.good.example ([192.0.2.10])\r\n\tby mx.corp.example (Postern) with ESMTP id x\r\n"), msg...)
}

// handle submits raw as sent by identity from ip with MAIL FROM sender,
// runs the stage, and returns the parsed form.
func (w *authWorld) handle(t *testing.T, raw []byte, identity, ip, sender string, rcpts ...string) postern.Parsed {
	t.Helper()
	id, env, _ := w.submit(t, raw, rcpts...)
	env.Identity, env.ClientIP, env.Sender, env.HELO = identity, ip, sender, "mx.good.example"
	body, err := json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: id, Envelope: env})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	return decode[postern.Parsed](t, w.store.object(t, id.ParsedKey()))
}

func TestAuthPassGoesToInbox(t *testing.T) {
	t.Parallel()
	w := newAuthWorld(t, authRules)
	p := w.handle(t, w.message(t, true), "mx", "192.0.2.10", "alice@good.example", "bob@corp.example", "carol@partner.example")

	a := p.Auth
	if a == nil {
		t.Fatal("parsed form has no auth")
	}
	if a.SPF.Result != "pass" || a.SPF.Domain != "good.example" {
		t.Errorf("spf = %+v, want pass for good.example", a.SPF)
	}
	if len(a.DKIM) != 1 || a.DKIM[0] != (postern.AuthDKIM{Result: "pass", Domain: "good.example", Selector: "sel", Algorithm: "ed25519-sha256"}) {
		t.Errorf("dkim = %+v, want one pass by good.example, sel, ed25519-sha256", a.DKIM)
	}
	if d := a.DMARC; d.Result != "pass" || d.Policy != "reject" || d.Domain != "good.example" || !d.AlignedSPF || !d.AlignedDKIM {
		t.Errorf("dmarc = %+v, want pass, policy reject, both aligned", d)
	}

	wh := w.wh.sent()
	if len(wh) != 1 {
		t.Fatalf("webhook jobs = %d, want 1 (inbox)", len(wh))
	}
	wj := decode[postern.WebhookJob](t, wh[0])
	if wj.Route != "inbox" {
		t.Errorf("routed to %q, want inbox", wj.Route)
	}
	for _, want := range []string{"mx.corp.example;", "spf=pass", "smtp.mailfrom=good.example", "dkim=pass", "header.d=good.example", "header.s=sel", "dmarc=pass", "header.from=good.example"} {
		if !strings.Contains(wj.AuthResults, want) {
			t.Errorf("webhook job's Authentication-Results lacks %q:\n%s", want, wj.AuthResults)
		}
	}
	if p.AuthResults != wj.AuthResults {
		t.Errorf("parsed.json keeps Authentication-Results %q, the job carries %q", p.AuthResults, wj.AuthResults)
	}
	if !strings.HasPrefix(wj.AuthResults, "mx.corp.example;") {
		t.Errorf("Authentication-Results does not start with the authserv-id: %q", wj.AuthResults)
	}
	// The job's copy of parsed.json carries the verdicts too.
	if got := decode[postern.Parsed](t, wj.Parsed); got.Auth == nil || got.Auth.DMARC.Result != "pass" {
		t.Errorf("job's parsed form auth = %+v", got.Auth)
	}

	rl := w.relay.sent()
	if len(rl) != 1 {
		t.Fatalf("relay jobs = %d, want 1 (partners, dkim pass)", len(rl))
	}
	if rj := decode[postern.RelayJob](t, rl[0]); rj.Route != "partners" || rj.AuthResults != wj.AuthResults {
		t.Errorf("relay job route %q, auth results %q; want partners and the webhook job's", rj.Route, rj.AuthResults)
	}
	if len(w.dsn.sent()) != 0 {
		t.Error("a DSN was queued")
	}
}

// Mail claiming good.example's From from elsewhere, unsigned, fails SPF
// and DMARC (p=reject): the quarantine route takes it; the partners route,
// which wants a DKIM pass, does not, so that recipient is bounced.
func TestAuthSpoofGoesToQuarantine(t *testing.T) {
	t.Parallel()
	w := newAuthWorld(t, authRules)
	p := w.handle(t, w.message(t, false), "mx", "203.0.113.5", "ceo@good.example", "bob@corp.example", "carol@partner.example")
	a := p.Auth
	if a.SPF.Result != "fail" || len(a.DKIM) != 1 || a.DKIM[0].Result != "none" {
		t.Errorf("spf %+v dkim %+v, want fail and none", a.SPF, a.DKIM)
	}
	if a.DMARC.Result != "fail" || a.DMARC.Policy != "reject" || a.DMARC.AlignedSPF || a.DMARC.AlignedDKIM {
		t.Errorf("dmarc = %+v, want fail, policy reject, nothing aligned", a.DMARC)
	}
	wh := w.wh.sent()
	if len(wh) != 1 {
		t.Fatalf("webhook jobs = %d, want 1", len(wh))
	}
	wj := decode[postern.WebhookJob](t, wh[0])
	if wj.Route != "quarantine" || !strings.Contains(wj.AuthResults, "dmarc=fail") || !strings.Contains(wj.AuthResults, "spf=fail") {
		t.Errorf("routed to %q with %q; want quarantine, spf=fail, dmarc=fail", wj.Route, wj.AuthResults)
	}
	if n := len(w.relay.sent()); n != 0 {
		t.Errorf("relay jobs = %d, want 0", n)
	}
	ds := w.dsn.sent()
	if len(ds) != 1 || decode[postern.DSNJob](t, ds[0]).Failed[0].Recipient != "carol@partner.example" {
		t.Errorf("dsn jobs = %s, want carol@partner.example unroutable", ds)
	}
}

// A signature the body no longer matches fails DKIM; SPF passing still
// aligns, so DMARC passes.
func TestAuthBrokenSignature(t *testing.T) {
	t.Parallel()
	w := newAuthWorld(t, authRules)
	raw := bytes.Replace(w.message(t, true), []byte("Please pay."), []byte("Please pay me."), 1)
	p := w.handle(t, raw, "mx", "192.0.2.10", "alice@good.example", "bob@corp.example")
	if len(p.Auth.DKIM) != 1 || p.Auth.DKIM[0].Result != "fail" || p.Auth.DKIM[0].Domain != "good.example" {
		t.Errorf("dkim = %+v, want fail by good.example", p.Auth.DKIM)
	}
	if p.Auth.DMARC.Result != "pass" || !p.Auth.DMARC.AlignedSPF || p.Auth.DMARC.AlignedDKIM {
		t.Errorf("dmarc = %+v, want pass on aligned SPF alone", p.Auth.DMARC)
	}
	if wj := decode[postern.WebhookJob](t, w.wh.sent()[0]); !strings.Contains(wj.AuthResults, "dkim=fail") {
		t.Errorf("Authentication-Results %q lacks dkim=fail", wj.AuthResults)
	}
}

// A trusted identity's mail costs no DNS question, is none (trusted)
// everywhere, gets no Authentication-Results, and no verdict rule takes it.
func TestAuthTrustedAsksNoDNS(t *testing.T) {
	t.Parallel()
	w := newAuthWorld(t, authRules)
	p := w.handle(t, w.message(t, false), "printer", "203.0.113.5", "ceo@good.example", "bob@corp.example")
	if n := w.dns.Count(); n != 0 {
		t.Errorf("%d DNS queries for trusted mail: %+v", n, w.dns.Queries())
	}
	a := p.Auth
	if a == nil || a.SPF.Result != "none" || a.SPF.Reason != "trusted" || a.DKIM[0].Result != "none" || a.DKIM[0].Reason != "trusted" ||
		a.DMARC.Result != "none" || a.DMARC.Reason != "trusted" {
		t.Errorf("auth = %+v, want none (trusted) everywhere", a)
	}
	wj := decode[postern.WebhookJob](t, w.wh.sent()[0])
	if wj.Route != "inbox" || wj.AuthResults != "" {
		t.Errorf("routed to %q with Authentication-Results %q; want inbox and none", wj.Route, wj.AuthResults)
	}
	// The same message from the internet identity costs queries: the count
	// above could have seen them.
	w.handle(t, w.message(t, false), "mx", "203.0.113.5", "ceo@good.example", "bob@corp.example")
	if w.dns.Count() == 0 {
		t.Error("no DNS queries for internet mail either; the trusted check proves nothing")
	}
}

// DNS that never answers gives temperror verdicts, within the stage's
// bound, and the message is routed all the same.
func TestAuthDNSTimeoutIsTempError(t *testing.T) {
	t.Parallel()
	w := newAuthWorld(t, authRules)
	w.dns.Timeout("good.example")
	w.dns.Timeout("_dmarc.good.example")
	start := time.Now()
	p := w.handle(t, w.message(t, false), "mx", "192.0.2.10", "alice@good.example", "bob@corp.example")
	if p.Auth.SPF.Result != "temperror" || p.Auth.DMARC.Result != "temperror" {
		t.Errorf("spf %+v dmarc %+v, want temperror", p.Auth.SPF, p.Auth.DMARC)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	if wj := decode[postern.WebhookJob](t, w.wh.sent()[0]); wj.Route != "inbox" || !strings.Contains(wj.AuthResults, "spf=temperror") {
		t.Errorf("routed to %q with %q; want inbox, spf=temperror", wj.Route, wj.AuthResults)
	}
}

// flakyRaw fails reading the raw message after its first bytes on every
// Get after the first: the parse reads it whole, the sender checks do not.
type flakyRaw struct {
	*memStore
	mu   sync.Mutex
	gets int
}

func (s *flakyRaw) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.memStore.Get(ctx, key)
	if err != nil || !strings.HasSuffix(key, "/raw.eml") {
		return rc, err
	}
	s.mu.Lock()
	s.gets++
	n := s.gets
	s.mu.Unlock()
	if n == 1 {
		return rc, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, 40), iotest.ErrReader(errors.New("connection reset"))), rc}, nil
}

// A store that fails while the checks read the message fails the job
// (retried), rather than delivering verdicts the store made up.
func TestAuthStoreFailureRetries(t *testing.T) {
	t.Parallel()
	w := newAuthWorld(t, authRules)
	flaky := &flakyRaw{memStore: w.store}
	w.h.store = flaky
	id, env, _ := w.submit(t, w.message(t, true), "bob@corp.example")
	env.Identity, env.Sender = "mx", "alice@good.example"
	body, _ := json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: id, Envelope: env})
	err := w.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1})
	if err == nil || postern.IsPermanent(err) || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("Handle = %v, want a temporary error from the store", err)
	}
	if flaky.gets < 2 {
		t.Fatalf("%d reads of the raw message; the test did not reach the checks", flaky.gets)
	}
	if n := len(w.wh.sent()); n != 0 {
		t.Errorf("%d webhook jobs sent", n)
	}
}

// Thousands of DKIM-Signature fields keep the jobs small: the
// Authentication-Results value names the first few, parsed.json all.
func TestAuthManySignaturesKeepJobsSmall(t *testing.T) {
	t.Parallel()
	w := newAuthWorld(t, authRules)
	sig := "DKIM-Signature: v=1; a=rsa-sha256; d=good.example; s=sel; c=relaxed/relaxed; h=From; bh=AAAA; b=AAAA\r\n"
	raw := w.message(t, false)
	raw = append([]byte(strings.Repeat(sig, 2000)), raw...)
	p := w.handle(t, raw, "mx", "192.0.2.10", "alice@good.example", "bob@corp.example")
	if len(p.Auth.DKIM) != 2000 {
		t.Errorf("parsed.json has %d DKIM verdicts, want 2000", len(p.Auth.DKIM))
	}
	wj := decode[postern.WebhookJob](t, w.wh.sent()[0])
	if n := strings.Count(wj.AuthResults, "dkim="); n != maxHeaderSignatures {
		t.Errorf("Authentication-Results names %d signatures, want %d", n, maxHeaderSignatures)
	}
	if n := len(w.wh.sent()[0]); n > 200<<10 {
		t.Errorf("webhook job is %d bytes", n)
	}
}
