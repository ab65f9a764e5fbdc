// Package gmailtest is a loopback stand-in for the Gmail API's
// users.messages.send media upload
// (POST /upload/gmail/v1/users/{userId}/messages/send?uploadType=media,
// Content-Type message/rfc822), checking bearer tokens against a
// googletest token endpoint (the token's subject must be the userId, or
// userId "me", and its scopes must allow sending) and answering errors in
// Google's JSON error shape with Google's statuses. It records every
// request with its body.
package gmailtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/oauthtok/googletest"
	"github.com/postern/postern/internal/oauthtok/oauthtest"
)

// MaxBytes is the media upload's documented limit for a message (35 MB).
const MaxBytes = 35 << 20

// Request is one request the server received, as it arrived.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// Failure is a scripted error answer.
type Failure struct {
	Status     int
	RetryAfter string // Retry-After header value, if any
	Reason     string // errors[0].reason, e.g. insufficientPermissions
	Message    string // empty sends a bare status
}

// Throttled is a 429 with a Retry-After in whole seconds.
func Throttled(after time.Duration) Failure {
	return Failure{Status: http.StatusTooManyRequests, RetryAfter: strconv.Itoa(int(after / time.Second)),
		Reason: "rateLimitExceeded", Message: "Too many concurrent requests for user."}
}

// Unavailable is a bare 503.
func Unavailable() Failure { return Failure{Status: http.StatusServiceUnavailable} }

// DailyLimit is Gmail's answer when the mailbox used up its sending limit.
func DailyLimit() Failure {
	return Failure{Status: http.StatusForbidden, Reason: "dailyLimitExceeded", Message: "Daily Limit Exceeded"}
}

// Unauthenticated is Google's answer to an invalid or expired token.
func Unauthenticated() Failure {
	return Failure{Status: http.StatusUnauthorized, Reason: "authError",
		Message: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."}
}

// InsufficientScopes is Google's answer to a token without a sending scope.
func InsufficientScopes() Failure {
	return Failure{Status: http.StatusForbidden, Reason: "insufficientPermissions",
		Message: "Request had insufficient authentication scopes."}
}

// Sent is a message the server accepted.
type Sent struct {
	ID, ThreadID, UserID string
	Raw                  []byte
}

// sendScopes allow messages.send.
var sendScopes = map[string]bool{
	"https://www.googleapis.com/auth/gmail.send":    true,
	"https://www.googleapis.com/auth/gmail.compose": true,
	"https://www.googleapis.com/auth/gmail.modify":  true,
	"https://mail.google.com/":                      true,
}

// script gives Server FailNext and Requests.
type script = oauthtest.Script[Request, Failure]

// Server is the stand-in. Its zero value is not usable; call New.
type Server struct {
	URL string // base URL, for gmailrelay.Config.BaseURL

	auth *googletest.Server
	script

	mu   sync.Mutex
	sent []Sent
}

// New starts a server on a loopback port, closed when t ends, that takes
// the tokens auth issued.
func New(t testing.TB, auth *googletest.Server) *Server {
	s := &Server{auth: auth}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// Sent returns the messages accepted so far.
func (s *Server) Sent() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sent(nil), s.sent...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, MaxBytes+1))
	if f, ok := s.Record(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
		Header: r.Header.Clone(), Body: body}); ok {
		fail(w, f)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rest, ok := strings.CutPrefix(r.URL.Path, "/upload/gmail/v1/users/")
	userID, ok2 := strings.CutSuffix(rest, "/messages/send")
	if !ok || !ok2 || userID == "" || strings.Contains(userID, "/") {
		fail(w, Failure{Status: http.StatusNotFound, Message: "Not Found", Reason: "notFound"})
		return
	}
	if r.Method != http.MethodPost {
		fail(w, Failure{Status: http.StatusMethodNotAllowed, Reason: "httpMethodNotAllowed", Message: "Method Not Allowed"})
		return
	}
	if ut := r.URL.Query().Get("uploadType"); ut != "media" {
		fail(w, Failure{Status: http.StatusBadRequest, Reason: "invalidArgument", Message: "Invalid upload type: " + ut})
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	is, valid := s.auth.Lookup(tok)
	if !ok || !valid {
		fail(w, Unauthenticated())
		return
	}
	allowed := false
	for sc := range strings.FieldsSeq(is.Scope) {
		allowed = allowed || sendScopes[sc]
	}
	if !allowed {
		fail(w, InsufficientScopes())
		return
	}
	if userID != "me" && !strings.EqualFold(userID, is.Subject) {
		fail(w, Failure{Status: http.StatusForbidden, Reason: "forbidden", Message: "Delegation denied for " + is.Subject})
		return
	}
	if len(body) > MaxBytes {
		fail(w, Failure{Status: http.StatusRequestEntityTooLarge, Reason: "uploadTooLarge", Message: "Media is too large"})
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "message/rfc822" {
		fail(w, Failure{Status: http.StatusBadRequest, Reason: "badContent", Message: "Media type '" + ct + "' is not supported. Valid media types: [message/*]"})
		return
	}
	msg, err := mail.ReadMessage(bytes.NewReader(body))
	if err != nil {
		fail(w, Failure{Status: http.StatusBadRequest, Reason: "invalidArgument", Message: "Invalid message"})
		return
	}
	n := 0
	for _, h := range []string{"To", "Cc", "Bcc"} {
		if v := msg.Header.Get(h); v != "" {
			list, err := mail.ParseAddressList(v)
			if err != nil {
				fail(w, Failure{Status: http.StatusBadRequest, Reason: "invalidArgument", Message: "Invalid " + h + " header"})
				return
			}
			n += len(list)
		}
	}
	if n == 0 {
		fail(w, Failure{Status: http.StatusBadRequest, Reason: "invalidArgument", Message: "Recipient address required"})
		return
	}
	sent := Sent{ID: id(), UserID: userID, Raw: body}
	sent.ThreadID = sent.ID
	s.sent = append(s.sent, sent)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	json.NewEncoder(w).Encode(map[string]any{"id": sent.ID, "threadId": sent.ThreadID, "labelIds": []string{"SENT"}})
}

// fail writes f in Google's error shape.
func fail(w http.ResponseWriter, f Failure) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Message == "" {
		w.WriteHeader(f.Status)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(f.Status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": f.Status, "message": f.Message, "status": statusName(f.Status),
		"errors": []map[string]string{{"message": f.Message, "domain": "global", "reason": f.Reason}},
	}})
}

func statusName(code int) string {
	switch code {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 503:
		return "UNAVAILABLE"
	}
	if code >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

func id() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
