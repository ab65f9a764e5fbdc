package graphrelay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/apirelay"
)

// deleteAfterSubmit is PidTagDeleteAfterSubmit (MS-OXPROPS 2.669: property
// id 0x0E01, PtypBoolean 0x000B) in the "{type} {proptag}" id form of
// Graph's "Outlook extended properties overview", whose proptag is the
// whole MAPI property tag, id and type.
const deleteAfterSubmit = "Boolean 0x0E01000B"

// cleanupTimeout bounds the delete of a failed draft, which runs even when
// the send's own deadline has passed.
const cleanupTimeout = 15 * time.Second

// maxAnswer bounds what is read of an answer; a created message is
// returned whole, body included.
const maxAnswer = 32 << 20

// draft is one message's draft path: create, mark, attach, send. It is
// run by apirelay.Sender.Do, at most twice.
type draft struct {
	t    *Transport
	id   postern.MsgID
	plan *plan
	// stale is a draft left by a run whose token Graph refused; the next
	// run, with a fresh token, deletes it first.
	stale string
}

func (d *draft) run(ctx context.Context, tok string) (relay.Reply, bool) {
	t := d.t
	if d.stale != "" {
		t.deleteDraft(ctx, tok, d.stale, d.id)
		d.stale = ""
	}
	msgID, r, refused := t.create(ctx, tok, d.plan.mime)
	if msgID == "" {
		return r, refused
	}
	r, refused = d.fill(ctx, tok, msgID)
	switch {
	case r.Accepted():
	case refused:
		d.stale = msgID
	default:
		t.deleteDraft(ctx, tok, msgID, d.id)
	}
	return r, refused
}

// fill marks, attaches and sends the draft msgID.
func (d *draft) fill(ctx context.Context, tok, msgID string) (relay.Reply, bool) {
	t := d.t
	msgURL := t.user + "/messages/" + url.PathEscape(msgID)
	if !t.save {
		body := `{"singleValueExtendedProperties":[{"id":"` + deleteAfterSubmit + `","value":"true"}]}`
		if _, r, refused, ok := t.call(ctx, tok, http.MethodPatch, msgURL, "application/json", strings.NewReader(body), http.StatusOK); !ok {
			return r, refused
		}
	}
	for i := range d.plan.atts {
		a := &d.plan.atts[i]
		if r, refused, ok := t.attach(ctx, tok, msgURL, a); !ok {
			return r, refused
		}
	}
	if _, r, refused, ok := t.call(ctx, tok, http.MethodPost, msgURL+"/send", "", http.NoBody, http.StatusAccepted); !ok {
		return r, refused
	}
	t.s.Log.LogAttrs(ctx, slog.LevelDebug, "graph draft sent",
		slog.String("msg_id", string(d.id)), slog.String("mailbox", t.s.Mailbox),
		slog.Int("draft_bytes", len(d.plan.mime)), slog.Int("attachments", len(d.plan.atts)), slog.Bool("save_to_sent_items", t.save))
	return relay.Reply{Status: "2.0.0", Text: "202 Accepted", Type: DiagGraph}, false
}

// create makes the draft from MIME and returns its id ("" on failure).
func (t *Transport) create(ctx context.Context, tok string, mime []byte) (string, relay.Reply, bool) {
	body := make([]byte, base64.StdEncoding.EncodedLen(len(mime)))
	base64.StdEncoding.Encode(body, mime)
	data, r, refused, ok := t.call(ctx, tok, http.MethodPost, t.user+"/messages", "text/plain", bytes.NewReader(body), http.StatusCreated)
	if !ok {
		return "", r, refused
	}
	var m struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &m); err != nil || m.ID == "" {
		return "", relay.LocalReply("4.3.0", "Graph created a draft without an id"), false
	}
	return m.ID, relay.Reply{}, false
}

// attach adds one cut part to the draft: by one JSON POST when that
// request fits Graph's 4 MB, else through an upload session.
func (t *Transport) attach(ctx context.Context, tok, msgURL string, a *attachment) (relay.Reply, bool, bool) {
	if a.size <= t.maxRequest/4*3 {
		content, err := io.ReadAll(a.open())
		if err != nil || len(content) != a.size {
			return relay.LocalReply("4.3.0", "an attachment decoded differently twice"), false, false
		}
		fa := map[string]any{
			"@odata.type":  "#microsoft.graph.fileAttachment",
			"name":         a.name,
			"contentType":  a.contentType,
			"isInline":     a.inline,
			"contentBytes": content, // []byte marshals as standard base64
		}
		if a.contentID != "" {
			fa["contentId"] = a.contentID
		}
		body, _ := json.Marshal(fa)
		if len(body) <= t.maxRequest {
			_, r, refused, ok := t.call(ctx, tok, http.MethodPost, msgURL+"/attachments", "application/json", bytes.NewReader(body), http.StatusCreated)
			return r, refused, ok
		}
	}
	return t.upload(ctx, tok, msgURL, a)
}

// upload adds a through an upload session: PUT ranges of the decoded
// content to the session's pre-authenticated URL, from where the session
// says it expects the next one.
func (t *Transport) upload(ctx context.Context, tok, msgURL string, a *attachment) (relay.Reply, bool, bool) {
	item := map[string]any{"attachmentType": "file", "name": a.name, "size": a.size, "contentType": a.contentType, "isInline": a.inline}
	if a.contentID != "" {
		item["contentId"] = a.contentID
	}
	body, _ := json.Marshal(map[string]any{"AttachmentItem": item})
	data, r, refused, ok := t.call(ctx, tok, http.MethodPost, msgURL+"/attachments/createUploadSession", "application/json", bytes.NewReader(body), http.StatusCreated)
	if !ok {
		return r, refused, false
	}
	var s struct {
		UploadURL string `json:"uploadUrl"`
	}
	if err := json.Unmarshal(data, &s); err != nil || !strings.HasPrefix(s.UploadURL, "http") {
		return relay.LocalReply("4.3.0", "Graph created an upload session without an upload URL"), false, false
	}
	buf := make([]byte, min(t.chunk, a.size))
	r0 := a.open()
	off := 0
	// Each range is sent once unless the session asks for one again; the
	// bound keeps a confused session from looping.
	for tries := 2*(a.size/t.chunk+1) + 2; off < a.size; tries-- {
		if tries == 0 {
			return relay.LocalReply("4.3.0", "the upload session kept asking for ranges already sent"), false, false
		}
		n, err := io.ReadFull(r0, buf[:min(t.chunk, a.size-off)])
		if err != nil {
			return relay.LocalReply("4.3.0", "an attachment decoded differently twice"), false, false
		}
		next, r, ok := t.put(ctx, s.UploadURL, buf[:n], off, a.size)
		if !ok {
			return r, false, false
		}
		if next != off+n {
			if next < 0 || next >= a.size {
				return relay.LocalReply("4.3.0", "the upload session expects a range outside the attachment"), false, false
			}
			// Resume where the session says; the content is decoded anew.
			r0 = a.open()
			if _, err := io.CopyN(io.Discard, r0, int64(next)); err != nil {
				return relay.LocalReply("4.3.0", "an attachment decoded differently twice"), false, false
			}
		}
		off = next
	}
	return relay.Reply{}, false, true
}

// put sends one range to an upload URL and returns where the session
// expects the next one (size once it holds the whole attachment). The URL
// carries its own authorization; Microsoft documents that the PUT has no
// Authorization header.
func (t *Transport) put(ctx context.Context, uploadURL string, chunk []byte, off, size int) (int, relay.Reply, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, uploadURL, bytes.NewReader(chunk))
	if err != nil {
		return 0, relay.LocalReply("4.3.0", "Graph gave an upload URL that is not a URL"), false
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+len(chunk)-1, size))
	resp, data, r, ok := t.do(req)
	if !ok {
		return 0, r, false
	}
	switch {
	case resp.StatusCode == http.StatusCreated && off+len(chunk) == size:
		return size, relay.Reply{}, true
	case resp.StatusCode == http.StatusOK:
		// Even after the last range: the session may still miss one.
		var s struct {
			Next []string `json:"nextExpectedRanges"`
		}
		if json.Unmarshal(data, &s) != nil || len(s.Next) == 0 {
			return 0, relay.LocalReply("4.3.0", "the upload session gave no next expected range"), false
		}
		start, _, _ := strings.Cut(s.Next[0], "-")
		n, err := strconv.Atoi(start)
		if err != nil {
			return 0, relay.LocalReply("4.3.0", "the upload session gave a next expected range that is not a number"), false
		}
		return n, relay.Reply{}, true
	case resp.StatusCode < 300:
		return 0, relay.LocalReply("4.3.0", "the upload session answered "+resp.Status+" out of turn"), false
	}
	return 0, classify(resp, data), false
}

// call makes one Graph request with tok and returns the answer's body when
// its status is want; otherwise the reply, refused on a 401.
func (t *Transport) call(ctx context.Context, tok, method, u, ctype string, body io.Reader, want int) ([]byte, relay.Reply, bool, bool) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, relay.LocalReply("4.3.5", "bad Graph URL"), false, false
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, data, r, ok := t.do(req)
	if !ok {
		return nil, r, false, false
	}
	if resp.StatusCode == want {
		return data, relay.Reply{}, false, true
	}
	return nil, classify(resp, data), resp.StatusCode == http.StatusUnauthorized, false
}

// do makes req and reads its answer, bounded.
func (t *Transport) do(req *http.Request) (*http.Response, []byte, relay.Reply, bool) {
	resp, err := t.s.HTTPClient.Do(req)
	if err != nil {
		return nil, nil, apirelay.CallError(req.Context(), err, "Graph"), false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil && resp.StatusCode < 300 {
		return nil, nil, apirelay.CallError(req.Context(), err, "Graph"), false
	}
	return resp, data, relay.Reply{}, true
}

// deleteDraft removes a draft that will not be sent, best effort: a
// failure is logged, and the message's reply stays the one that counts.
func (t *Transport) deleteDraft(ctx context.Context, tok, msgID string, id postern.MsgID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, r, _, ok := t.call(ctx, tok, http.MethodDelete, t.user+"/messages/"+url.PathEscape(msgID), "", nil, http.StatusNoContent)
	if !ok {
		t.s.Log.LogAttrs(ctx, slog.LevelWarn, "graph draft not deleted; it stays in the mailbox's Drafts",
			slog.String("msg_id", string(id)), slog.String("mailbox", t.s.Mailbox), slog.String("reply", r.Text))
	}
}
