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
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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
// bytes of every 3, so the largest message a sendMail request carries is
// 3,145,728 bytes (3 MiB) with CRLF line ends and the added Bcc field.
const (
	MaxRequestBytes = 4 << 20
	MaxMessageBytes = MaxRequestBytes / 4 * 3
)

// Config sets up the transport. Mailbox is the user id or
// userPrincipalName the route sends as; TokenSource gives a Graph access
// token (scope https://graph.microsoft.com/.default, application
// permission Mail.Send); BaseURL is Graph's v1.0 root.
type Config struct {
	apirelay.Config
	// SaveToSentItems keeps a copy in the mailbox's Sent Items.
	SaveToSentItems bool
}

// Transport sends through Graph. One Transport serves concurrent calls.
type Transport struct {
	s   apirelay.Sender
	url string
}

var _ relay.Transport = (*Transport)(nil)

// New checks cfg and builds a Transport.
func New(cfg Config) (*Transport, error) {
	t := &Transport{}
	t.s = apirelay.Sender{Config: cfg.Config, API: "Graph", MaxMessageBytes: MaxMessageBytes, TooLarge: tooLarge(), Post: t.post}
	if err := t.s.Init("graphrelay", DefaultBaseURL, DefaultName); err != nil {
		return nil, err
	}
	t.url = strings.TrimSuffix(t.s.BaseURL, "/") + "/users/" + url.PathEscape(t.s.Mailbox) + "/sendMail"
	return t, nil
}

// Send makes one sendMail call for all of m's recipients; Graph answers
// once, so every recipient gets the same reply.
func (t *Transport) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	return t.s.Send(ctx, m)
}

func tooLarge() relay.Reply {
	return relay.Reply{Status: "5.3.4", Type: relay.DiagLocal,
		Text: fmt.Sprintf("message exceeds the %d bytes Graph sendMail takes (%d bytes as base64); larger messages need the upload-session path, not supported yet", MaxMessageBytes, MaxRequestBytes)}
}

// post makes one sendMail call. refused reports a 401, the token refused.
func (t *Transport) post(ctx context.Context, tok string, msg []byte) (r relay.Reply, refused bool) {
	body := make([]byte, base64.StdEncoding.EncodedLen(len(msg)))
	base64.StdEncoding.Encode(body, msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
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
