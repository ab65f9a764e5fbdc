// Package gmailrelay is the relay Transport for Google Workspace through the
// Gmail API: one media upload per message,
// POST /upload/gmail/v1/users/{userId}/messages/send?uploadType=media with
// the message as message/rfc822 (CRLF line ends), as documented in
// "users.messages.send" and "Uploading attachments". The token is for the
// mailbox (a service account with domain-wide delegation, scope gmail.send,
// see oauthtok.Google).
//
// Gmail keeps a copy in the mailbox's Sent folder, and sends From the
// mailbox: a From that is neither the mailbox nor one of its send-as
// aliases is rewritten by Gmail.
//
// Recipients: Gmail takes them from the MIME To, Cc and Bcc headers; there
// is no envelope. To send to exactly the envelope recipients, the copy sent
// (never the stored original) drops any Bcc field and gets one Bcc field
// naming the envelope recipients not in To or Cc (Gmail strips Bcc from
// what recipients see). A To or Cc address that is not an envelope
// recipient would get a copy it was not routed (for example, one already
// delivered on an earlier attempt), so such a message is refused for good
// rather than sent.
package gmailrelay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/crlf"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
)

// DiagGmail is the diagnostic type of Gmail's answers in DSNs.
const DiagGmail = "X-Gmail-API"

// Defaults applied to zero Config fields.
const (
	DefaultBaseURL = "https://gmail.googleapis.com"
	DefaultName    = "gmail.googleapis.com"
)

// MaxMessageBytes is the largest message sent: the 35 MB Google documents
// as the media upload's maximum file size for messages.send, counted with
// CRLF line ends and the added Bcc field.
const MaxMessageBytes = 35 << 20

// maxRetryAfter caps a server's Retry-After, so a typo cannot park mail.
const maxRetryAfter = time.Hour

// Config sets up the transport.
type Config struct {
	// Mailbox is the userId the route sends as: the mailbox's address (the
	// token's subject) or "me".
	Mailbox string
	// TokenSource gives an access token for the mailbox with scope
	// https://www.googleapis.com/auth/gmail.send at each send; it should
	// cache and renew it. An error marked postern.Permanent (no delegation,
	// unknown mailbox, bad key) refuses the message for good; any other
	// defers it.
	TokenSource func(ctx context.Context) (string, error)
	// InvalidateToken, when set, is told of a token Gmail refused with 401,
	// so that TokenSource's next call gives a fresh one; Send retries once.
	InvalidateToken func(token string)
	// BaseURL is the API root; DefaultBaseURL when empty.
	BaseURL string
	// HTTPClient makes the calls; http.DefaultClient when nil.
	HTTPClient *http.Client
	// Name is Gmail's name in DSN Remote-MTA fields; DefaultName when empty.
	Name string
	// Log gets the transport's own events; nil discards.
	Log *slog.Logger
}

// Transport sends through the Gmail API. One Transport serves concurrent calls.
type Transport struct {
	cfg Config
	url string
}

var _ relay.Transport = (*Transport)(nil)

// New checks cfg and builds a Transport.
func New(cfg Config) (*Transport, error) {
	if cfg.Mailbox == "" {
		return nil, errors.New("gmailrelay: a mailbox to send as is required")
	}
	if cfg.TokenSource == nil {
		return nil, errors.New("gmailrelay: a token source is required")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	u := strings.TrimSuffix(cfg.BaseURL, "/") + "/upload/gmail/v1/users/" + url.PathEscape(cfg.Mailbox) + "/messages/send?uploadType=media"
	return &Transport{cfg: cfg, url: u}, nil
}

// Send makes one messages.send call for all of m's recipients; Gmail
// answers once, so every recipient gets the same reply.
func (t *Transport) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	raw, err := io.ReadAll(io.LimitReader(crlf.NewReader(m.Body), MaxMessageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("gmailrelay: read message %s: %w", m.ID, err)
	}
	if len(raw) > MaxMessageBytes {
		return relay.Uniform(m, t.cfg.Name, tooLarge()), nil
	}
	msg, reply, ok := withEnvelope(raw, m.To)
	if !ok {
		return relay.Uniform(m, t.cfg.Name, reply), nil
	}
	if len(msg) > MaxMessageBytes {
		return relay.Uniform(m, t.cfg.Name, tooLarge()), nil
	}

	tok, reply, ok := t.token(ctx)
	if !ok {
		return relay.Uniform(m, t.cfg.Name, reply), nil
	}
	reply, refused := t.post(ctx, tok, msg)
	if refused {
		// A cached token can be revoked or expire early; one fresh token is
		// worth a second try, a second refusal is reported as it is.
		t.cfg.Log.LogAttrs(ctx, slog.LevelWarn, "gmail refused the oauth token; retrying with a fresh one",
			slog.String("msg_id", string(m.ID)), slog.String("mailbox", t.cfg.Mailbox), slog.String("reply", reply.Text))
		if t.cfg.InvalidateToken != nil {
			t.cfg.InvalidateToken(tok)
		}
		if tok, reply, ok = t.token(ctx); ok {
			reply, _ = t.post(ctx, tok, msg)
		}
	}
	return relay.Uniform(m, t.cfg.Name, reply), nil
}

func tooLarge() relay.Reply {
	return relay.Reply{Status: "5.3.4", Type: relay.DiagLocal,
		Text: fmt.Sprintf("message exceeds the %d bytes (35 MB) the Gmail API takes for a message", MaxMessageBytes)}
}

// token asks TokenSource; its failure is a reply, so delegation and key
// problems reach the route's owner as a DSN.
func (t *Transport) token(ctx context.Context) (string, relay.Reply, bool) {
	tok, err := t.cfg.TokenSource(ctx)
	switch {
	case err != nil && postern.IsPermanent(err):
		return "", relay.Reply{Status: "5.7.0", Text: "no Gmail token: " + err.Error(), Type: relay.DiagLocal}, false
	case err != nil:
		return "", relay.LocalReply("4.7.0", "no Gmail token: "+err.Error()), false
	case tok == "" || strings.ContainsFunc(tok, func(r rune) bool { return r < 0x21 || r > 0x7e }):
		return "", relay.LocalReply("4.7.0", "the token source gave an empty or malformed token"), false
	}
	return tok, relay.Reply{}, true
}

// post makes one messages.send call. refused reports a 401, the token refused.
func (t *Transport) post(ctx context.Context, tok string, msg []byte) (r relay.Reply, refused bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(msg))
	if err != nil {
		return relay.LocalReply("4.3.5", "bad Gmail API URL"), false
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "message/rfc822")
	resp, err := t.cfg.HTTPClient.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
			return relay.LocalReply("4.4.2", "timeout talking to the Gmail API"), false
		case errors.Is(err, context.Canceled):
			return relay.LocalReply("4.4.2", "interrupted"), false
		}
		return relay.LocalReply("4.4.1", "could not reach the Gmail API"), false
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		var sent struct {
			ID string `json:"id"`
		}
		text := "200 OK"
		if json.Unmarshal(data, &sent) == nil && sent.ID != "" {
			text = "accepted as " + oneLine(sent.ID)
		}
		return relay.Reply{Status: "2.0.0", Text: text, Type: DiagGmail}, false
	}
	return classify(resp, data), resp.StatusCode == http.StatusUnauthorized
}

// rateReasons are Google's 403 reasons for usage limits, which pass.
var rateReasons = map[string]bool{
	"rateLimitExceeded": true, "userRateLimitExceeded": true, "dailyLimitExceeded": true,
	"quotaExceeded": true, "concurrentLimitExceeded": true,
}

// classify is the one table from a Gmail API error answer to a reply.
// Throttling, usage limits and server trouble are temporary; the request,
// the permission and the mailbox are permanent, with Google's status,
// reason and message for the owner.
func classify(resp *http.Response, data []byte) relay.Reply {
	var e struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
			Errors  []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	_ = json.Unmarshal(data, &e)
	var reason string
	if len(e.Error.Errors) > 0 {
		reason = e.Error.Errors[0].Reason
	}
	text := "HTTP " + strconv.Itoa(resp.StatusCode)
	if e.Error.Status != "" {
		text += " " + oneLine(e.Error.Status)
	}
	if reason != "" {
		text += " (" + oneLine(reason) + ")"
	}
	if e.Error.Message != "" {
		text += ": " + oneLine(e.Error.Message)
	}
	s := resp.StatusCode
	var status string
	switch {
	case s == http.StatusRequestEntityTooLarge:
		status = "5.3.4"
	case s == http.StatusTooManyRequests || rateReasons[reason]:
		status = "4.4.5"
	case s == http.StatusBadRequest:
		status = "5.6.0"
	case s == http.StatusUnauthorized:
		// Twice refused: the delegation or the key needs a fix, which an
		// operator may make before the route's max age.
		status = "4.7.0"
	case s == http.StatusForbidden:
		status = "5.7.1"
	case s == http.StatusNotFound:
		status = "5.7.0"
	default: // 5xx and anything unforeseen
		status = "4.3.0"
	}
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok && status[0] == '4' {
		text += fmt.Sprintf(" (Retry-After %s)", d)
	}
	return relay.Reply{Status: status, Text: text, Type: DiagGmail}
}

// RetryAfter reads back the delay a temporary reply from this transport
// asks for (Google's Retry-After), so a caller can schedule the next try.
func RetryAfter(r relay.Reply) (time.Duration, bool) {
	i := strings.LastIndex(r.Text, "(Retry-After ")
	if i < 0 || r.Type != DiagGmail || r.Permanent() {
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSuffix(r.Text[i+len("(Retry-After "):], ")"))
	return d, err == nil
}

// retryAfter parses Retry-After as seconds or an HTTP date, capped.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
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

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// withEnvelope returns the copy of raw (CRLF line ends) to send so that
// Gmail delivers to exactly rcpts: no Bcc field of the original, and one
// Bcc naming the envelope recipients not in To or Cc. It refuses a message
// whose To or Cc names an address outside the envelope, or that it cannot
// read.
func withEnvelope(raw []byte, rcpts []relay.Rcpt) ([]byte, relay.Reply, bool) {
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
						Text: "the " + strings.TrimSpace(string(name)) + " field cannot be parsed; Gmail takes the recipients from it"}, false
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
			Text: fmt.Sprintf("Gmail sends to every To and Cc address; %d of them are not recipients of this relay", outside)}, false
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
