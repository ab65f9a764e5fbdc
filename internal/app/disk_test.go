package app_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/smtp"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/fsqueue"
	"github.com/postern/postern/internal/trace"
)

// start boots the app with opts and returns a stop that drains it and
// waits for Run to return.
func start(t *testing.T, cfg *config.Config, opts ...app.Option) (*app.App, func()) {
	t.Helper()
	a, err := app.New(cfg, slog.New(slog.NewJSONHandler(logWriter{t}, nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, 5*time.Second) }()
	var stopped atomic.Bool
	stop := func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return a, stop
}

// eventually polls cond for up to 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLowDiskRefusesMailAtMAIL: under limits.min_free_bytes the gateway
// answers MAIL 452 4.3.1 and /readyz says why; once space is back, both
// recover.
func TestLowDiskRefusesMailAtMAIL(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "http://127.0.0.1:9/")
	var free atomic.Uint64
	free.Store(100 << 20) // under the default 1 GiB
	a, _ := start(t, cfg, app.WithFreeSpace(func(dir string) (uint64, error) {
		if dir != cfg.DataDir {
			t.Errorf("measured %q, want data_dir %q", dir, cfg.DataDir)
		}
		return free.Load(), nil
	}))
	admin := "http://" + a.AdminAddr().String()
	addr := a.SMTPAddrs()[0].String()

	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Mail("a@lan")
	if err == nil || !strings.HasPrefix(err.Error(), "452") || !strings.Contains(err.Error(), "4.3.1 Insufficient system storage") {
		t.Fatalf("MAIL with the disk low: %v, want 452 4.3.1", err)
	}
	if code, body := get(t, admin+"/readyz"); code != 503 || !strings.Contains(body, "free disk 104857600 bytes under limits.min_free_bytes 1073741824") {
		t.Errorf("readyz with the disk low = %d %q", code, body)
	}

	free.Store(10 << 30)
	eventually(t, "readyz to recover", func() bool { code, _ := get(t, admin+"/readyz"); return code == 200 })
	if err := c.Mail("a@lan"); err != nil {
		t.Fatalf("MAIL once space is back: %v", err)
	}
	c.Quit()
	if _, err := send(t, addr, "a@lan", []string{"x@files.test"}, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
}

// TestMinFreeBytesZeroNeverMeasures: 0 turns the check off.
func TestMinFreeBytesZeroNeverMeasures(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "http://127.0.0.1:9/")
	cfg.Limits.MinFreeBytes = 0
	a, _ := start(t, cfg, app.WithFreeSpace(func(string) (uint64, error) {
		t.Error("free space measured with limits.min_free_bytes 0")
		return 0, nil
	}))
	if _, err := send(t, a.SMTPAddrs()[0].String(), "a@lan", []string{"x@files.test"}, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+a.AdminAddr().String()+"/readyz"); code != 200 {
		t.Errorf("readyz = %d %q", code, body)
	}
}

// TestDevicesSurviveRestart: the device table is saved at shutdown and
// loaded at the next start.
func TestDevicesSurviveRestart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "http://127.0.0.1:9/")
	a, stop := start(t, cfg)
	for range 2 {
		if _, err := send(t, a.SMTPAddrs()[0].String(), "a@lan", []string{"x@files.test"}, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	before := devicesOf(t, a)
	stop()

	a2, _ := start(t, cfg)
	after := devicesOf(t, a2)
	if len(before) != 1 || before[0].Messages != 2 {
		t.Fatalf("devices before the restart = %+v", before)
	}
	if len(after) != 1 || !reflect.DeepEqual(after[0], before[0]) {
		t.Errorf("devices after the restart = %+v, want %+v", after, before)
	}
}

func devicesOf(t *testing.T, a *app.App) []app.Device {
	t.Helper()
	code, body := get(t, "http://"+a.AdminAddr().String()+"/v1/devices")
	if code != 200 {
		t.Fatalf("/v1/devices = %d %q", code, body)
	}
	var out []app.Device
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	for i := range out {
		out[i].LastSeen = out[i].LastSeen.UTC()
	}
	return out
}

// TestRetentionAtStart: the purge that runs at start removes an old
// message and its outbox file, keeps one a dead-lettered job still refers
// to, and counts what it removed.
func TestRetentionAtStart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "http://127.0.0.1:9/")
	old := oldMessage(t, cfg, 40*24*time.Hour)
	stuck := oldMessage(t, cfg, 40*24*time.Hour)
	db, err := fsqueue.Open(cfg.Path("queue.db"), fsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := db.Queue("webhook-dlq", fsqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dlq.Send(t.Context(), []byte(`{"v":1,"id":"`+string(stuck)+`","route":"files"}`), 0); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	outbox := cfg.Path("outbox")
	oldFile := filepath.Join(outbox, string(old)+".files.json")
	stuckFile := filepath.Join(outbox, string(stuck)+".files.json")
	for _, f := range []string{oldFile, stuckFile} {
		if err := os.WriteFile(f, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	a, _ := start(t, cfg)
	admin := "http://" + a.AdminAddr().String()
	eventually(t, "the purge at start", func() bool {
		_, m := get(t, admin+"/metrics")
		return strings.Contains(m, `postern_purged_total{kind="message"} 1`) && strings.Contains(m, `postern_purged_total{kind="webhook_outbox"} 1`)
	})
	if _, err := os.Stat(oldFile); !os.IsNotExist(err) {
		t.Errorf("old outbox file: %v, want it purged", err)
	}
	if _, err := os.Stat(cfg.Path(filepath.Join("store", "objects", filepath.FromSlash(old.RawKey())))); !os.IsNotExist(err) {
		t.Errorf("old raw message: %v, want it purged", err)
	}
	if _, err := os.Stat(stuckFile); err != nil {
		t.Errorf("outbox file of a message a job refers to: %v", err)
	}
	if _, err := os.Stat(cfg.Path(filepath.Join("store", "objects", filepath.FromSlash(stuck.RawKey())))); err != nil {
		t.Errorf("message a dead-lettered job refers to: %v", err)
	}
}

// oldMessage stores the objects of a message received age ago that went
// to the files route, as the stages leave them.
func oldMessage(t *testing.T, cfg *config.Config, age time.Duration) postern.MsgID {
	t.Helper()
	u, err := ulid.New(ulid.Timestamp(time.Now().Add(-age)), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := postern.MsgID(u.String())
	store, err := fsblob.New(cfg.Path("store"), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, k := range []string{id.RawKey(), id.EnvelopeKey(), id.ParsedKey()} {
		if err := store.Put(t.Context(), k, strings.NewReader("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := trace.Append(t.Context(), store, id, trace.Event{Stage: "webhook", Event: "done", Route: "files"}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.Path("outbox"), 0o700); err != nil {
		t.Fatal(err)
	}
	return id
}
