package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSessionsExpireAndAreBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	s := NewSessions(time.Hour, 2)
	s.now = func() time.Time { return now }
	id, csrf, exp := s.Create()
	if !exp.Equal(now.Add(time.Hour)) {
		t.Errorf("expires %v", exp)
	}
	if got, _, ok := s.Lookup(id); !ok || got != csrf {
		t.Fatalf("fresh session: %q %v", got, ok)
	}
	if !s.CSRFOK(id, csrf) || s.CSRFOK(id, "") || s.CSRFOK(id, csrf+"x") || s.CSRFOK("", csrf) {
		t.Error("CSRFOK admits the wrong token or refuses the right one")
	}
	if _, _, ok := s.Lookup(csrf); ok {
		t.Error("the CSRF token works as a session id")
	}
	now = now.Add(time.Hour)
	if _, _, ok := s.Lookup(id); ok {
		t.Error("a session outlives its ttl")
	}
	// Bounded: a third login drops the session that expires first.
	a, _, _ := s.Create()
	now = now.Add(time.Minute)
	b, _, _ := s.Create()
	now = now.Add(time.Minute)
	c, _, _ := s.Create()
	if _, _, ok := s.Lookup(a); ok {
		t.Error("the oldest session survived past max")
	}
	for _, id := range []string{b, c} {
		if _, _, ok := s.Lookup(id); !ok {
			t.Error("a newer session was dropped")
		}
	}
	s.Delete(c)
	if _, _, ok := s.Lookup(c); ok {
		t.Error("a deleted session lives on")
	}
}

func TestAdmitsNeedsCookieAndCSRF(t *testing.T) {
	t.Parallel()
	c := New()
	id, csrf, _ := c.Sessions.Create()
	req := func(method, cookie, header string) *http.Request {
		r := httptest.NewRequest(method, "/v1/replay/x", nil)
		if cookie != "" {
			r.AddCookie(&http.Cookie{Name: CookieName, Value: cookie})
		}
		if header != "" {
			r.Header.Set(CSRFHeader, header)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		r    *http.Request
		want bool
	}{
		{"GET with session", req("GET", id, ""), true},
		{"GET without cookie", req("GET", "", ""), false},
		{"GET with an unknown session", req("GET", "nope", ""), false},
		{"POST with session and CSRF", req("POST", id, csrf), true},
		{"POST with session, no CSRF", req("POST", id, ""), false},
		{"POST with session, wrong CSRF", req("POST", id, csrf[:10]), false},
		{"POST with CSRF, no cookie", req("POST", "", csrf), false},
		{"DELETE with session, no CSRF", req("DELETE", id, ""), false},
	} {
		if got := c.Admits(tc.r); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPublicIsThePageAndItsAssetsOnly(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]bool{
		"/": true, "/console/app.js": true, "/console/app.css": true,
		"/console/": false, "/console/index.html": false, "/console/../v1/devices": false,
		"/v1/devices": false, "/metrics": false, "/v1/session": false, "/index.html": false,
	} {
		if got := Public(httptest.NewRequest("GET", "http://x"+path, nil)); got != want {
			t.Errorf("GET %s: public %v, want %v", path, got, want)
		}
	}
	if Public(httptest.NewRequest("POST", "/", nil)) {
		t.Error("POST / is public")
	}
}

// The page works offline and under its CSP: its files name nothing remote,
// hold no inline script, style or event handler, and load only their own
// files.
func TestAssetsSelfContained(t *testing.T) {
	t.Parallel()
	c := New()
	remote := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import`)
	err := fs.WalkDir(c.files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(c.files, path)
		if m := remote.Find(b); m != nil {
			t.Errorf("%s loads or names something remote: %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if css, _ := fs.ReadFile(c.files, "app.css"); strings.Contains(string(css), "url(") {
		t.Error("app.css loads a url()")
	}
	page, _ := fs.ReadFile(c.files, "index.html")
	for _, bad := range []string{"<script>", "style=", " onclick", " onload", "<style"} {
		if strings.Contains(string(page), bad) {
			t.Errorf("index.html holds %q, which the CSP refuses", bad)
		}
	}
	js, _ := fs.ReadFile(c.files, "app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"style\""} {
		if strings.Contains(string(js), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	srcs := regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllSubmatch(page, -1)
	for _, m := range srcs {
		if p := string(m[1]); p != "/console/app.js" && p != "/console/app.css" && p != "/" {
			t.Errorf("index.html loads %s", p)
		}
	}
}

func TestMountServesWithCSP(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	New().Mount(mux)
	for _, path := range []string{"/", "/console/app.js", "/console/app.css"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			t.Errorf("%s: %d", path, w.Code)
			continue
		}
		csp := w.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %s", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP allows unsafe code: %q", path, csp)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", path)
		}
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/console/console.go", nil))
	if w.Code != 404 {
		t.Errorf("an unknown asset: %d", w.Code)
	}
}

func TestLoginSetsStrictCookieAndNeedsTheToken(t *testing.T) {
	t.Parallel()
	c := New()
	mux := http.NewServeMux()
	c.Mount(mux)
	mux.HandleFunc("POST /v1/session", c.Login)
	mux.HandleFunc("DELETE /v1/session", c.Logout)
	// The gate has checked the token; the handler only sees that one was sent.
	r := httptest.NewRequest("POST", "/v1/session", strings.NewReader("{}"))
	r.Header.Set("Authorization", "Bearer checked-by-the-gate")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != 201 {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	ck := w.Result().Cookies()
	if len(ck) != 1 || ck[0].Name != CookieName || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != "/" || ck[0].Secure {
		t.Fatalf("cookie: %+v", ck)
	}
	if strings.Contains(w.Body.String(), ck[0].Value) {
		t.Error("the session id is in the body, where a script could read it")
	}
	// A session cannot log in again by itself.
	r = httptest.NewRequest("POST", "/v1/session", strings.NewReader("{}"))
	r.AddCookie(ck[0])
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != 403 {
		t.Errorf("login with a cookie and no token: %d", w.Code)
	}
	// Logout ends the session.
	r = httptest.NewRequest("DELETE", "/v1/session", nil)
	r.AddCookie(ck[0])
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if _, _, ok := c.Sessions.Lookup(ck[0].Value); ok || w.Code != 204 {
		t.Errorf("after logout (%d) the session lives on: %v", w.Code, ok)
	}
}
