package app_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	a := boot(t, testConfig(t, hs.URL))
	admin := "http://" + a.AdminAddr().String()
	addr := a.SMTPAddrs()[0].String()
	if _, err := send(t, addr, "a@lan", []string{"x@nowhere.test"}, []byte("Subject: x\r\n\r\nx\r\n")); err == nil {
		t.Fatal("unroutable recipient accepted")
	}
	if _, err := send(t, addr, "a@lan", []string{"x@app.test"}, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	h.wait(t, 1, 20*time.Second)
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, out = get(t, admin+"/metrics")
		if strings.Contains(out, `postern_jobs_total{outcome="done",stage="webhook"} 1`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		`postern_messages_accepted_total{identity="local"} 1`,
		`postern_smtp_replies_total{code="550",command="RCPT"} 1`,
		`postern_smtp_replies_total{code="250",command="DATA"} 1`,
		`postern_smtp_connections_total{listener="smtp",outcome="accepted"} 2`,
		`postern_jobs_total{outcome="done",stage="parse"} 1`,
		`postern_jobs_total{outcome="done",stage="webhook"} 1`,
		`postern_queue_messages{queue="webhook",state="visible"} 0`,
		`postern_ingest_seconds_count 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestReadinessFollowsStore(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	a := boot(t, cfg)
	admin := "http://" + a.AdminAddr().String()
	if code, _ := get(t, admin+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d at start", code)
	}
	// Break the store the way a broken disk would: writes fail.
	objects := filepath.Join(cfg.DataDir, "store", "objects")
	if err := os.RemoveAll(objects); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(objects, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, admin+"/readyz"); code != 503 || !strings.Contains(body, "store") {
		t.Errorf("readyz with the store broken = %d %q", code, body)
	}
	os.Remove(objects)
	os.Mkdir(objects, 0o700)
	if code, body := get(t, admin+"/readyz"); code != 200 {
		t.Errorf("readyz did not recover: %d %q", code, body)
	}
}
