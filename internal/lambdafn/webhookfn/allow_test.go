package webhookfn_test

import (
	"net/netip"
	"testing"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn/webhookfn"
)

// A route's webhook.allow reaches its target, so the guard opens exactly
// what the route lists.
func TestTargetsCarryAllowList(t *testing.T) {
	cfg := cfgWith(t, hook("app", config.Webhook{URL: "http://127.0.0.1:8080/in", Allow: []string{"127.0.0.1", "app.internal"}}))
	targets, err := webhookfn.Targets(cfg, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := targets["app"].Allow
	if a.Private || len(a.Prefixes) != 1 || a.Prefixes[0] != netip.MustParsePrefix("127.0.0.1/32") || len(a.Hosts) != 1 || a.Hosts[0] != "app.internal" {
		t.Errorf("app target's allow = %+v, want 127.0.0.1/32 and app.internal", a)
	}
}
