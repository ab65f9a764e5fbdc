package app_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jhillyerd/enmime/v2"

	"github.com/postern/postern/internal/apispec"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/webhook"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// hook is an application's webhook endpoint that records every request.
type hook struct {
	mu     sync.Mutex
	reqs   []recorded
	status int
	got    chan struct{}
}

type recorded struct {
	header http.Header
	body   []byte
}

// newHook starts a hook for the length of the test. Every request it gets
// must match the contracts (internal/apispec): headers, payload and its
// schema version, checked once the server has closed.
func newHook(t *testing.T) (*hook, *httptest.Server) {
	h := &hook{status: 200, got: make(chan struct{}, 100)}
	var invalid []error // guarded by h.mu
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, err := range invalid {
			t.Errorf("the webhook receiver got a request that breaks the contract: %v", err)
		}
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		err := apispec.ValidateWebhook(r.Header, b)
		h.mu.Lock()
		h.reqs = append(h.reqs, recorded{r.Header.Clone(), b})
		if err != nil {
			invalid = append(invalid, fmt.Errorf("request %d: %w", len(h.reqs), err))
		}
		status := h.status
		h.mu.Unlock()
		w.WriteHeader(status)
		h.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return h, srv
}

func (h *hook) wait(t *testing.T, n int, d time.Duration) []recorded {
	t.Helper()
	deadline := time.After(d)
	for {
		h.mu.Lock()
		got := len(h.reqs)
		h.mu.Unlock()
		if got >= n {
			break
		}
		select {
		case <-h.got:
		case <-deadline:
			t.Fatalf("webhook got %d requests, want %d", got, n)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recorded(nil), h.reqs...)
}

func testConfig(t *testing.T, hookURL string) *config.Config {
	cfg := config.Default()
	cfg.Hostname = "gw.test"
	cfg.DataDir = t.TempDir()
	cfg.Listeners[0].Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.Admin.Token = testAdminToken
	cfg.Routes = []config.Route{
		{Name: "files", Match: config.Match{Recipients: []string{"*@files.test"}}, Directory: &config.Directory{Path: "outbox"}},
		{Name: "app", Match: config.Match{Recipients: []string{"*@app.test"}}, Webhook: &config.Webhook{URL: hookURL, Secrets: []string{testSecret}, AllowPrivate: true}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func boot(t *testing.T, cfg *config.Config) *app.App {
	t.Helper()
	return bootLogged(t, cfg, io.Discard)
}

// send delivers msg with go-smtp's client and returns the 250 reply text.
func send(t *testing.T, addr, from string, to []string, msg []byte) (string, error) {
	t.Helper()
	return sendWith(t, addr, from, nil, to, msg)
}

// sendWith is send with MAIL parameters.
func sendWith(t *testing.T, addr, from string, opts *smtp.MailOptions, to []string, msg []byte) (string, error) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("scanner.lan"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, opts); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	c.Quit()
	// StatusText carries the enhanced code: "2.0.0 OK <id>".
	return strings.TrimPrefix(resp.StatusText, "2.0.0 "), nil
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestEndToEndWebhook(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	a := boot(t, testConfig(t, hs.URL+"/inbound"))

	pdf := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte{0xff, 0x00, 0x7f}, 4000)...)
	csv := []byte("id,amount\r\n1,9.99\r\n") // text parts travel with CRLF line ends
	var buf bytes.Buffer
	part, err := enmime.Builder().
		From("Scanner 3F", "scanner@lan.example").
		To("Billing", "invoices@app.test").
		Subject("Scan ✓ 2026-11-22").
		Text([]byte("Your scan is attached.\n")).
		HTML([]byte("<p>Your scan is <b>attached</b>.</p>")).
		AddAttachment(pdf, "application/pdf", "scan.pdf").
		AddAttachment(csv, "text/csv", "totals.csv").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := part.Encode(&buf); err != nil {
		t.Fatal(err)
	}

	reply, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan.example", []string{"invoices@app.test"}, buf.Bytes())
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	id, ok := strings.CutPrefix(reply, "OK ")
	if !ok {
		t.Fatalf("reply %q", reply)
	}

	reqs := h.wait(t, 1, 20*time.Second)
	time.Sleep(300 * time.Millisecond) // a duplicate would show up by now
	if reqs = h.wait(t, 1, time.Second); len(reqs) != 1 {
		t.Fatalf("webhook got %d requests, want exactly 1", len(reqs))
	}
	r := reqs[0]
	key, _ := webhook.ParseSecret(testSecret)
	if err := webhook.Verify([][]byte{key}, r.header, r.body, 5*time.Minute, time.Now()); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	if got := r.header.Get("webhook-id"); got != id+".app" {
		t.Errorf("webhook-id %q, want %q", got, id+".app")
	}
	var ev webhook.ReceivedEvent
	if err := json.Unmarshal(r.body, &ev); err != nil {
		t.Fatal(err)
	}
	d := ev.Data
	if ev.Type != "email.received" || string(d.ID) != id || d.Route != "app" || d.Identity != "local" {
		t.Errorf("event header fields: type=%q id=%q route=%q identity=%q", ev.Type, d.ID, d.Route, d.Identity)
	}
	if d.Envelope.Sender != "scanner@lan.example" || len(d.Envelope.Recipients) != 1 || d.Envelope.Recipients[0] != "invoices@app.test" {
		t.Errorf("envelope %+v", d.Envelope)
	}
	if len(d.From) != 1 || d.From[0].Address != "scanner@lan.example" || d.From[0].Name != "Scanner 3F" || len(d.To) != 1 || d.To[0].Name != "Billing" {
		t.Errorf("header addresses from=%+v to=%+v", d.From, d.To)
	}
	if d.Subject != "Scan ✓ 2026-11-22" {
		t.Errorf("subject %q", d.Subject)
	}
	if d.Text != "Your scan is attached.\r\n" || !strings.Contains(d.HTML, "<b>attached</b>") {
		t.Errorf("bodies text=%q html=%q", d.Text, d.HTML)
	}
	if len(d.Attachments) != 2 {
		t.Fatalf("attachments: %+v", d.Attachments)
	}
	for i, want := range []struct {
		name, ctype string
		body        []byte
	}{{"scan.pdf", "application/pdf", pdf}, {"totals.csv", "text/csv", csv}} {
		got := d.Attachments[i]
		if got.Filename != want.name || got.ContentType != want.ctype || got.Size != int64(len(want.body)) || got.SHA256 != sum(want.body) || !bytes.Equal(got.Content, want.body) {
			t.Errorf("attachment %d = %s %s %d %s, want %s %s %d %s", i, got.Filename, got.ContentType, got.Size, got.SHA256, want.name, want.ctype, len(want.body), sum(want.body))
		}
	}
	if d.Client.IP != "127.0.0.1" || d.Client.HELO != "scanner.lan" {
		t.Errorf("client %+v", d.Client)
	}
	if len(d.ParseErrors) != 0 {
		t.Errorf("parse errors on a clean message: %+v", d.ParseErrors)
	}
	if !strings.Contains(d.Raw.Key, id) || d.Raw.Size <= int64(buf.Len()) {
		t.Errorf("raw reference %+v", d.Raw)
	}
	// Without delivery.public_url the link is to the admin listener's
	// address; it needs no admin token (links_test.go has the rest).
	if !strings.HasPrefix(d.Raw.URL, "http://"+a.AdminAddr().String()+"/v1/links/"+id+"/raw?") {
		t.Errorf("raw URL %q is not a signed link to the admin listener", d.Raw.URL)
	} else if resp, err := http.Get(d.Raw.URL); err != nil {
		t.Errorf("raw URL: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("Received: ")) || sum(b) != d.Raw.SHA256 {
			t.Errorf("raw URL does not lead to the stored message: %d, %d bytes", resp.StatusCode, len(b))
		}
	}
	var received bool
	for _, hd := range d.Headers {
		if hd.Name == "Received" && strings.Contains(hd.Value, "id "+id) {
			received = true
		}
	}
	if !received {
		t.Errorf("no Received header with the id among %+v", d.Headers)
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + a.AdminAddr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d", path, resp.StatusCode)
		}
	}
}

func TestEndToEndDirectoryAndRefusals(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	a := boot(t, cfg)
	addr := a.SMTPAddrs()[0].String()

	if _, err := send(t, addr, "a@lan", []string{"x@nowhere.test"}, []byte("Subject: x\r\n\r\nx\r\n")); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("unroutable recipient: %v, want 550", err)
	}
	reply, err := send(t, addr, "a@lan", []string{"drop@files.test"}, []byte("Subject: to disk\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(reply, "OK ")
	want := filepath.Join(cfg.DataDir, "outbox", id+".files.json")
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(want)
		if err == nil {
			var ev webhook.ReceivedEvent
			if err := json.Unmarshal(b, &ev); err != nil || ev.Data.Subject != "to disk" {
				t.Fatalf("payload file: %v %+v", err, ev.Data.Subject)
			}
			break
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(filepath.Dir(want))
			t.Fatalf("no payload at %s (dir has %v)", want, entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The spool holds an accepted message until the store takes it: a store
// that fails after the 250 delays delivery and loses nothing.
func TestStoreFailureAfterAcceptLosesNothing(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	a := boot(t, cfg)
	// Sabotage the store: its objects directory becomes a file, so every
	// write fails the way a broken disk would.
	objects := filepath.Join(cfg.DataDir, "store", "objects")
	if err := os.RemoveAll(objects); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(objects, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	reply, err := send(t, a.SMTPAddrs()[0].String(), "a@lan", []string{"x@app.test"}, []byte("Subject: held\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	h.mu.Lock()
	n := len(h.reqs)
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("delivered %d times while the store was broken", n)
	}
	if err := os.Remove(objects); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(objects, 0o750); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.mu.Lock()
		n := len(h.reqs)
		h.mu.Unlock()
		if n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s not delivered after the store came back", reply)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func asSMTPError(err error, se **smtp.SMTPError) bool {
	e, ok := err.(*smtp.SMTPError)
	if ok {
		*se = e
	}
	return ok
}

// A start-up failure (here the SMTP port is taken) is an error that names
// the listener, and releases what was opened so a retry can succeed.
func TestNewFailsCleanlyWhenPortTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := testConfig(t, "http://127.0.0.1:9/")
	cfg.Listeners[0].Addr = l.Addr().String()
	_, err = app.New(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "listeners smtp") {
		t.Fatalf("New with a taken port: %v", err)
	}
	// The queue file lock was released: a second gateway can open it.
	cfg.Listeners[0].Addr = "127.0.0.1:0"
	a, err := app.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New after a failed New: %v", err)
	}
	a.Close()
}
