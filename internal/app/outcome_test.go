package app_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay/relaytest"
	"github.com/postern/postern/internal/trace"
)

// traceOf waits until the message's timeline holds an event named final
// for route, and returns that route's events of stage.
func traceOf(t *testing.T, cfg *config.Config, id postern.MsgID, stage, route, final string) []trace.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, err := app.Trace(t.Context(), cfg, slog.New(slog.DiscardHandler), id)
		var out []trace.Event
		for _, ev := range evs {
			if ev.Stage == stage && ev.Route == route {
				out = append(out, ev)
			}
		}
		for _, ev := range out {
			if ev.Event == final {
				return out
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s %s event; trace %+v, %v", stage, final, evs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sentID(t *testing.T, reply string) postern.MsgID {
	t.Helper()
	f := strings.Fields(reply)
	id, err := postern.ParseMsgID(strings.Trim(f[len(f)-1], "<>"))
	if err != nil {
		t.Fatalf("250 reply %q carries no message id: %v", reply, err)
	}
	return id
}

// A webhook that answers 410 is a failure in the trace, with its 410, and
// in the metrics; the failure_url POST that follows is a line of its own
// with its own status.
func TestWebhookRefusalIsAFailureEverywhere(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	h.status = 410
	notice, ns := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.Routes[1].Webhook.FailureURL = ns.URL
	a := boot(t, cfg)
	reply, err := send(t, a.SMTPAddrs()[0].String(), "a@lan", []string{"x@app.test"}, []byte("Subject: x\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := sentID(t, reply)
	h.wait(t, 1, 20*time.Second)
	notice.wait(t, 1, 20*time.Second)

	evs := traceOf(t, cfg, id, "webhook", "app", trace.EventFailureNotice)
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%s %d", ev.Event, ev.Status))
	}
	want := []string{"failed 410", "dsn_queued 0", "failure_notice 200"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("webhook trace %v, want %v", got, want)
	}

	admin := "http://" + a.AdminAddr().String()
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, out = get(t, admin+"/metrics")
		if strings.Contains(out, `postern_jobs_total{outcome="failed",stage="webhook"} 1`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		`postern_jobs_total{outcome="failed",stage="webhook"} 1`,
		`postern_webhook_attempts_total{outcome="failed",route="app"} 1`,
		`postern_webhook_attempts_total{outcome="delivered",route="app"} 0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(out, `postern_jobs_total{outcome="done",stage="webhook"}`) {
		t.Error("a refused webhook was counted as done")
	}
}

// With a short max_age the expiry notice leaves at max age, not a backoff
// later: retries are capped at the deadline.
func TestWebhookExpiresAtMaxAge(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	h.status = 503
	cfg := testConfig(t, hs.URL)
	const maxAge = 2 * time.Second
	cfg.Routes[1].Webhook.MaxAge = config.Duration(maxAge)
	a := boot(t, cfg)
	reply, err := send(t, a.SMTPAddrs()[0].String(), "a@lan", []string{"x@app.test"}, []byte("Subject: x\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := sentID(t, reply)
	evs := traceOf(t, cfg, id, "webhook", "app", trace.EventDSNQueued)
	var first, expired time.Time
	for _, ev := range evs {
		if first.IsZero() {
			first = ev.Time
		}
		if ev.Event == trace.EventExpired {
			expired = ev.Time
		}
	}
	if expired.IsZero() {
		t.Fatalf("no expired event: %+v", evs)
	}
	// The first attempt comes right after routing; allow a second's floor
	// on the last delay and some scheduling slack.
	if late := expired.Sub(first); late < maxAge-time.Second || late > maxAge+2*time.Second {
		t.Fatalf("expired %v after the first attempt, want about max_age %v; trace %+v", late, maxAge, evs)
	}
}

// A relay whose smarthost keeps deferring sends the delay notice at
// delay_notice and gives up at max_age, each on time: retries are capped
// at both.
func TestRelayNoticesOnTime(t *testing.T) {
	t.Parallel()
	smarthost := relaytest.NewServer(t, relaytest.Options{Script: relaytest.Script{Rcpt: map[string]*smtp.SMTPError{
		"x@relay.test": {Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"},
	}}})
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	const maxAge, delayNotice = 3 * time.Second, time.Second
	cfg.Routes = append([]config.Route{{Name: "outbound", Match: config.Match{Recipients: []string{"*@relay.test"}},
		Relay: &config.Relay{Type: "smtp", Addr: smarthost.Addr, TLS: "none",
			MaxAge: config.Duration(maxAge), DelayNotice: config.Duration(delayNotice)}}}, cfg.Routes...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := boot(t, cfg)
	reply, err := send(t, a.SMTPAddrs()[0].String(), "a@lan", []string{"x@relay.test"}, []byte("Subject: x\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := sentID(t, reply)
	evs := traceOf(t, cfg, id, "relay", "outbound", trace.EventExpired)
	var first, notice, expired time.Time
	for _, ev := range evs {
		if first.IsZero() {
			first = ev.Time
		}
		switch ev.Event {
		case trace.EventDelayNoticeQueued:
			notice = ev.Time
		case trace.EventExpired:
			expired = ev.Time
		}
	}
	if notice.IsZero() {
		t.Fatalf("no delay notice: %+v", evs)
	}
	// The first attempt comes right after routing; allow a second's floor
	// on a capped delay and some scheduling slack.
	if at := notice.Sub(first); at < delayNotice-time.Second || at > delayNotice+2*time.Second {
		t.Errorf("delay notice %v after the first attempt, want about %v; trace %+v", at, delayNotice, evs)
	}
	if at := expired.Sub(first); at < maxAge-time.Second || at > maxAge+2*time.Second {
		t.Errorf("expired %v after the first attempt, want about max_age %v; trace %+v", at, maxAge, evs)
	}
}
