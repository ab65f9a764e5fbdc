package graphtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Access is what an app may do with one mailbox, as Exchange Online decides
// it from the token's roles, RBAC for Applications and application access
// policies.
type Access int

const (
	// Granted: the app may read the mailbox's mail (Mail.Read,
	// Mail.ReadWrite, from Entra consent or an Exchange role assignment).
	Granted Access = iota
	// NoPermission: the app holds no mail permission at all.
	NoPermission
	// Excluded: the app holds the permission, but an application access
	// policy (or an RBAC scope) leaves this mailbox out.
	Excluded
)

// Folders is a stand-in for Graph's
// GET /v1.0/users/{id | userPrincipalName}/mailFolders/{id or well-known name},
// following the published contract and the order Graph applies its checks
// in: the bearer token (401 InvalidAuthenticationToken), the app's
// permission (403 ErrorAccessDenied), the user (404 ErrorInvalidUser), the
// mailbox being in Exchange Online (404 MailboxNotEnabledForRESTAPI), then
// the access policy (403 ErrorAccessDenied with the policy's text); a
// readable folder is 200 with its JSON. It records every request.
type Folders struct {
	URL string // base, e.g. http://127.0.0.1:port/v1.0

	access func(token, mailbox string) (valid bool, a Access)

	mu      sync.Mutex
	boxes   map[string]bool // lower-case address -> in Exchange Online
	reqs    []Request
	pending []Failure
}

// NewFolders starts a Folders on a loopback port, closed when t ends.
// access says whether a bearer token is valid and what it may do with a
// mailbox.
func NewFolders(t testing.TB, access func(token, mailbox string) (valid bool, a Access)) *Folders {
	f := &Folders{access: access, boxes: map[string]bool{}}
	hs := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(hs.Close)
	f.URL = hs.URL + "/v1.0"
	return f
}

// AddMailbox adds an Exchange Online mailbox.
func (f *Folders) AddMailbox(addr string) { f.add(addr, true) }

// AddOnPremises adds a user whose mailbox Graph cannot reach: on-premises,
// inactive or soft-deleted.
func (f *Folders) AddOnPremises(addr string) { f.add(addr, false) }

func (f *Folders) add(addr string, online bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.boxes[strings.ToLower(addr)] = online
}

// FailNext queues failures answered, in order, to the next requests that
// carry a valid token.
func (f *Folders) FailNext(fs ...Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = append(f.pending, fs...)
}

// Requests returns a copy of the requests received so far.
func (f *Folders) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.reqs...)
}

// PolicyBlocked is Graph's answer when an application access policy leaves
// the mailbox out.
func PolicyBlocked() Failure {
	return Failure{Status: http.StatusForbidden, Code: "ErrorAccessDenied",
		Message: "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."}
}

func (f *Folders) serve(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()}
	rec.Token, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1.0/users/")
	seg := strings.Split(rest, "/")
	if ok && len(seg) == 3 && seg[1] == "mailFolders" && seg[2] != "" {
		rec.Mailbox, _ = url.PathUnescape(seg[0])
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, rec)
	f.mu.Unlock()

	if rec.Mailbox == "" {
		writeErr(w, Failure{Status: http.StatusNotFound, Code: "BadRequest", Message: "Resource not found for the segment '" + seg[0] + "'."})
		return
	}
	if r.Method != http.MethodGet {
		writeErr(w, Failure{Status: http.StatusMethodNotAllowed, Code: "BadRequest", Message: "Method not allowed."})
		return
	}
	if rec.Token == "" {
		writeErr(w, Failure{Status: http.StatusUnauthorized, Code: "InvalidAuthenticationToken", Message: "Access token is empty."})
		return
	}
	valid, access := f.access(rec.Token, rec.Mailbox)
	if !valid {
		writeErr(w, Unauthorized())
		return
	}
	f.mu.Lock()
	var fail *Failure
	if len(f.pending) > 0 {
		fail = &f.pending[0]
		f.pending = f.pending[1:]
	}
	online, known := f.boxes[strings.ToLower(rec.Mailbox)]
	f.mu.Unlock()
	switch {
	case fail != nil:
		writeErr(w, *fail)
	case access == NoPermission:
		writeErr(w, AccessDenied())
	case !known:
		writeErr(w, Failure{Status: http.StatusNotFound, Code: "ErrorInvalidUser", Message: "The requested user '" + rec.Mailbox + "' is invalid."})
	case !online:
		writeErr(w, NotRESTEnabled())
	case access == Excluded:
		writeErr(w, PolicyBlocked())
	default:
		folder, _ := url.PathUnescape(seg[2])
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"@odata.context": f.URL + "/$metadata#users('" + url.PathEscape(rec.Mailbox) + "')/mailFolders(id)/$entity",
			"id":             "AAMkADFolder" + strings.ToUpper(folder[:1]) + "=",
		})
	}
}
