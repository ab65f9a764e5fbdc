package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/logbuf"
	"github.com/postern/postern/internal/postern"
)

// replayReq is the request the CLI sends for `gateway replay -route NAME ID`.
func replayReq(id, route string) adminReq {
	body, _ := json.Marshal(app.ReplayRequest{Route: route})
	return adminReq{method: "POST", path: "/v1/replay/" + id, token: testAdminToken, ctype: "application/json", body: string(body)}
}

// Replay to a route reaches only the recipients that route matches, as the
// parse stage matches them (header conditions included); a route that
// matches none of them is refused with 409 and delivers nothing, an unknown
// route with 400. Before, such a replay went, signed, to every recipient.
func TestAdminReplayOnlyToMatchingRoutes(t *testing.T) {
	t.Parallel()
	appHook, appSrv := newHook(t)
	tenantHook, tenantSrv := newHook(t)
	cfg := testConfig(t, appSrv.URL)
	cfg.Routes = append([]config.Route{{
		Name:    "tenant",
		Match:   config.Match{Recipients: []string{"*@app.test"}, Headers: map[string]string{"X-Tenant": "a"}},
		Webhook: &config.Webhook{URL: tenantSrv.URL, Secrets: []string{testSecret}, AllowPrivate: true},
	}}, cfg.Routes...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	a, stop := startLogged(t, cfg, &logs)
	smtpAddr, addr := a.SMTPAddrs()[0].String(), a.AdminAddr().String()
	mustSend := func(to string, msg string) string {
		t.Helper()
		reply, err := send(t, smtpAddr, "scanner@lan", []string{to}, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(reply, "OK ")
	}
	toFiles := mustSend("x@files.test", "Subject: scan\r\n\r\nx\r\n")
	toApp := mustSend("y@app.test", "Subject: b\r\nX-Tenant: b\r\n\r\nx\r\n")
	appHook.wait(t, 1, 20*time.Second)
	toTenant := mustSend("y@app.test", "Subject: a\r\nX-Tenant: a\r\n\r\nx\r\n")
	tenantHook.wait(t, 1, 20*time.Second)
	eventually(t, "the message to files in the store", func() bool {
		code, _ := doAdmin(t, addr, adminReq{method: "GET", path: "/v1/trace/" + toFiles, token: testAdminToken})
		return code == 200
	})

	for _, c := range []struct {
		id, route string
		want      int
		says      string
	}{
		{toFiles, "app", 409, "matches none of message"},
		{toFiles, "tenant", 409, "matches none of message"},
		{toApp, "tenant", 409, "matches none of message"}, // a header route the header does not match
		{toApp, "nope", 400, `no route named "nope"`},
		{toApp, "app", 200, "queued for route app (1 recipient(s))"},
		{toTenant, "tenant", 200, "queued for route tenant (1 recipient(s))"},
		{toFiles, "files", 200, "queued for route files"},
		{"01M80H7QV2J8QZ4XCNA7D25Z0Z", "app", 404, ""},
	} {
		code, body := doAdmin(t, addr, replayReq(c.id, c.route))
		if code != c.want || !strings.Contains(body, c.says) {
			t.Errorf("replay %s to %s: %d %q, want %d and %q", c.id, c.route, code, strings.TrimSpace(body), c.want, c.says)
		}
	}
	// The accepted replays arrive; the refused ones never do: each hook has
	// exactly one delivery more, for the message it was meant for.
	for name, h := range map[string]*hook{"app": appHook, "tenant": tenantHook} {
		reqs := h.wait(t, 2, 20*time.Second)
		if len(reqs) != 2 || reqs[0].header.Get("webhook-id") != reqs[1].header.Get("webhook-id") {
			var ids []string
			for _, r := range reqs {
				ids = append(ids, r.header.Get("webhook-id"))
			}
			t.Errorf("route %s got %v, want its first delivery once more", name, ids)
		}
	}
	if strings.Count(logs.String(), `"msg":"replayed"`) != 3 {
		t.Errorf("want 3 replays logged:\n%s", logs.String())
	}

	// The same check holds when the CLI replays on the files itself, with
	// no gateway running.
	stop()
	_, err := app.Replay(context.Background(), cfg, quietLogger(), postern.MsgID(toApp), "tenant")
	if err == nil || !strings.Contains(err.Error(), "matches none of message") {
		t.Errorf("offline replay to a route the message does not match: %v", err)
	}
	if msg, err := app.Replay(context.Background(), cfg, quietLogger(), postern.MsgID(toTenant), "tenant"); err != nil || !strings.Contains(msg, "1 recipient") {
		t.Errorf("offline replay to its own route: %q, %v", msg, err)
	}
}

// A reject route never takes a replay, whatever the recipients.
func TestAdminReplayToRejectRoute(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.Routes = append([]config.Route{{Name: "blocked", Match: config.Match{Recipients: []string{"*@blocked.test"}}, Reject: true}}, cfg.Routes...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := boot(t, cfg)
	reply, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan", []string{"x@files.test"}, []byte("Subject: x\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(reply, "OK ")
	eventually(t, "the envelope stored", func() bool {
		code, _ := doAdmin(t, a.AdminAddr().String(), adminReq{method: "GET", path: "/v1/trace/" + id, token: testAdminToken})
		return code == 200
	})
	if code, body := doAdmin(t, a.AdminAddr().String(), replayReq(id, "blocked")); code != 409 || !strings.Contains(body, "rejects mail") {
		t.Errorf("replay to a reject route: %d %q", code, body)
	}
}
