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
//
// and the caller registers Login, Session and Logout under /v1/session
// with its other API routes. The caller's gate decides who gets this far.
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

// SessionReply is the answer of Login and Session.
type SessionReply struct {
	// By is how the request was admitted: "session" (the cookie) or
	// "token" (the admin token; then there is no CSRF token).
	By      string    `json:"by"`
	CSRF    string    `json:"csrf,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Login (POST /v1/session) trades the admin token for a session: it sets
// the HttpOnly, SameSite=Strict cookie (Secure over TLS) and returns the
// CSRF token. Only a request that carries the token (the gate checked it)
// logs in, so that a session cannot renew itself forever.
func (c *Console) Login(w http.ResponseWriter, r *http.Request) {
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
	writeJSON(w, http.StatusCreated, SessionReply{By: "session", CSRF: csrf, Expires: expires.UTC()})
}

// Session (GET /v1/session) says how the request was admitted and, for a
// session, its CSRF token and expiry: the page asks at load.
func (c *Console) Session(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		writeJSON(w, http.StatusOK, SessionReply{By: "token"})
		return
	}
	ck, err := r.Cookie(CookieName)
	if err == nil {
		if csrf, expires, ok := c.Sessions.Lookup(ck.Value); ok {
			writeJSON(w, http.StatusOK, SessionReply{By: "session", CSRF: csrf, Expires: expires.UTC()})
			return
		}
	}
	// The gate admits no request without one or the other.
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "no console session: POST /v1/session with the admin token starts one"})
}

// Logout (DELETE /v1/session) ends the cookie's session and clears it.
func (c *Console) Logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(CookieName); err == nil {
		c.Sessions.Delete(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	w.WriteHeader(http.StatusNoContent)
}
