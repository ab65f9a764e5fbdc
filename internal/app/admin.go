package app

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/internal/atomicfile"
	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/console"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// AdminTokenFile is the name, under data_dir, of the admin token the gateway
// generates at first start when admin.token is not set.
const AdminTokenFile = "admin-token"

// AdminTokenPath returns where the generated admin token lives for cfg.
func AdminTokenPath(cfg *config.Config) string { return cfg.Path(AdminTokenFile) }

// AdminToken returns the token the admin API of a gateway run with cfg
// requires: admin.token when set, else the one generated into data_dir. An
// error wrapping fs.ErrNotExist means no gateway has started with this
// data_dir yet.
func AdminToken(cfg *config.Config) (string, error) {
	if cfg.Admin.Token != "" {
		tok, err := config.ResolveSecret(cfg.Admin.Token)
		if err != nil {
			return "", fmt.Errorf("admin.token: %w", err)
		}
		if tok == "" {
			return "", errors.New("admin.token: the value is empty; set a token (at least 32 random characters) or remove admin.token to have one generated into data_dir")
		}
		return tok, nil
	}
	return readTokenFile(AdminTokenPath(cfg))
}

// minTokenFileLen keeps a hand-edited token file from weakening the API;
// a generated token is 43 characters.
const minTokenFileLen = 32

func readTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("admin token: %s has mode %#o, so other users can read it; run chmod 600 %s, or delete it to have a new token generated", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minTokenFileLen {
		return "", fmt.Errorf("admin token: %s holds %d characters, fewer than %d; delete it to have a new token generated", path, len(tok), minTokenFileLen)
	}
	return tok, nil
}

// ensureTokenFile returns the token in path, creating it (0600, 32 random
// bytes in base64url) when there is none.
func ensureTokenFile(path string) (tok string, created bool, err error) {
	tok, err = readTokenFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, false, err
	}
	dir := filepath.Dir(path)
	cannot := func(err error) error {
		return fmt.Errorf("admin token: cannot write %s: %w; make data_dir writable by the gateway's user, or set admin.token", path, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, cannot(err)
	}
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	tok = base64.RawURLEncoding.EncodeToString(b[:])
	f, err := os.CreateTemp(dir, ".admin-token.tmp-*") // 0600
	if err != nil {
		return "", false, cannot(err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, cannot(err)
	}
	// Linked, not renamed, into place: of two gateways starting on one
	// data_dir at once, the second keeps the first one's token rather than
	// replacing the token the first one already serves with.
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		tok, err = readTokenFile(path)
		return tok, false, err
	} else if err != nil {
		return "", false, cannot(err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return "", false, cannot(err)
	}
	return tok, true, nil
}

// loadAdminToken sets the token every admin request but /healthz and
// /readyz must carry: admin.token, or one kept in data_dir. Loopback is no
// exception, since any local process and any page a local browser opens
// can reach loopback.
func (a *App) loadAdminToken() error {
	if a.cfg.Admin.Token == "" && a.cfg.Admin.Addr == "" {
		return nil
	}
	if a.cfg.Admin.Token != "" {
		tok, err := AdminToken(a.cfg)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		a.adminToken = tok
		return nil
	}
	path := AdminTokenPath(a.cfg)
	tok, created, err := ensureTokenFile(path)
	if err != nil {
		return fmt.Errorf("admin.token is not set, so the gateway uses a generated one: %w", err)
	}
	a.adminToken = tok
	msg := "admin API token in use"
	if created {
		msg = "admin API token generated"
	}
	a.log.Info(msg, slog.String("stage", "gateway"), slog.String("token_file", path),
		slog.String("usage", "send Authorization: Bearer $(cat "+path+"); the gateway CLI commands read it themselves"))
	return nil
}

// adminHandler serves /healthz (the process is alive), /readyz (the store
// and queue answer, the spool writes and its mover is not stuck, and the
// gateway is not draining), /metrics, the /v1 operations API and, when
// admin.pprof is on, /debug/pprof. adminGate guards all but the first two.
func (a *App) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /v1/devices", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, a.devices.list())
	})
	mux.HandleFunc("GET /v1/trace/{id}", withMsgID(func(w http.ResponseWriter, r *http.Request, id postern.MsgID) {
		evs, err := trace.Read(r.Context(), a.store, id, a.routes.Names())
		if err != nil {
			http.Error(w, "no such message", http.StatusNotFound)
			return
		}
		writeJSON(w, evs)
	}))
	mux.HandleFunc("POST /v1/replay/{id}", withMsgID(func(w http.ResponseWriter, r *http.Request, id postern.MsgID) {
		var req ReplayRequest
		if err := decodeBody(r, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// ?route= is what the API took before the JSON body; both may be
		// given only when they agree.
		if q := r.URL.Query().Get("route"); q != "" {
			if req.Route != "" && req.Route != q {
				http.Error(w, "the route in the query and in the body differ; give it once, in the body", http.StatusBadRequest)
				return
			}
			req.Route = q
		}
		msg, err := replay(r.Context(), a.be, a.routes, a.cfg.Limits.MaxHeaderBytes, id, req.Route)
		if err != nil {
			status := replayStatus(err)
			if status >= 500 {
				a.log.Error("replay failed", slog.String("msg_id", id.String()), slog.String("route", req.Route), slog.Any("err", err))
			}
			http.Error(w, err.Error(), status)
			return
		}
		a.log.Info("replayed", slog.String("msg_id", id.String()), slog.String("route", req.Route))
		writeJSON(w, map[string]string{"result": msg})
	}))
	mux.HandleFunc("POST /v1/redrive/{queue}", func(w http.ResponseWriter, r *http.Request) {
		if err := decodeBody(r, &struct{}{}); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n, err := a.redrive(r.Context(), r.PathValue("queue"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		writeJSON(w, map[string]int{"moved": n})
	})
	a.mountLinks(mux)
	a.mountContracts(mux)
	a.mountMessages(mux)
	a.mountConsole(mux)
	// Profiles show memory contents and cost CPU: only on request, and
	// behind the gate like every operator endpoint.
	if a.cfg.Admin.PProf {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return a.adminGate(mux)
}

// ReplayRequest is the JSON body of POST /v1/replay/{id}.
type ReplayRequest struct {
	// Route, when set, delivers to that route only; it must be the route
	// the message's recipients match. Empty parses and routes anew.
	Route string `json:"route,omitempty"`
}

// replayStatus maps replay's errors to HTTP: the operator's mistakes are
// 4xx with the reason, the rest 500.
func replayStatus(err error) int {
	switch {
	case errors.Is(err, errNoSuchRoute):
		return http.StatusBadRequest
	case errors.Is(err, errRouteNotForMessage):
		return http.StatusConflict
	case errors.Is(err, blob.ErrNotFound):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// decodeBody reads an optional JSON object (adminGate has checked the
// content type); unknown fields are errors, so a typo is not ignored.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("request body: %v", err)
	}
	return nil
}

// adminGate admits a request to anything but /healthz and /readyz (left open
// for load balancers and orchestrators, and they tell nothing secret) only
// when all of these hold, each closing a way for a web page to drive the
// API through the operator's browser or for a local process to use it:
//
//   - Host names this listener (the admin address, a localhost name or
//     the gateway's hostname, with the admin port; any IP literal when
//     the listener is bound to a wildcard). Otherwise 421 Misdirected
//     Request (RFC 9110 15.5.20: this server does not serve that origin),
//     which is what a DNS-rebinding page gets: its own name as Host.
//   - No foreign Origin and no Sec-Fetch-Site other than same-origin or
//     none. Otherwise 403: a cross-origin page's request is refused even
//     before the token is looked at.
//   - Authorization: Bearer with the admin token. Otherwise 401.
//   - Anything but GET and HEAD carries Content-Type application/json.
//     Otherwise 415: an HTML form or a no-cors fetch cannot send that type
//     without a CORS preflight, which this listener never grants.
//
// A GET or HEAD of a signed link (under /v1/links/, see mountLinks) needs
// only the Host rule, which also takes delivery.public_url's host for it.
func (a *App) adminGate(next http.Handler) http.Handler {
	hosts := a.adminHosts()
	refused := &refusalLog{log: a.log}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		link := a.linkRequest(r)
		if !hosts.allows(r.Host) && !(link && a.linkHostOK(r.Host)) {
			refused.write(w, r, http.StatusMisdirectedRequest, "host", "misdirected request: Host must name the admin listener: admin.addr's host, hostname, localhost, 127.0.0.1 or [::1], with the admin port")
			return
		}
		if link {
			// A signed link is its own credential, checked by its handler
			// (admin_links.go), for applications without the admin token;
			// a browser opening it from the application's page is
			// cross-site, and it only reads.
			next.ServeHTTP(w, r)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !hosts.allowsOrigin(o) {
			refused.write(w, r, http.StatusForbidden, "origin", "forbidden: cross-origin requests are refused")
			return
		}
		if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
			refused.write(w, r, http.StatusForbidden, "sec_fetch_site", "forbidden: cross-site requests are refused")
			return
		}
		if !a.tokenOK(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="postern admin"`)
			refused.write(w, r, http.StatusUnauthorized, "token", "unauthorized: send Authorization: Bearer <admin token> (admin.token, or the file admin-token in data_dir)")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				refused.write(w, r, http.StatusUnsupportedMediaType, "content_type", "unsupported media type: send a JSON body with Content-Type: application/json")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// refusalLog answers and logs the gate's refusals at WARN, since one can
// be a page or a process trying the API: the first, then at most one line
// every refusalLogEvery with the number left out, so that a page that
// loops cannot flood the log.
type refusalLog struct {
	log *slog.Logger

	mu sync.Mutex
	// Guarded by mu: last is when the last line was written (zero before
	// the first); skipped counts the refusals since then that were not.
	last    time.Time
	skipped int
}

const refusalLogEvery = 10 * time.Second

func (l *refusalLog) write(w http.ResponseWriter, r *http.Request, status int, reason, text string) {
	http.Error(w, text, status)
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < refusalLogEvery {
		l.skipped++
		l.mu.Unlock()
		return
	}
	skipped := l.skipped
	l.last, l.skipped = now, 0
	l.mu.Unlock()
	// Host and Origin are the sender's words: cut short; never the
	// Authorization header.
	l.log.Warn("admin request refused", slog.String("stage", "admin"), slog.String("reason", reason), slog.Int("status", status),
		slog.String("method", r.Method), slog.String("path", clip(r.URL.Path)), slog.String("remote", r.RemoteAddr),
		slog.String("host", clip(r.Host)), slog.String("origin", clip(r.Header.Get("Origin"))),
		slog.String("sec_fetch_site", clip(r.Header.Get("Sec-Fetch-Site"))), slog.Int("refused_since_last_line", skipped))
}

func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

// tokenOK admits a request that carries the admin token (Authorization:
// Bearer), or else a logged-in browser's: its console session cookie, and
// for anything but GET and HEAD the session's CSRF token as well
// (console.Console.Admits). The console's page and assets, which hold the
// login form, need neither. A wrong token is refused even with a session.
func (a *App) tokenOK(r *http.Request) bool {
	if a.adminToken == "" {
		return false // no token known: nothing is admitted
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, got, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(a.adminToken)) == 1
	}
	return a.console != nil && (console.Public(r) || a.console.Admits(r))
}

// adminHostSet is what a request's Host may name: a host from names (or,
// with anyIP, any IP literal) with the listener's port.
type adminHostSet struct {
	port  string
	names map[string]bool // lower-case names and canonical IP strings
	anyIP bool            // wildcard bind: an IP literal cannot be a rebinding name
}

func (a *App) adminHosts() adminHostSet {
	hs := adminHostSet{names: map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}}
	if a.adminLn != nil {
		if ap, err := netip.ParseAddrPort(a.adminLn.Addr().String()); err == nil {
			hs.port = fmt.Sprint(ap.Port())
		}
	}
	if a.cfg.Hostname != "" {
		hs.names[strings.ToLower(a.cfg.Hostname)] = true
	}
	if host, _, err := net.SplitHostPort(a.cfg.Admin.Addr); err == nil {
		if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
			hs.anyIP = true
		} else if err == nil {
			hs.names[ip.Unmap().String()] = true
		} else {
			hs.names[strings.ToLower(host)] = true
		}
	}
	return hs
}

func (hs adminHostSet) allows(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: the default one, and a bracketed IPv6 literal loses its
		// brackets here as SplitHostPort would take them off.
		host, port = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), "80"
	}
	if port != hs.port || host == "" {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return false
		}
		return hs.anyIP || hs.names[ip.Unmap().String()]
	}
	return hs.names[strings.ToLower(host)]
}

// allowsOrigin admits the listener's own origins: the console it serves
// posts with Origin http://<a Host it allows>.
func (hs adminHostSet) allowsOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Path != "" || u.User != nil {
		return false // "null" (sandboxed frames, file: pages) included
	}
	return hs.allows(u.Host)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// redrive moves a local queue's dead-lettered jobs back to it.
func (a *App) redrive(ctx context.Context, name string) (int, error) {
	n, err := redriveLocal(ctx, a.q, name)
	if err == nil {
		a.log.Info("redrove dead-lettered jobs", slog.String("queue", name), slog.Int("jobs", n))
	}
	return n, err
}

func (a *App) ready(ctx context.Context) error {
	if a.draining.Load() {
		return errors.New("draining")
	}
	if err := a.listenersAccepting(); err != nil {
		return err
	}
	if err := a.diskReady(); err != nil {
		return err
	}
	if err := a.be.spool.ready(a.cfg.Delivery.StallAlarm.D()); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return a.be.ready(ctx)
}
