package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/config"
)

// The relay stage counts into the admin /metrics, per configured route.
func TestRelayMetricsPerRoute(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.Routes = append([]config.Route{{Name: "outbound", Match: config.Match{Recipients: []string{"*@relay.test"}},
		Relay: &config.Relay{Type: "file", Path: "relayed"}}}, cfg.Routes...)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := boot(t, cfg)
	admin := "http://" + a.AdminAddr().String()
	if _, err := send(t, a.SMTPAddrs()[0].String(), "a@lan", []string{"x@relay.test", "y@relay.test"}, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	const delivered = `postern_relay_recipients_total{outcome="delivered",route="outbound"} 2`
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, out = get(t, admin+"/metrics")
		if strings.Contains(out, delivered) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{delivered, `postern_relay_attempt_seconds_count{route="outbound"} 1`} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
