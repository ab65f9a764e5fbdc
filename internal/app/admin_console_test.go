package app_test

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/console"
	"github.com/postern/postern/internal/postern"
)

// consoleReq is one request from the console's page: the session cookie
// and CSRF header when given, and the headers a browser adds for a
// same-origin fetch.
type consoleReq struct {
	method, path, body string
	cookie, csrf       string
	token              string
	origin, ctype      string
}

func doConsole(t *testing.T, addr string, r consoleReq) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, "http://"+addr+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if r.origin != "" {
		req.Header.Set("Origin", r.origin)
	}
	if r.method != "GET" {
		req.Header.Set("Content-Type", "application/json")
		if r.ctype != "" {
			req.Header.Set("Content-Type", r.ctype)
		}
	}
	if r.cookie != "" {
		req.AddCookie(&http.Cookie{Name: console.CookieName, Value: r.cookie})
	}
	if r.csrf != "" {
		req.Header.Set(console.CSRFHeader, r.csrf)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	return roundTrip(t, req)
}

// consoleLogin logs in with the admin token and returns the session
// cookie's value and the CSRF token.
func consoleLogin(t *testing.T, addr, token string) (cookie, csrf string) {
	t.Helper()
	resp, body := doConsole(t, addr, consoleReq{method: "POST", path: "/v1/session", body: "{}", token: token, origin: "http://" + addr})
	if resp.StatusCode != 201 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName {
			cookie = c.Value
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/", c)
			}
		}
	}
	var s struct{ CSRF string }
	if err := json.Unmarshal([]byte(body), &s); err != nil || s.CSRF == "" || cookie == "" {
		t.Fatalf("login answered %q (%v), cookie %q", body, err, cookie)
	}
	if cookie == token || s.CSRF == token || strings.Contains(body, token) {
		t.Error("the session gives out the admin token")
	}
	return cookie, s.CSRF
}

// The console's page is open, the API is not; a login trades the token
// for a cookie that reads the API, changes something only with the CSRF
// token, and stops working at logout. The gate's other rules still apply
// to a logged-in browser.
func TestConsoleSessionGate(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	a := boot(t, testConfig(t, hs.URL))
	admin, token := a.AdminAddr().String(), testAdminToken
	own := "http://" + admin
	reply, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan", []string{"ops@app.test"}, []byte("Subject: scan\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(reply, "OK ")
	h.wait(t, 1, 20*time.Second)

	for _, path := range []string{"/", "/console/app.js", "/console/app.css"} {
		resp, body := doConsole(t, admin, consoleReq{method: "GET", path: path})
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != console.CSP || body == "" {
			t.Errorf("GET %s without a session: %d, CSP %q", path, resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
	}
	for _, path := range []string{"/v1/devices", "/v1/overview", "/v1/trace/" + id, "/metrics", "/v1/session", "/console/", "/index.html"} {
		if resp, _ := doConsole(t, admin, consoleReq{method: "GET", path: path}); resp.StatusCode != 401 {
			t.Errorf("GET %s without a session: %d, want 401", path, resp.StatusCode)
		}
	}
	if resp, _ := doConsole(t, admin, consoleReq{method: "POST", path: "/v1/session", body: "{}", token: "wrong-token-wrong-token-wrong-token"}); resp.StatusCode != 401 {
		t.Errorf("login with a wrong token: %d", resp.StatusCode)
	}

	cookie, csrf := consoleLogin(t, admin, token)
	for _, path := range []string{"/v1/devices", "/v1/overview", "/v1/trace/" + id, "/v1/session", "/v1/devices.csv"} {
		if resp, body := doConsole(t, admin, consoleReq{method: "GET", path: path, cookie: cookie}); resp.StatusCode != 200 {
			t.Errorf("GET %s with the session: %d %s", path, resp.StatusCode, body)
		}
	}
	replay := consoleReq{method: "POST", path: "/v1/replay/" + id, body: `{"route":"app"}`, cookie: cookie, csrf: csrf, origin: own}
	with := func(r consoleReq, f func(*consoleReq)) consoleReq { f(&r); return r }
	for _, c := range []struct {
		name string
		req  consoleReq
		want int
	}{
		{"no CSRF token", with(replay, func(r *consoleReq) { r.csrf = "" }), 401},
		{"a wrong CSRF token", with(replay, func(r *consoleReq) { r.csrf = csrf[:20] }), 401},
		{"the CSRF token without the cookie", with(replay, func(r *consoleReq) { r.cookie = "" }), 401},
		{"the CSRF token as the cookie", with(replay, func(r *consoleReq) { r.cookie = csrf }), 401},
		{"a foreign Origin", with(replay, func(r *consoleReq) { r.origin = "http://127.0.0.1:1" }), 403},
		{"a form's content type", with(replay, func(r *consoleReq) { r.ctype = "application/x-www-form-urlencoded" }), 415},
		{"a wrong token beside the session", with(replay, func(r *consoleReq) { r.token = "wrong-token-wrong-token-wrong-token" }), 401},
	} {
		if resp, body := doConsole(t, admin, c.req); resp.StatusCode != c.want {
			t.Errorf("replay with %s: %d %s, want %d", c.name, resp.StatusCode, body, c.want)
		}
	}
	if n := len(h.wait(t, 1, time.Second)); n != 1 {
		t.Fatalf("a refused replay delivered: %d webhook requests", n)
	}
	if resp, body := doConsole(t, admin, replay); resp.StatusCode != 200 {
		t.Fatalf("replay with session and CSRF token: %d %s", resp.StatusCode, body)
	}
	h.wait(t, 2, 20*time.Second)

	if resp, _ := doConsole(t, admin, consoleReq{method: "DELETE", path: "/v1/session", body: "{}", cookie: cookie, csrf: csrf, origin: own}); resp.StatusCode != 204 {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	if resp, _ := doConsole(t, admin, consoleReq{method: "GET", path: "/v1/devices", cookie: cookie}); resp.StatusCode != 401 {
		t.Errorf("the cookie still reads the API after logout: %d", resp.StatusCode)
	}
}

// The overview, the CSV and a message's parts as the console reads them.
func TestConsoleAPI(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	a := boot(t, cfg)
	admin := a.AdminAddr().String()
	msg := "Subject: pixel\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		`<p>Hi</p><img src="https://tracker.example/p.gif"><script>alert(1)</script>` + "\r\n"
	reply, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan", []string{"ops@app.test"}, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(reply, "OK ")
	h.wait(t, 1, 20*time.Second)
	cookie, _ := consoleLogin(t, admin, testAdminToken)

	resp, body := doConsole(t, admin, consoleReq{method: "GET", path: "/v1/overview", cookie: cookie})
	var ov struct {
		Ready  bool
		Queues []struct {
			Name        string
			DeadLetters int `json:"dead_letters"`
		}
		Devices  int
		Messages *struct {
			Hour, Day struct{ Accepted, Delivered, Failed, Pending int }
			Complete  bool
		}
	}
	if err := json.Unmarshal([]byte(body), &ov); err != nil || resp.StatusCode != 200 {
		t.Fatalf("overview: %d %s", resp.StatusCode, body)
	}
	if !ov.Ready || ov.Devices != 1 || len(ov.Queues) != 4 || ov.Queues[0].Name != "inbound" {
		t.Errorf("overview: %s", body)
	}
	if m := ov.Messages; m == nil || !m.Complete || m.Hour.Accepted != 1 || m.Day.Accepted != 1 || m.Hour.Delivered+m.Hour.Pending != 1 || m.Hour.Failed != 0 {
		t.Errorf("overview's message counts: %s", body)
	}

	resp, body = doConsole(t, admin, consoleReq{method: "GET", path: "/v1/messages/" + id + "/html", cookie: cookie})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != console.MailCSP {
		t.Errorf("html: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	if !strings.Contains(body, "<p>Hi</p>") || strings.Contains(body, "tracker.example") || strings.Contains(body, "<script") {
		t.Errorf("html body not sanitised: %s", body)
	}
	resp, body = doConsole(t, admin, consoleReq{method: "GET", path: "/v1/messages/" + id + "/parsed", cookie: cookie})
	if resp.StatusCode != 200 || !strings.Contains(body, `"subject": "pixel"`) && !strings.Contains(body, `"subject":"pixel"`) {
		t.Errorf("parsed: %d %s", resp.StatusCode, body)
	}
	// A long plain report: parsed.json names its text in raw.eml; the
	// webhook payload and the API both carry the text itself.
	report := strings.Repeat("00000042 invoice 2026-12 amount 1234.56 EUR <ok>\r\n", 2000)
	reply, err = send(t, a.SMTPAddrs()[0].String(), "scanner@lan", []string{"ops@app.test"}, []byte("Subject: report\r\n\r\n"+report))
	if err != nil {
		t.Fatal(err)
	}
	rid := strings.TrimPrefix(reply, "OK ")
	reqs := h.wait(t, 2, 20*time.Second)
	var ev struct{ Data struct{ Text string } }
	if err := json.Unmarshal(reqs[1].body, &ev); err != nil || ev.Data.Text != report {
		t.Errorf("the report's payload: %v, text %d bytes, want %d", err, len(ev.Data.Text), len(report))
	}
	store, err := fsblob.New(cfg.Path("store"), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stored, err := store.Get(t.Context(), postern.MsgID(rid).ParsedKey())
	if err != nil {
		t.Fatal(err)
	}
	storedJSON, _ := io.ReadAll(stored)
	stored.Close()
	if !strings.Contains(string(storedJSON), `"text_raw":[`) || len(storedJSON) > 16<<10 {
		t.Errorf("parsed.json of the report holds the text (%d bytes) or does not name it", len(storedJSON))
	}
	resp, body = doConsole(t, admin, consoleReq{method: "GET", path: "/v1/messages/" + rid + "/parsed", cookie: cookie})
	var pv struct {
		Text    string
		TextRaw any `json:"text_raw"`
	}
	if err := json.Unmarshal([]byte(body), &pv); err != nil || resp.StatusCode != 200 || pv.Text != report || pv.TextRaw != nil {
		t.Errorf("the report's parsed form: %d, %v, text %d bytes (want %d), text_raw %v", resp.StatusCode, err, len(pv.Text), len(report), pv.TextRaw)
	}

	if resp, _ := doConsole(t, admin, consoleReq{method: "GET", path: "/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV/html", cookie: cookie}); resp.StatusCode != 404 {
		t.Errorf("html of an unknown message: %d", resp.StatusCode)
	}

	// The raw message through its signed link, which needs no session.
	resp, body = doConsole(t, admin, consoleReq{method: "GET", path: "/v1/messages/" + id + "/links", cookie: cookie})
	var links struct{ Raw string }
	if err := json.Unmarshal([]byte(body), &links); err != nil || resp.StatusCode != 200 || !strings.HasPrefix(links.Raw, "http://"+admin+"/v1/links/"+id+"/raw?") {
		t.Fatalf("links: %d %s", resp.StatusCode, body)
	}
	raw, err := http.Get(links.Raw)
	if err != nil {
		t.Fatal(err)
	}
	rawBody, _ := io.ReadAll(raw.Body)
	raw.Body.Close()
	if raw.StatusCode != 200 || !strings.HasSuffix(string(rawBody), msg) {
		t.Errorf("raw link: %d %q", raw.StatusCode, rawBody)
	}

	resp, body = doConsole(t, admin, consoleReq{method: "GET", path: "/v1/devices.csv", cookie: cookie})
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || resp.StatusCode != 200 || len(rows) != 2 || rows[0][0] != "identity" {
		t.Fatalf("devices.csv: %d %v %q", resp.StatusCode, err, body)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.Contains(rows[1][8], "none=2") || !strings.Contains(rows[1][10], "plaintext") {
		t.Errorf("devices.csv row: %q", rows[1])
	}
}
