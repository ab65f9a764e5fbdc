// Package apirelay holds what relay transports for HTTP mail APIs (Graph
// sendMail, Gmail messages.send) need in common: the copy sent to exactly
// the envelope recipients, the Retry-After hint in replies, and the send
// with one token renewal. Each transport keeps its own request and its
// own table from error answers to replies.
package apirelay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/crlf"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
)

// maxRetryAfter caps a server's Retry-After, so a typo cannot park mail.
const maxRetryAfter = time.Hour

// Config sets up a transport for an HTTP mail API. Each transport's
// package says what its mailbox is and what its token must allow.
type Config struct {
	// Mailbox is the user the route sends as.
	Mailbox string
	// TokenSource gives an access token for the API at each send; it
	// should cache and renew it. An error marked postern.Permanent
	// (consent, delegation, a wrong secret or key) refuses the message for
	// good; any other defers it.
	TokenSource func(ctx context.Context) (string, error)
	// InvalidateToken, when set, is told of a token the API refused with
	// 401, so that TokenSource's next call gives a fresh one; Send retries
	// once.
	InvalidateToken func(token string)
	// BaseURL is the API root; the transport's DefaultBaseURL when empty.
	BaseURL string
	// HTTPClient makes the calls; http.DefaultClient when nil.
	HTTPClient *http.Client
	// Name is the API's name in DSN Remote-MTA fields; the transport's
	// DefaultName when empty.
	Name string
	// Log gets the transport's own events; nil discards.
	Log *slog.Logger
}

// Sender is one API's send: read the message, rewrite its recipients,
// post it with a token, and renew the token once if the API refuses it.
type Sender struct {
	Config
	// API names the service in replies and logs: "Graph", "Gmail".
	API string
	// MaxMessageBytes is the largest message sent, with CRLF line ends and
	// the added Bcc field; TooLarge is the reply for a larger one.
	MaxMessageBytes int
	TooLarge        relay.Reply
	// Post makes one API call; refused reports the token refused (401).
	Post func(ctx context.Context, tok string, msg []byte) (r relay.Reply, refused bool)

	pkg string
}

// Init checks the Config, naming pkg in its errors, and fills its zero
// fields with the defaults given and the package's.
func (s *Sender) Init(pkg, defaultBaseURL, defaultName string) error {
	s.pkg = pkg
	if s.Mailbox == "" {
		return errors.New(pkg + ": a mailbox to send as is required")
	}
	if s.TokenSource == nil {
		return errors.New(pkg + ": a token source is required")
	}
	if s.BaseURL == "" {
		s.BaseURL = defaultBaseURL
	}
	if s.HTTPClient == nil {
		s.HTTPClient = http.DefaultClient
	}
	if s.Name == "" {
		s.Name = defaultName
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Send makes one API call for all of m's recipients; the API answers once,
// so every recipient gets the same reply.
func (s *Sender) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	raw, err := io.ReadAll(io.LimitReader(crlf.NewReader(m.Body), int64(s.MaxMessageBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read message %s: %w", s.pkg, m.ID, err)
	}
	if len(raw) > s.MaxMessageBytes {
		return relay.Uniform(m, s.Name, s.TooLarge), nil
	}
	msg, reply, ok := WithEnvelope(raw, m.To, s.API)
	if !ok {
		return relay.Uniform(m, s.Name, reply), nil
	}
	if len(msg) > s.MaxMessageBytes {
		return relay.Uniform(m, s.Name, s.TooLarge), nil
	}

	tok, reply, ok := s.token(ctx)
	if !ok {
		return relay.Uniform(m, s.Name, reply), nil
	}
	reply, refused := s.Post(ctx, tok, msg)
	if refused {
		// A cached token can be revoked or expire early; one fresh token is
		// worth a second try, a second refusal is reported as it is.
		s.Log.LogAttrs(ctx, slog.LevelWarn, strings.ToLower(s.API)+" refused the oauth token; retrying with a fresh one",
			slog.String("msg_id", string(m.ID)), slog.String("mailbox", s.Mailbox), slog.String("reply", reply.Text))
		if s.InvalidateToken != nil {
			s.InvalidateToken(tok)
		}
		if tok, reply, ok = s.token(ctx); ok {
			reply, _ = s.Post(ctx, tok, msg)
		}
	}
	return relay.Uniform(m, s.Name, reply), nil
}

// token asks TokenSource; its failure is a reply, so consent, delegation
// and key problems reach the route's owner as a DSN.
func (s *Sender) token(ctx context.Context) (string, relay.Reply, bool) {
	tok, err := s.TokenSource(ctx)
	switch {
	case err != nil && postern.IsPermanent(err):
		return "", relay.Reply{Status: "5.7.0", Text: "no " + s.API + " token: " + err.Error(), Type: relay.DiagLocal}, false
	case err != nil:
		r := relay.LocalReply("4.7.0", "no "+s.API+" token: "+err.Error())
		// A throttled token endpoint's Retry-After paces the next try.
		if d, ok := postern.RetryDelay(err); ok {
			r.RetryAfter = min(d, maxRetryAfter)
		}
		return "", r, false
	case tok == "" || strings.ContainsFunc(tok, func(r rune) bool { return r < 0x21 || r > 0x7e }):
		return "", relay.LocalReply("4.7.0", "the token source gave an empty or malformed token"), false
	}
	return tok, relay.Reply{}, true
}

// Call makes req with tok as its bearer token and reads up to 64 KiB of
// the answer. A call that got no answer is a reply (ok false); endpoint
// names the API in it as reached ("Graph", "the Gmail API").
func Call(ctx context.Context, c *http.Client, req *http.Request, tok, endpoint string) (resp *http.Response, data []byte, r relay.Reply, ok bool) {
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, CallError(ctx, err, endpoint), false
	}
	defer resp.Body.Close()
	data, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, data, relay.Reply{}, true
}

// Status is the reply status for an HTTP error answer the API's own codes
// say no more about. Throttling and server trouble are temporary; the
// request, the permission and the mailbox are permanent.
func Status(code int) string {
	switch code {
	case http.StatusRequestEntityTooLarge:
		return "5.3.4"
	case http.StatusTooManyRequests:
		return "4.4.5"
	case http.StatusBadRequest:
		return "5.6.0"
	case http.StatusUnauthorized:
		// Twice refused: the app's registration, consent or key needs a
		// fix, which an operator may make before the route's max age.
		return "4.7.0"
	case http.StatusForbidden:
		return "5.7.1"
	case http.StatusNotFound:
		return "5.7.0"
	}
	return "4.3.0" // 5xx and anything unforeseen
}

// CallError is the reply for an HTTP call that got no answer; endpoint
// names the API as reached ("Graph", "the Gmail API").
func CallError(ctx context.Context, err error, endpoint string) relay.Reply {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return relay.LocalReply("4.4.2", "timeout talking to "+endpoint)
	case errors.Is(err, context.Canceled):
		return relay.LocalReply("4.4.2", "interrupted")
	}
	return relay.LocalReply("4.4.1", "could not reach "+endpoint)
}

// WithRetryAfter sets a temporary reply's RetryAfter from the answer's
// Retry-After, which the relay Handler waits at least, and adds it to the
// text for the DSN and the log.
func WithRetryAfter(r relay.Reply, h http.Header, now time.Time) relay.Reply {
	if d, ok := parseRetryAfter(h.Get("Retry-After"), now); ok && !r.Permanent() {
		r.RetryAfter = d
		r.Text += fmt.Sprintf(" (Retry-After %s)", d)
	}
	return r
}

// RetryAfter reads back the delay a temporary reply of type diagType asks
// for. A date already past asks for none, yet was asked: the text says so.
func RetryAfter(r relay.Reply, diagType string) (time.Duration, bool) {
	if r.Type != diagType || r.Permanent() {
		return 0, false
	}
	return r.RetryAfter, r.RetryAfter > 0 || strings.HasSuffix(r.Text, " (Retry-After 0s)")
}

// parseRetryAfter parses Retry-After as seconds or an HTTP date, capped.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(n)*time.Second, maxRetryAfter), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0).Round(time.Second), maxRetryAfter), true
	}
	return 0, false
}

// OneLine makes an API's text fit one reply line.
func OneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// WithEnvelope returns the copy of raw (CRLF line ends) to send so that
// an API taking recipients from the header (named api in replies) delivers
// to exactly rcpts: no Bcc field of the original, and one Bcc naming the
// envelope recipients not in To or Cc. It refuses a message whose To or Cc
// names an address outside the envelope, or that it cannot read.
func WithEnvelope(raw []byte, rcpts []relay.Rcpt, api string) ([]byte, relay.Reply, bool) {
	hdrEnd := bytes.Index(raw, []byte("\r\n\r\n"))
	if hdrEnd < 0 {
		return nil, relay.Reply{Status: "5.6.0", Text: "message has no header and body separation", Type: relay.DiagLocal}, false
	}
	head := raw[:hdrEnd+2] // through the last field's CRLF
	fields := splitFields(head)

	envelope := map[string]bool{}
	for _, r := range rcpts {
		envelope[strings.ToLower(r.Addr)] = true
	}
	visible := map[string]bool{}
	var kept [][]byte
	var outside int
	for _, f := range fields {
		name, value, _ := bytes.Cut(f, []byte(":"))
		switch strings.ToLower(strings.TrimSpace(string(name))) {
		case "bcc":
			continue
		case "to", "cc":
			// Unfold: the parser takes no CRLF inside a value.
			v := strings.TrimSpace(strings.ReplaceAll(string(value), "\r\n", ""))
			if v != "" {
				list, err := mail.ParseAddressList(v)
				if err != nil {
					return nil, relay.Reply{Status: "5.6.0", Type: relay.DiagLocal,
						Text: "the " + strings.TrimSpace(string(name)) + " field cannot be parsed; " + api + " takes the recipients from it"}, false
				}
				for _, a := range list {
					k := strings.ToLower(a.Address)
					visible[k] = true
					if !envelope[k] {
						outside++
					}
				}
			}
		}
		kept = append(kept, f)
	}
	if outside > 0 {
		return nil, relay.Reply{Status: "5.3.3", Type: relay.DiagLocal,
			Text: fmt.Sprintf("%s sends to every To and Cc address; %d of them are not recipients of this relay", api, outside)}, false
	}
	var bcc []string
	for _, r := range rcpts {
		if !visible[strings.ToLower(r.Addr)] {
			bcc = append(bcc, r.Addr)
			visible[strings.ToLower(r.Addr)] = true
		}
	}
	if len(bcc) == 0 && len(kept) == len(fields) {
		return raw, relay.Reply{}, true // unchanged: the stored bytes
	}
	out := make([]byte, 0, len(raw)+64*len(bcc))
	for _, f := range kept {
		out = append(out, f...)
	}
	if len(bcc) > 0 {
		out = append(out, "Bcc: "...)
		for i, a := range bcc {
			if i > 0 {
				out = append(out, ",\r\n "...)
			}
			out = append(out, a...)
		}
		out = append(out, "\r\n"...)
	}
	return append(out, raw[hdrEnd+2:]...), relay.Reply{}, true
}

// splitFields cuts a CRLF header block into fields, each with its folded
// continuation lines and final CRLF.
func splitFields(head []byte) [][]byte {
	var fields [][]byte
	for len(head) > 0 {
		end := 0
		for {
			i := bytes.Index(head[end:], []byte("\r\n"))
			if i < 0 {
				end = len(head)
				break
			}
			end += i + 2
			if end >= len(head) || (head[end] != ' ' && head[end] != '\t') {
				break
			}
		}
		fields = append(fields, head[:end])
		head = head[end:]
	}
	return fields
}

// Do runs call, one API exchange of one or more requests, with a token;
// if call reports the token refused (401), it tells InvalidateToken and
// runs call once more with a fresh one, as Send does for its one request.
// A token that cannot be had is the reply. id names the message in logs.
func (s *Sender) Do(ctx context.Context, id postern.MsgID, call func(ctx context.Context, tok string) (r relay.Reply, refused bool)) relay.Reply {
	tok, reply, ok := s.token(ctx)
	if !ok {
		return reply
	}
	reply, refused := call(ctx, tok)
	if !refused {
		return reply
	}
	s.Log.LogAttrs(ctx, slog.LevelWarn, strings.ToLower(s.API)+" refused the oauth token; retrying with a fresh one",
		slog.String("msg_id", string(id)), slog.String("mailbox", s.Mailbox), slog.String("reply", reply.Text))
	if s.InvalidateToken != nil {
		s.InvalidateToken(tok)
	}
	if tok, reply, ok = s.token(ctx); ok {
		reply, _ = call(ctx, tok)
	}
	return reply
}
