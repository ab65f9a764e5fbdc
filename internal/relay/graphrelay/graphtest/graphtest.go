// Package graphtest is a loopback stand-in for the Microsoft Graph mail
// endpoints a relay uses, following the published contracts: sendMail with
// MIME; a draft created from MIME (POST /users/{id}/messages), updated with
// extended properties (PATCH), given attachments by JSON POST or upload
// session (createUploadSession, then PUT byte ranges to a pre-authenticated
// URL that takes no Authorization header), sent (POST .../send, 202) or
// deleted (DELETE, 204). Errors are {"error":{"code","message"}} with
// Graph's status codes, injectable per endpoint. It records every request,
// keeps the mailbox's drafts and Sent Items, and checks tokens with a func,
// so tests can plug in entratest's Valid.
package graphtest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
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

// Endpoint names one Graph operation.
type Endpoint string

// The endpoints served.
const (
	SendMail            Endpoint = "sendMail"            // POST /users/{id}/sendMail
	CreateMessage       Endpoint = "createMessage"       // POST /users/{id}/messages
	UpdateMessage       Endpoint = "updateMessage"       // PATCH /users/{id}/messages/{id}
	DeleteMessage       Endpoint = "deleteMessage"       // DELETE /users/{id}/messages/{id}
	SendDraft           Endpoint = "send"                // POST /users/{id}/messages/{id}/send
	AddAttachment       Endpoint = "addAttachment"       // POST /users/{id}/messages/{id}/attachments
	CreateUploadSession Endpoint = "createUploadSession" // POST .../attachments/createUploadSession
	UploadRange         Endpoint = "uploadRange"         // PUT {uploadUrl}
)

// DeleteAfterSubmit is the key of PidTagDeleteAfterSubmit in
// Message.ExtendedProperties, which holds proptag ids as "{type} 0x{id}"
// whether they came with the property id alone or the whole tag.
const DeleteAfterSubmit = "Boolean 0x0E01"

// Request is one request the server received.
type Request struct {
	Endpoint    Endpoint // "" for a path the server does not serve
	Method      string
	Path        string // decoded, e.g. /v1.0/users/scanner@contoso.com/sendMail
	Mailbox     string // the {id | userPrincipalName} segment, decoded
	MessageID   string // the message id segment, decoded, if any
	ContentType string
	Token       string // the bearer token presented
	Header      http.Header
	Body        []byte // as received
	MIME        []byte // Body base64-decoded for sendMail and createMessage; nil when not valid base64
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
func ItemNotFound() Failure {
	return Failure{Status: http.StatusNotFound, Code: "ErrorItemNotFound", Message: "The specified object was not found in the store."}
}

// Limits are the sizes the server enforces; DefaultLimits are Graph's.
type Limits struct {
	MaxRequestBytes       int // a request body (MIME as base64, attachment JSON); 413 above
	MinUploadSessionBytes int // createUploadSession below: ErrorAttachmentSizeShouldNotBeLessThanMinimumSize
	MaxUploadRangeBytes   int // one PUT to an upload URL; 413 above
	MaxMessageBytes       int // draft MIME plus attachments at send; ErrorMessageSizeExceeded above
}

// DefaultLimits: 4 MB requests and ranges, the 2 MiB below which Graph
// refuses an upload session, 150 MB for a message.
func DefaultLimits() Limits {
	return Limits{MaxRequestBytes: 4 << 20, MinUploadSessionBytes: 2 << 20, MaxUploadRangeBytes: 4 << 20, MaxMessageBytes: 150 << 20}
}

// Attachment is a file attachment added to a draft.
type Attachment struct {
	ID          string
	Name        string
	ContentType string
	IsInline    bool
	ContentID   string
	Content     []byte
	Via         Endpoint // AddAttachment or UploadRange
}

// Message is a message in the mailbox: a draft, or one sent.
type Message struct {
	ID                 string
	Mailbox            string
	MIME               []byte // as created (sendMail: as sent)
	Attachments        []Attachment
	ExtendedProperties map[string]string
	Folder             string   // "Drafts" or "SentItems"; "" once deleted after submission
	Via                Endpoint // SendMail or CreateMessage
}

// Server is the stand-in; call New.
type Server struct {
	URL string // base, e.g. http://127.0.0.1:port/v1.0

	root  string // http://127.0.0.1:port
	valid func(token string) bool

	// mu guards everything below. Invariants: every message in msgs is in
	// Drafts or SentItems and appears once in order; sent lists each
	// submission once, in order; a session's message is in msgs.
	mu       sync.Mutex
	reqs     []Request
	fails    []Failure
	failOn   map[Endpoint][]Failure
	delay    time.Duration
	limits   Limits
	msgs     map[string]*Message
	order    []string
	sent     []Message
	sessions map[string]*session
	lose     int
}

type session struct {
	msgID, token string
	att          Attachment
	size, next   int
	buf          []byte
}

// New starts a server on a loopback port, closed when t ends. valid decides
// whether a bearer token is accepted (nil accepts any non-empty token).
func New(t testing.TB, valid func(token string) bool) *Server {
	s := &Server{valid: valid, limits: DefaultLimits(), failOn: map[Endpoint][]Failure{}, msgs: map[string]*Message{}, sessions: map[string]*session{}}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.root = hs.URL
	s.URL = hs.URL + "/v1.0"
	return s
}

// FailNext queues failures answered, in order, to the next requests that
// carry a valid token, whatever their endpoint.
func (s *Server) FailNext(f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, f...)
}

// FailOn queues failures answered, in order, to the next well-formed
// requests to ep (for UploadRange: to the session URL, authorized by it).
func (s *Server) FailOn(ep Endpoint, f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failOn[ep] = append(s.failOn[ep], f...)
}

// LoseRanges makes the next n ranges PUT to an upload session answered 200
// without being kept, so the session asks for them again.
func (s *Server) LoseRanges(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lose += n
}

// SetLimits replaces the limits enforced.
func (s *Server) SetLimits(l Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = l
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

// Sent returns the messages submitted so far, by sendMail or by sending a
// draft, as they were when submitted.
func (s *Server) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.sent...)
}

// Drafts returns the drafts in the mailbox.
func (s *Server) Drafts() []Message { return s.folder("Drafts") }

// SentItems returns the messages kept in Sent Items.
func (s *Server) SentItems() []Message { return s.folder("SentItems") }

func (s *Server) folder(name string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, id := range s.order {
		if m := s.msgs[id]; m != nil && m.Folder == name {
			out = append(out, copyMessage(m))
		}
	}
	return out
}

func copyMessage(m *Message) Message {
	c := *m
	c.Attachments = append([]Attachment(nil), m.Attachments...)
	c.ExtendedProperties = map[string]string{}
	for k, v := range m.ExtendedProperties {
		c.ExtendedProperties[k] = v
	}
	return c
}

// route names the endpoint of a request from its method and path.
func route(method, escaped string) (ep Endpoint, mailbox, msgID, sid string) {
	if rest, ok := strings.CutPrefix(escaped, "/upload/"); ok && !strings.Contains(rest, "/") {
		sid, _ = url.PathUnescape(rest)
		if method == http.MethodPut {
			return UploadRange, "", "", sid
		}
		return "", "", "", sid
	}
	rest, ok := strings.CutPrefix(escaped, "/v1.0/users/")
	if !ok {
		return "", "", "", ""
	}
	seg := strings.Split(rest, "/")
	mailbox, _ = url.PathUnescape(seg[0])
	if len(seg) >= 3 {
		msgID, _ = url.PathUnescape(seg[2])
	}
	switch {
	case len(seg) == 2 && seg[1] == "sendMail" && method == http.MethodPost:
		ep = SendMail
	case len(seg) == 2 && seg[1] == "messages" && method == http.MethodPost:
		ep = CreateMessage
	case len(seg) == 3 && seg[1] == "messages" && method == http.MethodPatch:
		ep = UpdateMessage
	case len(seg) == 3 && seg[1] == "messages" && method == http.MethodDelete:
		ep = DeleteMessage
	case len(seg) == 4 && seg[1] == "messages" && seg[3] == "send" && method == http.MethodPost:
		ep = SendDraft
	case len(seg) == 4 && seg[1] == "messages" && seg[3] == "attachments" && method == http.MethodPost:
		ep = AddAttachment
	case len(seg) == 5 && seg[1] == "messages" && seg[3] == "attachments" && seg[4] == "createUploadSession" && method == http.MethodPost:
		ep = CreateUploadSession
	}
	return ep, mailbox, msgID, ""
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ep, mailbox, msgID, sid := route(r.Method, r.URL.EscapedPath())
	rec := Request{Endpoint: ep, Method: r.Method, Path: r.URL.Path, Mailbox: mailbox, MessageID: msgID,
		ContentType: r.Header.Get("Content-Type"), Header: r.Header.Clone(), Body: body}
	if ep == SendMail || ep == CreateMessage {
		if mime, err := base64.StdEncoding.DecodeString(string(body)); err == nil {
			rec.MIME = mime
		}
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		rec.Token = tok
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
	if ep == UploadRange {
		s.put(w, r, sid, body)
		return
	}

	switch {
	case ep == "" && mailbox == "" && sid == "":
		writeErr(w, Failure{Status: http.StatusNotFound, Code: "BadRequest", Message: "Resource not found for the segment."})
		return
	case ep == "":
		writeErr(w, Failure{Status: http.StatusMethodNotAllowed, Code: "BadRequest", Message: "Method not allowed."})
		return
	case rec.Token == "":
		writeErr(w, Failure{Status: http.StatusUnauthorized, Code: "InvalidAuthenticationToken", Message: "Access token is empty."})
		return
	case s.valid != nil && !s.valid(rec.Token):
		writeErr(w, Unauthorized())
		return
	}
	if f, ok := s.failure(ep, true); ok {
		writeErr(w, f)
		return
	}
	switch ep {
	case SendMail:
		s.sendMail(w, rec)
	case CreateMessage:
		s.create(w, rec)
	case UpdateMessage:
		s.update(w, rec)
	case DeleteMessage:
		s.delete(w, rec)
	case SendDraft:
		s.send(w, r, rec)
	case AddAttachment:
		s.addAttachment(w, rec)
	case CreateUploadSession:
		s.createSession(w, rec)
	}
}

// failure takes the next scripted failure for ep (FailOn first, then
// FailNext when general).
func (s *Server) failure(ep Endpoint, general bool) (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.failOn[ep]; len(q) > 0 {
		s.failOn[ep] = q[1:]
		return q[0], true
	}
	if general && len(s.fails) > 0 {
		f := s.fails[0]
		s.fails = s.fails[1:]
		return f, true
	}
	return Failure{}, false
}

func badRequest(code, msg string) Failure {
	return Failure{Status: http.StatusBadRequest, Code: code, Message: msg}
}

// checkMIME applies the MIME form's rules: text/plain, at most the request
// limit, valid base64 of a non-empty message.
func (s *Server) checkMIME(rec Request) (Failure, bool) {
	s.mu.Lock()
	limit := s.limits.MaxRequestBytes
	s.mu.Unlock()
	switch {
	case len(rec.Body) > limit:
		return TooLarge(), false
	case !strings.HasPrefix(rec.ContentType, "text/plain"):
		return badRequest("ErrorInvalidRequest", "Content-Type must be application/json or text/plain."), false
	case rec.MIME == nil || len(bytes.TrimSpace(rec.MIME)) == 0:
		return badRequest("ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."), false
	}
	return Failure{}, true
}

func (s *Server) sendMail(w http.ResponseWriter, rec Request) {
	if f, ok := s.checkMIME(rec); !ok {
		writeErr(w, f)
		return
	}
	s.mu.Lock()
	m := &Message{ID: newID("AAMkAD"), Mailbox: rec.Mailbox, MIME: rec.MIME, Folder: "SentItems", Via: SendMail, ExtendedProperties: map[string]string{}}
	s.msgs[m.ID] = m
	s.order = append(s.order, m.ID)
	s.sent = append(s.sent, copyMessage(m))
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) create(w http.ResponseWriter, rec Request) {
	if f, ok := s.checkMIME(rec); !ok {
		writeErr(w, f)
		return
	}
	s.mu.Lock()
	m := &Message{ID: newID("AAMkAD"), Mailbox: rec.Mailbox, MIME: rec.MIME, Folder: "Drafts", Via: CreateMessage, ExtendedProperties: map[string]string{}}
	s.msgs[m.ID] = m
	s.order = append(s.order, m.ID)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"@odata.context": s.URL + "/$metadata#users('" + rec.Mailbox + "')/messages/$entity",
		"id":             m.ID, "isDraft": true,
	})
}

// draft returns the mailbox's message id, or writes 404.
func (s *Server) draft(w http.ResponseWriter, rec Request) *Message {
	m := s.msgs[rec.MessageID]
	if m == nil || m.Mailbox != rec.Mailbox {
		writeErr(w, ItemNotFound())
		return nil
	}
	return m
}

func (s *Server) update(w http.ResponseWriter, rec Request) {
	var in struct {
		Props []struct {
			ID    string `json:"id"`
			Value string `json:"value"`
		} `json:"singleValueExtendedProperties"`
	}
	if !strings.HasPrefix(rec.ContentType, "application/json") || json.Unmarshal(rec.Body, &in) != nil {
		writeErr(w, badRequest("BadRequest", "Unable to read JSON request payload."))
		return
	}
	for i, p := range in.Props {
		id, ok := propID(p.ID)
		if !ok || p.Value == "" {
			writeErr(w, badRequest("ErrorInvalidExtendedProperty", "The extended property attribute combination is invalid."))
			return
		}
		in.Props[i].ID = id
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.draft(w, rec)
	if m == nil {
		return
	}
	for _, p := range in.Props {
		m.ExtendedProperties[p.ID] = p.Value
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": m.ID, "isDraft": m.Folder == "Drafts"})
}

// mapiTypes are the type words of extended-property ids with their MAPI
// property types (the low word of a property tag).
var mapiTypes = map[string][]uint32{"Boolean": {0x000B}, "Integer": {0x0003}, "Long": {0x0014}, "String": {0x001F, 0x001E},
	"SystemTime": {0x0040}, "Binary": {0x0102}, "Double": {0x0005}, "Float": {0x0004}, "Short": {0x0002}, "CLSID": {0x0048}}

// propID checks an id in the "{type} {proptag}" form, the tag with or
// without its type word, and returns it as "{type} 0x{id}". Named ids
// ("{type} {guid} Name {name}") are kept as given.
func propID(id string) (string, bool) {
	typ, tag, ok := strings.Cut(id, " ")
	types, known := mapiTypes[typ]
	if !ok || !known {
		return "", false
	}
	if strings.HasPrefix(tag, "{") {
		return id, strings.Contains(tag, "} Name ") || strings.Contains(tag, "} Id ")
	}
	hex, ok := strings.CutPrefix(strings.ToLower(tag), "0x")
	n, err := strconv.ParseUint(hex, 16, 32)
	switch {
	case !ok || err != nil || len(hex) > 8:
		return "", false
	case len(hex) > 4:
		// A whole tag: its type must be the type word's.
		matches := false
		for _, t := range types {
			matches = matches || uint32(n)&0xFFFF == t
		}
		if !matches {
			return "", false
		}
		n >>= 16
	}
	if n == 0 || n >= 0x8000 {
		return "", false // proptags name MAPI's own properties, 0x0001-0x7FFF
	}
	return fmt.Sprintf("%s 0x%04X", typ, n), true
}

func (s *Server) delete(w http.ResponseWriter, rec Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.draft(w, rec); m != nil {
		delete(s.msgs, m.ID)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) send(w http.ResponseWriter, r *http.Request, rec Request) {
	if r.Header.Get("Content-Length") != "0" {
		writeErr(w, Failure{Status: http.StatusLengthRequired, Code: "LengthRequired", Message: "Content-Length: 0 is required."})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.draft(w, rec)
	if m == nil {
		return
	}
	if m.Folder != "Drafts" {
		writeErr(w, badRequest("ErrorInvalidOperation", "Only drafts can be sent."))
		return
	}
	size := len(m.MIME)
	for _, a := range m.Attachments {
		size += base64.StdEncoding.EncodedLen(len(a.Content))
	}
	if size > s.limits.MaxMessageBytes {
		writeErr(w, TooLarge())
		return
	}
	m.Folder = "SentItems"
	s.sent = append(s.sent, copyMessage(m))
	if strings.EqualFold(m.ExtendedProperties[DeleteAfterSubmit], "true") {
		delete(s.msgs, m.ID)
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) addAttachment(w http.ResponseWriter, rec Request) {
	var in struct {
		Type         string `json:"@odata.type"`
		Name         string `json:"name"`
		ContentType  string `json:"contentType"`
		ContentBytes []byte `json:"contentBytes"`
		IsInline     bool   `json:"isInline"`
		ContentID    string `json:"contentId"`
	}
	s.mu.Lock()
	limit := s.limits.MaxRequestBytes
	s.mu.Unlock()
	switch {
	case len(rec.Body) > limit:
		writeErr(w, Failure{Status: http.StatusRequestEntityTooLarge, Code: "ErrorRequestEntityTooLarge", Message: "The request is larger than 4 MB; use an upload session."})
		return
	case !strings.HasPrefix(rec.ContentType, "application/json") || json.Unmarshal(rec.Body, &in) != nil:
		writeErr(w, badRequest("BadRequest", "Unable to read JSON request payload."))
		return
	case in.Type != "#microsoft.graph.fileAttachment" || in.Name == "":
		writeErr(w, badRequest("ErrorInvalidRequest", "A file attachment needs @odata.type #microsoft.graph.fileAttachment and a name."))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.draft(w, rec)
	if m == nil {
		return
	}
	a := Attachment{ID: newID("AAMkADAt"), Name: in.Name, ContentType: in.ContentType, IsInline: in.IsInline, ContentID: in.ContentID, Content: in.ContentBytes, Via: AddAttachment}
	m.Attachments = append(m.Attachments, a)
	writeJSON(w, http.StatusCreated, map[string]any{"@odata.type": in.Type, "id": a.ID, "name": a.Name, "contentType": a.ContentType, "size": len(a.Content), "isInline": a.IsInline})
}

func (s *Server) createSession(w http.ResponseWriter, rec Request) {
	var in struct {
		Item struct {
			Type        string `json:"attachmentType"`
			Name        string `json:"name"`
			Size        int    `json:"size"`
			ContentType string `json:"contentType"`
			IsInline    bool   `json:"isInline"`
			ContentID   string `json:"contentId"`
		} `json:"AttachmentItem"`
	}
	if !strings.HasPrefix(rec.ContentType, "application/json") || json.Unmarshal(rec.Body, &in) != nil {
		writeErr(w, badRequest("BadRequest", "Unable to read JSON request payload."))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it := in.Item
	switch {
	case it.Type != "file" || it.Name == "" || it.Size <= 0:
		writeErr(w, badRequest("ErrorInvalidRequest", "AttachmentItem needs attachmentType file, a name and a size."))
		return
	case it.Size < s.limits.MinUploadSessionBytes:
		writeErr(w, badRequest("ErrorAttachmentSizeShouldNotBeLessThanMinimumSize", "Attachment size must be greater than the minimum size."))
		return
	case it.Size > s.limits.MaxMessageBytes:
		writeErr(w, TooLarge())
		return
	}
	m := s.draft(w, rec)
	if m == nil {
		return
	}
	sid, tok := newID("AAMkADSe"), newID("")
	s.sessions[sid] = &session{msgID: m.ID, token: tok, size: it.Size,
		att: Attachment{Name: it.Name, ContentType: it.ContentType, IsInline: it.IsInline, ContentID: it.ContentID, Via: UploadRange}}
	writeJSON(w, http.StatusCreated, map[string]any{
		"@odata.context":     s.URL + "/$metadata#microsoft.graph.uploadSession",
		"uploadUrl":          s.root + "/upload/" + url.PathEscape(sid) + "?authtoken=" + url.QueryEscape(tok),
		"expirationDateTime": time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano),
		"nextExpectedRanges": []string{"0-"},
	})
}

// put takes one range for an upload session. The URL is its own
// credential: an Authorization header is refused, as is a wrong authtoken.
func (s *Server) put(w http.ResponseWriter, r *http.Request, sid string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[sid]
	switch {
	case ss == nil:
		writeErr(w, ItemNotFound())
		return
	case r.Header.Get("Authorization") != "":
		writeErr(w, Failure{Status: http.StatusUnauthorized, Code: "InvalidAuthenticationToken", Message: "The upload URL is pre-authenticated; an Authorization header is not accepted."})
		return
	case r.URL.Query().Get("authtoken") != ss.token:
		writeErr(w, Failure{Status: http.StatusUnauthorized, Code: "InvalidAuthenticationToken", Message: "The authtoken of the upload URL is not valid."})
		return
	}
	if q := s.failOn[UploadRange]; len(q) > 0 {
		s.failOn[UploadRange] = q[1:]
		writeErr(w, q[0])
		return
	}
	var start, end, total int
	if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &total); err != nil || start > end || total != ss.size {
		writeErr(w, badRequest("InvalidContentRange", "The Content-Range header is missing or malformed."))
		return
	}
	switch {
	case r.Header.Get("Content-Type") != "application/octet-stream":
		writeErr(w, badRequest("ErrorInvalidRequest", "Content-Type must be application/octet-stream."))
		return
	case len(body) > s.limits.MaxUploadRangeBytes:
		writeErr(w, Failure{Status: http.StatusRequestEntityTooLarge, Code: "ErrorRequestEntityTooLarge", Message: "A range must be at most 4 MB."})
		return
	case start != ss.next || end >= ss.size:
		writeErr(w, Failure{Status: http.StatusRequestedRangeNotSatisfiable, Code: "InvalidRange", Message: fmt.Sprintf("Expected a range starting at %d.", ss.next)})
		return
	case len(body) != end-start+1:
		writeErr(w, badRequest("InvalidContentRange", "The body does not match the Content-Range header."))
		return
	}
	if s.lose > 0 {
		s.lose--
		s.rangeOK(w, ss)
		return
	}
	ss.buf = append(ss.buf, body...)
	ss.next = end + 1
	if ss.next < ss.size {
		s.rangeOK(w, ss)
		return
	}
	m := s.msgs[ss.msgID]
	delete(s.sessions, sid)
	if m == nil {
		writeErr(w, ItemNotFound())
		return
	}
	a := ss.att
	a.ID, a.Content = newID("AAMkADAt"), ss.buf
	m.Attachments = append(m.Attachments, a)
	w.Header().Set("Location", s.root+"/api/v2.0/Users('"+url.PathEscape(m.Mailbox)+"')/Messages('"+m.ID+"')/Attachments('"+a.ID+"')")
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) rangeOK(w http.ResponseWriter, ss *session) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context":     s.root + "/api/v2.0/$metadata#Users/Messages/AttachmentSessions/$entity",
		"expirationDateTime": time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano),
		"nextExpectedRanges": []string{strconv.Itoa(ss.next)},
	})
}

func newID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	// Graph ids are base64 and may end in '=', which paths must carry.
	return prefix + base64.RawURLEncoding.EncodeToString(b) + "="
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
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
