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
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/apirelay"
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

// Config sets up the transport. Mailbox is the userId the route sends
// as: the mailbox's address (the token's subject) or "me"; TokenSource
// gives an access token for the mailbox with scope
// https://www.googleapis.com/auth/gmail.send.
type Config = apirelay.Config

// Transport sends through the Gmail API. One Transport serves concurrent calls.
type Transport struct {
	s   apirelay.Sender
	url string
}

var _ relay.Transport = (*Transport)(nil)

// New checks cfg and builds a Transport.
func New(cfg Config) (*Transport, error) {
	t := &Transport{}
	t.s = apirelay.Sender{Config: cfg, API: "Gmail", MaxMessageBytes: MaxMessageBytes, TooLarge: tooLarge(), Post: t.post}
	if err := t.s.Init("gmailrelay", DefaultBaseURL, DefaultName); err != nil {
		return nil, err
	}
	t.url = strings.TrimSuffix(t.s.BaseURL, "/") + "/upload/gmail/v1/users/" + url.PathEscape(t.s.Mailbox) + "/messages/send?uploadType=media"
	return t, nil
}

// Send makes one messages.send call for all of m's recipients; Gmail
// answers once, so every recipient gets the same reply.
func (t *Transport) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	return t.s.Send(ctx, m)
}

func tooLarge() relay.Reply {
	return relay.Reply{Status: "5.3.4", Type: relay.DiagLocal,
		Text: fmt.Sprintf("message exceeds the %d bytes (35 MB) the Gmail API takes for a message", MaxMessageBytes)}
}

// post makes one messages.send call. refused reports a 401, the token refused.
func (t *Transport) post(ctx context.Context, tok string, msg []byte) (r relay.Reply, refused bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(msg))
	if err != nil {
		return relay.LocalReply("4.3.5", "bad Gmail API URL"), false
	}
	req.Header.Set("Content-Type", "message/rfc822")
	resp, data, r, ok := apirelay.Call(ctx, t.s.HTTPClient, req, tok, "the Gmail API")
	if !ok {
		return r, false
	}
	if resp.StatusCode == http.StatusOK {
		var sent struct {
			ID string `json:"id"`
		}
		text := "200 OK"
		if json.Unmarshal(data, &sent) == nil && sent.ID != "" {
			text = "accepted as " + apirelay.OneLine(sent.ID)
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
		text += " " + apirelay.OneLine(e.Error.Status)
	}
	if reason != "" {
		text += " (" + apirelay.OneLine(reason) + ")"
	}
	if e.Error.Message != "" {
		text += ": " + apirelay.OneLine(e.Error.Message)
	}
	status := apirelay.Status(resp.StatusCode)
	if rateReasons[reason] && status != "5.3.4" {
		status = "4.4.5"
	}
	return apirelay.WithRetryAfter(relay.Reply{Status: status, Text: text, Type: DiagGmail}, resp.Header, time.Now())
}

// RetryAfter reads back the delay a temporary reply from this transport
// asks for (Google's Retry-After), so a caller can schedule the next try.
func RetryAfter(r relay.Reply) (time.Duration, bool) { return apirelay.RetryAfter(r, DiagGmail) }
