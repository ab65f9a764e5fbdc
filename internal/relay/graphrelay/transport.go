// Package graphrelay is the relay Transport for Microsoft Graph. It sends
// the stored message as MIME, with Graph's size rules, up to 150 MiB.
//
// Paths, by the documented contracts ("user: sendMail", "Send Outlook
// messages in MIME format", "message: send", "Attach large files to
// Outlook messages"):
//   - SaveToSentItems and at most 3 MiB: one POST /users/{mailbox}/sendMail
//     with the MIME (base64 in a text/plain body). Graph saves it in Sent
//     Items; the MIME form has no saveToSentItems parameter.
//   - Otherwise a draft: POST /users/{mailbox}/messages with the MIME, then
//     POST .../messages/{id}/send (202). Without SaveToSentItems the draft
//     is first PATCHed with the MAPI property PidTagDeleteAfterSubmit
//     (singleValueExtendedProperties "Boolean 0x0E01000B" = "true",
//     MS-OXOMSG 2.2.3.8), so Exchange deletes it once submitted instead of
//     keeping it in Sent Items, where "message: send" puts it. Graph has no
//     parameter of its own for this; extended properties are its documented
//     way to set a MAPI property it does not expose.
//   - Over 3 MiB: the largest attachment parts are cut out of the MIME copy
//     until the rest fits the 4 MB request; the draft is made from the rest
//     and each cut part is added back as a file attachment, by a JSON POST
//     when its request fits 4 MB, else by an upload session (PUT ranges of
//     at most 3.75 MiB to the pre-authenticated upload URL, no
//     Authorization header). The recipient sees the same headers, body
//     parts and attachment bytes; Exchange rebuilds the MIME structure.
//     A multipart left with no part keeps an empty text part. Nothing is
//     cut out of a signed or encrypted multipart, and a single-part
//     message has nothing to cut: over 3 MiB, those are refused, 5.3.4.
//   - Over 150 MiB (the limit Microsoft documents for attachments through
//     upload sessions; Exchange Online's message size limit is 150 MB at
//     most, 35 MB by default, which Graph answers with
//     ErrorMessageSizeExceeded): refused, 5.3.4.
//
// The draft path needs the application permission Mail.ReadWrite besides
// Mail.Send. Any failure once the draft exists deletes it (best effort), so
// retries do not pile drafts up in the mailbox.
//
// Recipients: Graph takes them from the MIME To, Cc and Bcc headers; there
// is no envelope. To send to exactly the envelope recipients, the copy
// sent (never the stored original) drops any Bcc field and gets one Bcc
// field naming the envelope recipients not in To or Cc. A To or Cc address
// that is not an envelope recipient would get a copy it was not routed
// (for example, one already delivered on an earlier attempt), so such a
// message is refused for good rather than sent.
//
// Memory: the message is read once (CRLF line ends) into one buffer of at
// most 150 MiB; the Bcc rewrite copies only the header, the draft is a copy
// of at most 3 MiB, and attachments are decoded from the buffer as they
// are uploaded, one range at a time.
package graphrelay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/crlf"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/apirelay"
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
// bytes of every 3, so the largest message a sendMail or draft request
// carries is 3,145,728 bytes (3 MiB) with CRLF line ends and the added Bcc
// field. MaxLargeMessageBytes is the 150 MB Microsoft documents for a
// message whose attachments go through upload sessions, counted on the
// MIME message, as Exchange counts a message's size.
const (
	MaxRequestBytes      = 4 << 20
	MaxMessageBytes      = MaxRequestBytes / 4 * 3
	MaxLargeMessageBytes = 150 << 20
)

// uploadChunk is the size of each PUT to an upload session: a multiple of
// 320 KiB (the unit Microsoft's upload sessions are built on) below the
// documented 4 MB per request.
const uploadChunk = 12 * 320 << 10

// Config sets up the transport. Mailbox is the user id or
// userPrincipalName the route sends as; TokenSource gives a Graph access
// token (scope https://graph.microsoft.com/.default, application
// permissions Mail.Send and, for the draft path, Mail.ReadWrite); BaseURL
// is Graph's v1.0 root.
type Config struct {
	apirelay.Config
	// SaveToSentItems keeps a copy in the mailbox's Sent Items.
	SaveToSentItems bool
}

// Transport sends through Graph. One Transport serves concurrent calls.
type Transport struct {
	s    apirelay.Sender
	save bool
	user string // .../users/{mailbox}
	// Limits, lowered only by tests: MaxRequestBytes, MaxMessageBytes
	// (maxRequest/4*3), MaxLargeMessageBytes, uploadChunk.
	maxRequest, maxDraft, maxTotal, chunk int
}

var _ relay.Transport = (*Transport)(nil)

// New checks cfg and builds a Transport.
func New(cfg Config) (*Transport, error) {
	t := &Transport{save: cfg.SaveToSentItems, maxRequest: MaxRequestBytes, maxDraft: MaxMessageBytes, maxTotal: MaxLargeMessageBytes, chunk: uploadChunk}
	t.s = apirelay.Sender{Config: cfg.Config, API: "Graph", MaxMessageBytes: MaxMessageBytes, TooLarge: tooLarge(MaxLargeMessageBytes), Post: t.post}
	if err := t.s.Init("graphrelay", DefaultBaseURL, DefaultName); err != nil {
		return nil, err
	}
	t.user = strings.TrimSuffix(t.s.BaseURL, "/") + "/users/" + url.PathEscape(t.s.Mailbox)
	return t, nil
}

// Send sends m once for all of its recipients; Graph answers once, so
// every recipient gets the same reply.
func (t *Transport) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	if m.Size > int64(t.maxTotal) {
		// CRLF only adds bytes: no need to read what cannot be sent.
		return relay.Uniform(m, t.s.Name, tooLarge(t.maxTotal)), nil
	}
	// One buffer, sized up front for the stored size and the CR a device's
	// bare LFs gain, so reading does not copy the message as it grows.
	var buf bytes.Buffer
	buf.Grow(int(min(max(m.Size, 0), int64(t.maxTotal))*33/32) + 4096)
	if _, err := buf.ReadFrom(io.LimitReader(crlf.NewReader(m.Body), int64(t.maxTotal)+1)); err != nil {
		return nil, fmt.Errorf("graphrelay: read message %s: %w", m.ID, err)
	}
	raw := buf.Bytes()
	if len(raw) > t.maxTotal {
		return relay.Uniform(m, t.s.Name, tooLarge(t.maxTotal)), nil
	}
	head, body, reply, ok := envelopeCopy(raw, m.To)
	if !ok {
		return relay.Uniform(m, t.s.Name, reply), nil
	}
	size := len(head) + len(body)
	if size > t.maxTotal {
		return relay.Uniform(m, t.s.Name, tooLarge(t.maxTotal)), nil
	}
	if t.save && size <= t.maxDraft {
		msg := append(head[:len(head):len(head)], body...)
		return relay.Uniform(m, t.s.Name, t.s.Do(ctx, m.ID, func(ctx context.Context, tok string) (relay.Reply, bool) {
			return t.post(ctx, tok, msg)
		})), nil
	}
	plan, reply, ok := t.plan(head, body)
	if !ok {
		return relay.Uniform(m, t.s.Name, reply), nil
	}
	d := &draft{t: t, id: m.ID, plan: plan}
	reply = t.s.Do(ctx, m.ID, d.run)
	if d.stale != "" {
		// Refused twice: one last try at the draft with whatever token the
		// source gives now.
		if tok, err := t.s.TokenSource(ctx); err == nil {
			t.deleteDraft(ctx, tok, d.stale, m.ID)
		}
	}
	return relay.Uniform(m, t.s.Name, reply), nil
}

// envelopeCopy is apirelay.WithEnvelope applied to the header only, so a
// large message is not copied for a rewritten header: the copy to send is
// head followed by body.
func envelopeCopy(raw []byte, rcpts []relay.Rcpt) (head, body []byte, r relay.Reply, ok bool) {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		_, r, ok = apirelay.WithEnvelope(raw, rcpts, "Graph")
		return nil, nil, r, ok
	}
	head, r, ok = apirelay.WithEnvelope(raw[:end+4], rcpts, "Graph")
	return head, raw[end+4:], r, ok
}

func tooLarge(limit int) relay.Reply {
	return relay.Reply{Status: "5.3.4", Type: relay.DiagLocal,
		Text: fmt.Sprintf("message exceeds the %d bytes (%d MiB) Microsoft Graph takes for a message with attachments through upload sessions; messages over %d bytes (3 MiB) are sent as a draft with their largest attachments uploaded apart", limit, limit>>20, MaxMessageBytes)}
}

// post makes one sendMail call. refused reports a 401, the token refused.
func (t *Transport) post(ctx context.Context, tok string, msg []byte) (r relay.Reply, refused bool) {
	body := make([]byte, base64.StdEncoding.EncodedLen(len(msg)))
	base64.StdEncoding.Encode(body, msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.user+"/sendMail", bytes.NewReader(body))
	if err != nil {
		return relay.LocalReply("4.3.5", "bad Graph URL"), false
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, data, r, ok := apirelay.Call(ctx, t.s.HTTPClient, req, tok, "Graph")
	if !ok {
		return r, false
	}
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
		text += ": " + apirelay.OneLine(msg)
	}
	status := apirelay.Status(resp.StatusCode)
	switch {
	case code == "ErrorMessageSizeExceeded":
		status = "5.3.4"
	case code == "ErrorInvalidRecipients" && status != "5.3.4":
		status = "5.1.3"
	}
	return apirelay.WithRetryAfter(relay.Reply{Status: status, Text: text, Type: DiagGraph}, resp.Header, time.Now())
}

// RetryAfter reads back the delay a temporary reply from this transport
// asks for (Graph's Retry-After), so a caller can schedule the next try.
func RetryAfter(r relay.Reply) (time.Duration, bool) { return apirelay.RetryAfter(r, DiagGraph) }
