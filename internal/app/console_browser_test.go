package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/postern"
)

// screenshotDir is where the console's browser test writes a screenshot
// of each page: $POSTERN_SCREENSHOTS when set (CI keeps it as an
// artifact; README's images come from there), else a temporary directory.
func screenshotDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("POSTERN_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// consoleGateway boots a gateway with a webhook route (app), a directory
// route for a legacy scanner's mail (scans), and a TLS 1.0 submission
// listener where that scanner logs in with AUTH LOGIN.
func consoleGateway(t *testing.T) (a *app.App, h *hook, legacyAddr string) {
	t.Helper()
	h, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	pw, err := bcrypt.GenerateFromPassword([]byte("1234"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listeners = append(cfg.Listeners, config.Listener{Name: "legacy", Addr: "127.0.0.1:0", Mode: "submission", TLSMinVersion: "1.0"})
	cfg.Identities = append(cfg.Identities, config.Identity{Name: "scanner3f", PasswordHash: string(pw), Owner: "it@example.com"})
	cfg.Routes = append(cfg.Routes, config.Route{Name: "scans", Match: config.Match{Recipients: []string{"*@fabrikam.example"}},
		Directory: &config.Directory{Path: "outbox"}})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a = boot(t, cfg)
	return a, h, a.SMTPAddrs()[1].String()
}

// The flow in Debian's chromium, driven over the DevTools protocol:
// log in with the admin token, find a message by its recipient, open it,
// see its timeline, replay it and see the new attempt appear; the devices
// page lists the scanner that used TLS 1.0 and AUTH LOGIN. A screenshot of
// each page goes to screenshotDir.
func TestConsoleInChromium(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a browser")
	}
	browser := needChromium(t)
	a, h, legacy := consoleGateway(t)
	admin := "http://" + a.AdminAddr().String()

	// A tracking pixel on a server the test watches: opening the message
	// must not fetch it.
	var pixelHits atomic.Int32
	pixel := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { pixelHits.Add(1) }))
	defer pixel.Close()
	reply, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan", []string{"ops@app.test"},
		[]byte("From: Scanner <scanner@lan>\r\nTo: ops@app.test\r\nSubject: Invoice 0042\r\nMIME-Version: 1.0\r\n"+
			"Content-Type: text/html; charset=utf-8\r\n\r\n<h1>Invoice 0042</h1><p>Total: 12.50</p><img src=\""+pixel.URL+"/p.gif\">"+
			"<div style=\"background:url("+pixel.URL+"/bg.gif)\">x</div>\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(reply, "OK ")
	h.wait(t, 1, 20*time.Second)
	for i := range 3 { // other mail, so that the search has something to leave out
		if _, err := send(t, a.SMTPAddrs()[0].String(), "printer@lan", []string{fmt.Sprintf("desk%d@files.test", i)}, []byte("Subject: page\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	m := okID.FindStringSubmatch(scan(t, legacy, []byte(scanMsg))) // TLS 1.0 and AUTH LOGIN, checked by scan
	if m == nil {
		t.Fatal("no message id in the scanner's transcript")
	}
	scanID := m[1]

	dir := screenshotDir(t)
	t.Logf("screenshots in %s", dir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000), chromedp.Flag("disable-extensions", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run as root with its sandbox
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, on a context without a deadline
		t.Fatalf("chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.CaptureScreenshot()(ctx, tg) // the viewport, as PNG
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, name), png, 0o644)
		})
	}
	fail := func(step string, err error) {
		t.Helper()
		body, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\npage text:\n%s", step, err, body)
	}
	do := func(step string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			fail(step, err)
		}
	}
	text := func(step string, sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			fail(step, err)
		}
		return s
	}
	count := func(step, css string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(css)+`).length`))
		if err != nil {
			fail(step, err)
		}
		return n
	}

	// Log in: a wrong token first, then the right one.
	do("login page", chromedp.Navigate(admin+"/"), chromedp.WaitVisible(chromedp.ID("token")), shot("login.png"),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#login-error:not(:empty)")))
	if msg := text("login error", "#login-error"); !strings.Contains(msg, "not the admin token") {
		t.Errorf("a wrong token says %q", msg)
	}
	do("log in", chromedp.SetValue(chromedp.ID("token"), testAdminToken), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#queues")), shot("overview.png"))
	if ready := text("health", ".card .big"); ready != "ready" {
		t.Errorf("overview health: %q", ready)
	}
	if cookies, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`)); err != nil || cookies != "" {
		t.Errorf("the page's script reads cookies %q (%v); the session cookie must be HttpOnly", cookies, err)
	}

	// Find the message by its recipient.
	row := chromedp.CSS(`#results tr[data-id="` + id + `"]`)
	do("search", chromedp.Click(chromedp.CSS(`nav a[data-page="messages"]`)), chromedp.WaitVisible(chromedp.ID("q-rcpt")),
		chromedp.SendKeys(chromedp.ID("q-rcpt"), "ops@app.test"), chromedp.Click(chromedp.CSS(`#search button[type="submit"]`)),
		chromedp.WaitVisible(row), shot("messages.png"))
	if n := count("results", "#results tbody tr"); n != 1 {
		t.Errorf("searching by recipient listed %d messages, want 1", n)
	}

	// Open it: its timeline shows the webhook delivery, its HTML is in a
	// sandboxed frame.
	delivered := `#timeline tr[data-stage="webhook"][data-event="delivered"]`
	do("open", chromedp.Click(chromedp.CSS(string(row)+" a")), chromedp.WaitVisible(chromedp.CSS(delivered)),
		chromedp.WaitVisible(chromedp.CSS("iframe.mail")), shot("message.png"))
	if h1 := text("subject", "#view h1"); h1 != "Invoice 0042" {
		t.Errorf("message page title %q", h1)
	}
	if n := count("attempts", delivered); n != 1 {
		t.Fatalf("timeline shows %d webhook deliveries before the replay, want 1", n)
	}
	// The frame has loaded the body (its load event waits for images),
	// and nothing remote was fetched for it.
	do("frame loaded", chromedp.WaitVisible(chromedp.CSS("iframe.mail[data-loaded]")))
	if n := pixelHits.Load(); n != 0 {
		t.Errorf("opening the message fetched its tracking pixel %d times", n)
	}
	if href, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("raw-link"), "href")); err != nil || !strings.HasPrefix(href.Value, admin+"/v1/links/"+id+"/raw?") {
		t.Errorf("the raw message's link is %+v (%v)", href, err)
	}
	if sb, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("iframe.mail"), "sandbox")); err != nil || !sb.Exists || sb.Value != "" {
		t.Errorf("the HTML frame's sandbox is %+v (%v), want an empty sandbox attribute", sb, err)
	}

	// Replay, with confirmation: the new attempt appears in the timeline.
	do("replay", chromedp.Click(chromedp.CSS("#replay button")), chromedp.WaitVisible(chromedp.CSS("#replay .confirm button.danger")),
		chromedp.Click(chromedp.CSS("#replay .confirm button.danger")))
	h.wait(t, 2, 30*time.Second)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll(`+strconv.Quote(delivered)+`).length >= 2`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		fail("the replayed attempt in the timeline", err)
	}
	do("replayed", shot("message-replayed.png"))

	// The devices page lists the scanner with its legacy allowances.
	scanner := chromedp.CSS(`tr[data-identity="scanner3f"]`)
	do("devices", chromedp.Click(chromedp.CSS(`nav a[data-page="devices"]`)), chromedp.WaitVisible(scanner), shot("devices.png"))
	device := text("device row", scanner)
	for _, want := range []string{"TLS below 1.2", "AUTH LOGIN", "TLS 1.0", "LOGIN"} {
		if !strings.Contains(device, want) {
			t.Errorf("the scanner's row lacks %q: %q", want, device)
		}
	}

	// From the list to the scanner's outbox file in two clicks: Messages
	// (newest first, so the scan is on top), then the message, whose
	// timeline names the file its directory route wrote.
	fileRow := `#timeline tr[data-stage="webhook"][data-event="delivered"] td.detail`
	do("outbox file", chromedp.Click(chromedp.CSS(`nav a[data-page="messages"]`)), chromedp.WaitVisible(chromedp.CSS("#results tbody tr")))
	if first, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#results tbody tr").dataset.id`)); err != nil || first != scanID {
		t.Errorf("the newest message listed is %q (%v), want the scan %s", first, err, scanID)
	}
	do("open the scan", chromedp.Click(chromedp.CSS("#results tbody tr a")), chromedp.WaitVisible(chromedp.CSS(fileRow)))
	if path := text("outbox file", chromedp.CSS(fileRow)); !strings.HasSuffix(path, ".json") || !strings.Contains(path, scanID) {
		t.Errorf("the scan's timeline names %q, want its outbox file", path)
	} else if _, err := os.Stat(path); err != nil {
		t.Errorf("the timeline's file: %v", err)
	}

	// Log out: the API no longer answers the browser.
	do("logout", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("token")))
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/v1/devices").then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != 401 {
		t.Errorf("after logout the browser's API call got %d (%v), want 401", status, err)
	}
	for _, f := range []string{"login.png", "overview.png", "messages.png", "message.png", "devices.png"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || !strings.HasPrefix(string(b), "\x89PNG\r\n") {
			t.Errorf("screenshot %s: not a PNG (%v)", f, err)
		}
	}
}

// The messages page says when the list may be missing messages: here the
// index was created beside a store that already held one, as after an
// upgrade, and only gateway reindex can add it.
func TestConsoleSaysIndexIncomplete(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a browser")
	}
	browser := needChromium(t)
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	st, err := fsblob.New(cfg.Path("store"), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	old := postern.NewMsgID()
	if err := st.Put(context.Background(), old.EnvelopeKey(), strings.NewReader(`{"v":1,"id":"`+string(old)+`"}`), nil); err != nil {
		t.Fatal(err)
	}
	st.Close()
	a := boot(t, cfg)
	admin := "http://" + a.AdminAddr().String()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.UserDataDir(t.TempDir()))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancel()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(admin+"/"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), testAdminToken), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#queues")),
		chromedp.Click(chromedp.CSS(`nav a[data-page="messages"]`)), chromedp.WaitVisible(chromedp.ID("index-incomplete"))); err != nil {
		body, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("messages page: %v\npage text:\n%s", err, body)
	}
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("index-incomplete")))
	if err != nil || !strings.Contains(msg, "may be missing") || !strings.Contains(msg, "reindex") {
		t.Errorf("notice %q (%v), want it to say messages may be missing and how to rebuild", msg, err)
	}
}
