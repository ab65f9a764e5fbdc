package config

import (
	"strings"
	"testing"
	"time"
)

func TestStallAlarm(t *testing.T) {
	t.Parallel()
	c, err := Load(write(t, "hostname: a\n"), noenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Delivery.StallAlarm.D() != time.Minute {
		t.Errorf("delivery.stall_alarm defaults to %s, want 1m", c.Delivery.StallAlarm.D())
	}
	c, err = Load(write(t, "hostname: a\ndelivery:\n  stall_alarm: 5m\n"), noenv)
	if err != nil || c.Delivery.StallAlarm.D() != 5*time.Minute {
		t.Fatalf("stall_alarm: 5m gave %v, %v", c, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"delivery:\n  stall_alarm: 0s\n", "delivery.stall_alarm: 0s must be at least 1s"},
		{"delivery:\n  stall_alarm: 10s\n  burst_lag: 30s\n", "delivery.stall_alarm: 10s must be at least 1s and longer than delivery.burst_lag (30s)"},
	} {
		_, err := Load(write(t, "hostname: a\n"+tc.yaml), noenv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
}

func TestMaxRecipientsIsBounded(t *testing.T) {
	t.Parallel()
	if _, err := Load(write(t, "hostname: a\nlimits:\n  max_recipients: 1000\n"), noenv); err != nil {
		t.Fatalf("max_recipients: 1000: %v", err)
	}
	_, err := Load(write(t, "hostname: a\nlimits:\n  max_recipients: 1001\n"), noenv)
	if want := "limits.max_recipients: 1001 must be between 1 and 1000"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("max_recipients: 1001: %v, want %q", err, want)
	}
}
