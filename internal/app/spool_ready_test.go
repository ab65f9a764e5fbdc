package app_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/config"
)

// metric returns the value of an unlabelled metric in a scrape, or "".
func metric(out, name string) string {
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

// A mover that cannot reach the store is reported by /readyz once it has
// failed for delivery.stall_alarm, and by the spool metrics; mail keeps
// being acknowledged meanwhile and is moved once the store is back.
func TestReadinessReportsAStalledSpool(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.Delivery.BurstLag = 0
	cfg.Delivery.StallAlarm = config.Duration(time.Second)
	a := boot(t, cfg)
	admin := "http://" + a.AdminAddr().String()
	if code, body := get(t, admin+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d %q at start", code, body)
	}
	_, out := get(t, admin+"/metrics")
	for _, name := range []string{"postern_spool_backlog_messages", "postern_spool_backlog_bytes", "postern_spool_oldest_unmoved_seconds",
		"postern_spool_mover_failures_total", "postern_quarantined_total"} {
		if v := metric(out, name); v != "0" {
			t.Errorf("%s = %q at start, want 0", name, v)
		}
	}
	objects := filepath.Join(cfg.DataDir, "store", "objects")
	if err := os.RemoveAll(objects); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(objects, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := send(t, a.SMTPAddrs()[0].String(), "a@lan", []string{"x@app.test"}, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("the spool did not acknowledge while the store is down: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(t, admin+"/readyz")
		if code == 503 && strings.Contains(body, "spool mover") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz = %d %q; want 503 naming the spool mover", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, out = get(t, admin+"/metrics")
	if v := metric(out, "postern_spool_backlog_messages"); v != "1" {
		t.Errorf("postern_spool_backlog_messages = %q, want 1", v)
	}
	if v := metric(out, "postern_spool_mover_failures_total"); v == "0" || v == "" {
		t.Errorf("postern_spool_mover_failures_total = %q, want some", v)
	}
	os.Remove(objects)
	os.Mkdir(objects, 0o700)
	h.wait(t, 1, 30*time.Second)
	deadline = time.Now().Add(20 * time.Second)
	for {
		code, body := get(t, admin+"/readyz")
		_, out = get(t, admin+"/metrics")
		if code == 200 && metric(out, "postern_spool_backlog_messages") == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the store came back: readyz = %d %q, backlog %s", code, body, metric(out, "postern_spool_backlog_messages"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
