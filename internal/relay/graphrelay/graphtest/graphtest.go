// Package graphtest is a loopback stand-in for Microsoft Graph's
// POST /v1.0/users/{id | userPrincipalName}/sendMail with MIME content,
// following the published contract: a bearer token, Content-Type
// text/plain, the message base64-encoded in the body, 202 Accepted with no
// body on success, and errors as {"error":{"code","message"}} with Graph's
// status codes. It records every request and checks tokens with a func, so
// tests can plug in entratest's Valid.
package graphtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one request the server received.
type Request struct {
	Method      string
	Path        string // decoded, e.g. /v1.0/users/scanner@contoso.com/sendMail
	Mailbox     string // the {id | userPrincipalName} segment, decoded
	ContentType string
	Token       string // the bearer token presented
	Header      http.Header
	Body        []byte // as received (base64 text)
	MIME        []byte // Body decoded; nil when it was not valid base64
}

// Failure is a scripted error answer.
type Failure struct {
	Status     int
	Code       string // Graph error code, e.g. ErrorAccessDenied
	Message    string
	RetryAfter string // Retry-After header value, if any
}

// Published error answers.
func Unauthorized() Failure {
	return Failure{Status: http.StatusUnauthorized, Code: "InvalidAuthenticationToken", Message: "Access token has expired or is not yet valid."}
}
func AccessDenied() Failure {
	return Failure{Status: http.StatusForbidden, Code: "ErrorAccessDenied", Message: "Access is denied. Check credentials and try again."}
}
func InvalidUser() Failure {
	return Failure{Status: http.StatusNotFound, Code: "ErrorInvalidUser", Message: "The requested user 'scanner@contoso.com' is invalid."}
}
func NotRESTEnabled() Failure {
	return Failure{Status: http.StatusNotFound, Code: "MailboxNotEnabledForRESTAPI", Message: "The mailbox is either inactive, soft-deleted, or is hosted on-premise."}
}
func TooLarge() Failure {
	return Failure{Status: http.StatusRequestEntityTooLarge, Code: "ErrorMessageSizeExceeded", Message: "The message exceeds the maximum supported size."}
}
func InvalidRecipients() Failure {
	return Failure{Status: http.StatusBadRequest, Code: "ErrorInvalidRecipients", Message: "At least one recipient is not valid."}
}
func Throttled(after time.Duration) Failure {
	return Failure{Status: http.StatusTooManyRequests, Code: "ApplicationThrottled", Message: "Application is over its MailboxConcurrency limit.",
		RetryAfter: strconv.Itoa(int(after / time.Second))}
}
func Unavailable(after time.Duration) Failure {
	f := Failure{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "Service Unavailable"}
	if after > 0 {
		f.RetryAfter = strconv.Itoa(int(after / time.Second))
	}
	return f
}

// Server is the stand-in; call New.
type Server struct {
	URL string // base, e.g. http://127.0.0.1:port/v1.0

	valid func(token string) bool
	mu    sync.Mutex
	reqs  []Request
	fails []Failure
	delay time.Duration
}

// New starts a server on a loopback port, closed when t ends. valid decides
// whether a bearer token is accepted (nil accepts any non-empty token).
func New(t testing.TB, valid func(token string) bool) *Server {
	s := &Server{valid: valid}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL + "/v1.0"
	return s
}

// FailNext queues failures answered, in order, to the next requests that
// carry a valid token.
func (s *Server) FailNext(f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, f...)
}

// SetDelay makes the server wait d (or until the client goes) before answering.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests returns a copy of the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := Request{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Header: r.Header.Clone(), Body: body}
	if mime, err := base64.StdEncoding.DecodeString(string(body)); err == nil {
		rec.MIME = mime
	}
	auth := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
		rec.Token = tok
	}
	rest, okPath := strings.CutPrefix(r.URL.EscapedPath(), "/v1.0/users/")
	seg, okSend := strings.CutSuffix(rest, "/sendMail")
	if okPath && okSend && !strings.Contains(seg, "/") {
		rec.Mailbox, _ = url.PathUnescape(seg)
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, rec)
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}

	switch {
	case rec.Mailbox == "":
		writeErr(w, Failure{Status: http.StatusNotFound, Code: "BadRequest", Message: "Resource not found for the segment."})
		return
	case r.Method != http.MethodPost:
		writeErr(w, Failure{Status: http.StatusMethodNotAllowed, Code: "BadRequest", Message: "Method not allowed."})
		return
	case rec.Token == "":
		writeErr(w, Failure{Status: http.StatusUnauthorized, Code: "InvalidAuthenticationToken", Message: "Access token is empty."})
		return
	case s.valid != nil && !s.valid(rec.Token):
		writeErr(w, Unauthorized())
		return
	}
	s.mu.Lock()
	var f *Failure
	if len(s.fails) > 0 {
		f = &s.fails[0]
		s.fails = s.fails[1:]
	}
	s.mu.Unlock()
	switch {
	case f != nil:
		writeErr(w, *f)
	case !strings.HasPrefix(rec.ContentType, "text/plain"):
		writeErr(w, Failure{Status: http.StatusBadRequest, Code: "ErrorInvalidRequest", Message: "Content-Type must be application/json or text/plain."})
	case rec.MIME == nil || len(bytes.TrimSpace(rec.MIME)) == 0:
		writeErr(w, Failure{Status: http.StatusBadRequest, Code: "ErrorMimeContentInvalidBase64String", Message: "Invalid base64 string for MIME content."})
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

func writeErr(w http.ResponseWriter, f Failure) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", "00000000-0000-0000-0000-000000000000")
	w.WriteHeader(f.Status)
	var e struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				Date      string `json:"date"`
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	e.Error.Code, e.Error.Message = f.Code, f.Message
	e.Error.InnerError.Date = time.Now().UTC().Format(time.RFC3339)
	e.Error.InnerError.RequestID = "00000000-0000-0000-0000-000000000000"
	_ = json.NewEncoder(w).Encode(e)
}
