// Package graphrelay is the relay Transport for Microsoft Graph: one
// POST /users/{mailbox}/sendMail per message, with the message as MIME
// (base64 of the stored bytes in a text/plain body), as documented in
// "user: sendMail" and "Send Outlook messages in MIME format".
//
// Sent Items: the MIME form has no saveToSentItems parameter (it belongs
// to the JSON form, whose default is true) and the docs say sendMail saves
// the message in the Sent Items folder; so every message sent here is
// saved there. Not saving it needs the draft path (create, send), not
// built yet.
//
// Recipients: Graph takes them from the MIME To, Cc and Bcc headers; there
// is no envelope. To send to exactly the envelope recipients, the copy
// sent (never the stored original) drops any Bcc field and gets one Bcc
// field naming the envelope recipients not in To or Cc. A To or Cc address
// that is not an envelope recipient would get a copy it was not routed
// (for example, one already delivered on an earlier attempt), so such a
// message is refused for good rather than sent.
package graphrelay

import (
	"bytes"
	"context"
	"encoding/base64"
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

// DiagGraph is the diagnostic type of Graph's answers in DSNs.
const DiagGraph = "X-MS-Graph"

// Defaults applied to zero Config fields.
const (
	DefaultBaseURL = "https://graph.microsoft.com/v1.0"
	DefaultName    = "graph.microsoft.com"
)

// Size limits. Graph refuses requests over 4 MB (4,194,304 bytes; the
// limit Microsoft documents for a request payload, answered 413, and the
// reason attachments over 3 MB need an upload session). Base64 makes 4
// bytes of every 3, so the largest message a sendMail request carries is
// 3,145,728 bytes (3 MiB) with CRLF line ends and the added Bcc field.
const (
	MaxRequestBytes = 4 << 20
	MaxMessageBytes = MaxRequestBytes / 4 * 3
)

// maxRetryAfter caps a server's Retry-After, so a typo cannot park mail.
const maxRetryAfter = time.Hour

// Config sets up the transport.
type Config struct {
	// Mailbox is the user id or userPrincipalName the route sends as.
	Mailbox string
	// TokenSource gives a Graph access token (scope
	// https://graph.microsoft.com/.default, application permission
	// Mail.Send) at each send; it should cache and renew it. An error
	// marked postern.Permanent (consent, a wrong secret) refuses the
	// message for good; any other defers it.
	TokenSource func(ctx context.Context) (string, error)
	// InvalidateToken, when set, is told of a token Graph refused with 401,
	// so that TokenSource's next call gives a fresh one; Send retries once.
	InvalidateToken func(token string)
	// BaseURL is Graph's v1.0 root; DefaultBaseURL when empty.
	BaseURL string
	// HTTPClient makes the calls; http.DefaultClient when nil.
	HTTPClient *http.Client
	// Name is Graph's name in DSN Remote-MTA fields; DefaultName when empty.
	Name string
	// Log gets the transport's own events; nil discards.
	Log *slog.Logger
}

// Transport sends through Graph. One Transport serves concurrent calls.
type Transport struct {
	cfg Config
	url string
}

var _ relay.Transport = (*Transport)(nil)

// New checks cfg and builds a Transport.
func New(cfg Config) (*Transport, error) {
	if cfg.Mailbox == "" {
		return nil, errors.New("graphrelay: a mailbox to send as is required")
	}
	if cfg.TokenSource == nil {
		return nil, errors.New("graphrelay: a token source is required")
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
	u := strings.TrimSuffix(cfg.BaseURL, "/") + "/users/" + url.PathEscape(cfg.Mailbox) + "/sendMail"
	return &Transport{cfg: cfg, url: u}, nil
}

// Send makes one sendMail call for all of m's recipients; Graph answers
// once, so every recipient gets the same reply.
func (t *Transport) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	raw, err := io.ReadAll(io.LimitReader(crlf.NewReader(m.Body), MaxMessageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("graphrelay: read message %s: %w", m.ID, err)
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
	body := make([]byte, base64.StdEncoding.EncodedLen(len(msg)))
	base64.StdEncoding.Encode(body, msg)

	tok, reply, ok := t.token(ctx)
	if !ok {
		return relay.Uniform(m, t.cfg.Name, reply), nil
	}
	reply, refused := t.post(ctx, tok, body)
	if refused {
		// A cached token can be revoked or expire early; one fresh token is
		// worth a second try, a second refusal is reported as it is.
		t.cfg.Log.LogAttrs(ctx, slog.LevelWarn, "graph refused the oauth token; retrying with a fresh one",
			slog.String("msg_id", string(m.ID)), slog.String("mailbox", t.cfg.Mailbox), slog.String("reply", reply.Text))
		if t.cfg.InvalidateToken != nil {
			t.cfg.InvalidateToken(tok)
		}
		if tok, reply, ok = t.token(ctx); ok {
			reply, _ = t.post(ctx, tok, body)
		}
	}
	return relay.Uniform(m, t.cfg.Name, reply), nil
}

func tooLarge() relay.Reply {
	return relay.Reply{Status: "5.3.4", Type: relay.DiagLocal,
		Text: fmt.Sprintf("message exceeds the %d bytes Graph sendMail takes (%d bytes as base64); larger messages need the upload-session path, not supported yet", MaxMessageBytes, MaxRequestBytes)}
}

// token asks TokenSource; its failure is a reply, so consent and secret
// problems reach the route's owner as a DSN.
func (t *Transport) token(ctx context.Context) (string, relay.Reply, bool) {
	tok, err := t.cfg.TokenSource(ctx)
	switch {
	case err != nil && postern.IsPermanent(err):
		return "", relay.Reply{Status: "5.7.0", Text: "no Graph token: " + err.Error(), Type: relay.DiagLocal}, false
	case err != nil:
		return "", relay.LocalReply("4.7.0", "no Graph token: "+err.Error()), false
	case tok == "" || strings.ContainsFunc(tok, func(r rune) bool { return r < 0x21 || r > 0x7e }):
		return "", relay.LocalReply("4.7.0", "the token source gave an empty or malformed token"), false
	}
	return tok, relay.Reply{}, true
}

// post makes one sendMail call. refused reports a 401, the token refused.
func (t *Transport) post(ctx context.Context, tok string, body []byte) (r relay.Reply, refused bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return relay.LocalReply("4.3.5", "bad Graph URL"), false
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := t.cfg.HTTPClient.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
			return relay.LocalReply("4.4.2", "timeout talking to Graph"), false
		case errors.Is(err, context.Canceled):
			return relay.LocalReply("4.4.2", "interrupted"), false
		}
		return relay.LocalReply("4.4.1", "could not reach Graph"), false
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusAccepted {
		return relay.Reply{Status: "2.0.0", Text: "202 Accepted", Type: DiagGraph}, false
	}
	return classify(resp, data), resp.StatusCode == http.StatusUnauthorized
}

// classify is the one table from a Graph error answer to a reply. Throttling
// and server trouble are temporary; the request, the permission and the
// mailbox are permanent, with Graph's code and message for the owner.
func classify(resp *http.Response, data []byte) relay.Reply {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(data, &e)
	code, msg := e.Error.Code, e.Error.Message
	text := "HTTP " + strconv.Itoa(resp.StatusCode)
	if code != "" {
		text += " " + code
	}
	if msg != "" {
		text += ": " + oneLine(msg)
	}
	s := resp.StatusCode
	var status string
	switch {
	case s == http.StatusRequestEntityTooLarge || code == "ErrorMessageSizeExceeded":
		status = "5.3.4"
	case code == "ErrorInvalidRecipients":
		status = "5.1.3"
	case s == http.StatusBadRequest:
		status = "5.6.0"
	case s == http.StatusUnauthorized:
		// Twice refused: the app registration or tenant needs a fix, which
		// an operator may make before the route's max age.
		status = "4.7.0"
	case s == http.StatusForbidden:
		status = "5.7.1"
	case s == http.StatusNotFound:
		status = "5.7.0"
	case s == http.StatusTooManyRequests:
		status = "4.4.5"
	case s >= 500:
		status = "4.3.0"
	default:
		status = "4.3.0"
	}
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok && status[0] == '4' {
		text += fmt.Sprintf(" (Retry-After %s)", d)
	}
	return relay.Reply{Status: status, Text: text, Type: DiagGraph}
}

// RetryAfter reads back the delay a temporary reply from this transport
// asks for (Graph's Retry-After), so a caller can schedule the next try.
func RetryAfter(r relay.Reply) (time.Duration, bool) {
	_, v, ok := strings.Cut(r.Text, "(Retry-After ")
	if !ok || r.Type != DiagGraph || r.Permanent() {
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSuffix(v, ")"))
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
// Graph delivers to exactly rcpts: no Bcc field of the original, and one
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
			v := strings.TrimSpace(string(value))
			if v != "" {
				list, err := mail.ParseAddressList(v)
				if err != nil {
					return nil, relay.Reply{Status: "5.6.0", Type: relay.DiagLocal,
						Text: "the " + string(name) + " field cannot be parsed; Graph takes the recipients from it"}, false
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
			Text: fmt.Sprintf("Graph sends to every To and Cc address; %d of them are not recipients of this relay", outside)}, false
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
