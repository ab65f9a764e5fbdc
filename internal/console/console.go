// Package console is the admin listener's web console: one page, one
// stylesheet and one script, embedded in the binary (nothing is loaded from
// elsewhere), and the cookie sessions a browser logs in with. The page reads
// the same /v1 API that scripts use.
package console

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"
)

//go:embed static
var static embed.FS

// Cookie and header names the page and the gate share.
const (
	CookieName = "postern_session"
	CSRFHeader = "X-Postern-CSRF"
)

// CSP is the Content-Security-Policy of the page and its assets: only its
// own script and stylesheet, only its own API, no inline code, framed by
// nobody, and frames only from the admin listener (the message's HTML).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// MailCSP is the policy of a message's HTML body shown in the console's
// sandboxed frame: inline styles and data: images only, so nothing remote
// (tracking pixels, fonts, stylesheets) is fetched, no script runs and no
// form can be sent.
const MailCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"

// sessionTTL is how long a login lasts; maxSessions bounds the memory a
// login loop can take.
const (
	sessionTTL  = 12 * time.Hour
	maxSessions = 1000
)

// assets are the files under /console/, the only ones served besides the
// page at /.
var assets = map[string]string{
	"app.js":  "text/javascript; charset=utf-8",
	"app.css": "text/css; charset=utf-8",
}

// Console serves the page and its assets and keeps the sessions.
type Console struct {
	Sessions *Sessions
	files    fs.FS
}

// New returns a console with no sessions.
func New() *Console {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return &Console{Sessions: NewSessions(sessionTTL, maxSessions), files: sub}
}

// Public reports whether r asks for what is served without a session: the
// page (which holds the login form) and its assets. The host and origin
// checks of the admin gate still apply to them.
func Public(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.URL.Path == "/" {
		return true
	}
	if len(r.URL.Path) > len("/console/") && r.URL.Path[:len("/console/")] == "/console/" {
		_, ok := assets[r.URL.Path[len("/console/"):]]
		return ok
	}
	return false
}

// Admits reports whether r is a logged-in browser's: it carries the cookie
// of a live session and, when it changes something (any method but GET and
// HEAD), that session's CSRF token in the X-Postern-CSRF header.
func (c *Console) Admits(r *http.Request) bool {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return false
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		_, _, ok := c.Sessions.Lookup(ck.Value)
		return ok
	}
	return c.Sessions.CSRFOK(ck.Value, r.Header.Get(CSRFHeader))
}

// Mount registers the page, its assets and the session endpoints:
//
//	GET /                  the page
//	GET /console/{file}    app.js, app.css
//	POST /v1/session       log in: the request carries the admin token
//	                       (Authorization: Bearer); sets the cookie and
//	                       returns {"csrf", "expires"}
//	GET /v1/session        the cookie's session: {"csrf", "expires"}
//	DELETE /v1/session     log out
//
// The caller's gate decides who gets this far.
func (c *Console) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		c.serve(w, r, "index.html", "text/html; charset=utf-8")
	})
	mux.HandleFunc("GET /console/{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		ct, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		c.serve(w, r, name, ct)
	})
	mux.HandleFunc("POST /v1/session", c.login)
	mux.HandleFunc("GET /v1/session", c.session)
	mux.HandleFunc("DELETE /v1/session", c.logout)
}

// SecurityHeaders sets what every console response carries.
func SecurityHeaders(h http.Header, csp string) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
}

func (c *Console) serve(w http.ResponseWriter, r *http.Request, name, ctype string) {
	b, err := fs.ReadFile(c.files, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	SecurityHeaders(w.Header(), CSP)
	w.Header().Set("Content-Type", ctype)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

type sessionReply struct {
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	// The gate admitted r by the token or by a session; only the token
	// logs in, so that a session cannot renew itself forever.
	if r.Header.Get("Authorization") == "" {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "log in with the admin token: Authorization: Bearer <token>"})
		return
	}
	if ck, err := r.Cookie(CookieName); err == nil {
		c.Sessions.Delete(ck.Value) // a new login replaces the old session
	}
	id, csrf, expires := c.Sessions.Create()
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/", Expires: expires, MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	writeJSON(w, http.StatusCreated, sessionReply{CSRF: csrf, Expires: expires.UTC()})
}

func (c *Console) session(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(CookieName)
	if err == nil {
		if csrf, expires, ok := c.Sessions.Lookup(ck.Value); ok {
			writeJSON(w, http.StatusOK, sessionReply{CSRF: csrf, Expires: expires.UTC()})
			return
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "no console session: POST /v1/session with the admin token starts one"})
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(CookieName); err == nil {
		c.Sessions.Delete(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	w.WriteHeader(http.StatusNoContent)
}
