package graphrelay_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/quotedprintable"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"

	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/graphrelay"
	"github.com/postern/postern/internal/relay/graphrelay/graphtest"
)

// part is one attachment of a test message.
type part struct {
	name, ctype, cid string
	inline, qp       bool // qp: quoted-printable, else base64
	data             []byte
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// mixed builds a multipart/mixed message (CRLF) with a text part of pad
// bytes and the parts, base64 in 76-column lines. No text part when pad < 0.
func mixed(pad int, parts ...part) string {
	var b strings.Builder
	b.WriteString("From: Scanner <scanner@contoso.com>\r\nTo: a@contoso.com\r\nSubject: scan\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n")
	if pad >= 0 {
		b.WriteString("--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
		line := strings.Repeat("t", 76) + "\r\n"
		for ; pad >= len(line); pad -= len(line) {
			b.WriteString(line)
		}
		b.WriteString(strings.Repeat("t", pad))
		b.WriteString("\r\n")
	}
	for _, p := range parts {
		disp := "attachment"
		if p.inline {
			disp = "inline"
		}
		cte := "base64"
		if p.qp {
			cte = "quoted-printable"
		}
		fmt.Fprintf(&b, "--b1\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: %s; filename=\"%s\"\r\nContent-Transfer-Encoding: %s\r\n", p.ctype, p.name, disp, p.name, cte)
		if p.cid != "" {
			fmt.Fprintf(&b, "Content-ID: <%s>\r\n", p.cid)
		}
		b.WriteString("\r\n")
		if p.qp {
			w := quotedprintable.NewWriter(&b)
			_, _ = w.Write(p.data)
			_ = w.Close()
			b.WriteString("\r\n")
			continue
		}
		enc := base64.StdEncoding.EncodeToString(p.data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--b1--\r\n")
	return b.String()
}

// mixedSized is mixed with the text padded so the message is n bytes.
func mixedSized(t *testing.T, n int, parts ...part) string {
	t.Helper()
	s := mixed(0, parts...)
	if len(s) > n {
		t.Fatalf("parts alone take %d bytes, more than %d", len(s), n)
	}
	s = mixed(n-len(s), parts...)
	if len(s) != n {
		t.Fatalf("built %d bytes, want %d", len(s), n)
	}
	return s
}

type file struct {
	name, sum string
}

func files(env *enmime.Envelope) []file {
	var out []file
	for _, p := range slices.Concat(env.Attachments, env.Inlines, env.OtherParts) {
		out = append(out, file{p.FileName, fmt.Sprintf("%x", sha256.Sum256(p.Content))})
	}
	return out
}

// checkDelivered asserts that what Graph sent (the draft's MIME and the
// attachments added to it) has the stored message's headers (but Bcc),
// body text and attachments, byte for byte.
func checkDelivered(t *testing.T, stored string, sent graphtest.Message) {
	t.Helper()
	want, err := enmime.ReadEnvelope(strings.NewReader(stored))
	if err != nil {
		t.Fatal(err)
	}
	got, err := enmime.ReadEnvelope(bytes.NewReader(sent.MIME))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range want.GetHeaderKeys() {
		if k != "Bcc" && !slices.Equal(want.GetHeaderValues(k), got.GetHeaderValues(k)) {
			t.Errorf("header %s: sent %q, stored %q", k, got.GetHeaderValues(k), want.GetHeaderValues(k))
		}
	}
	if got.Text != want.Text || got.HTML != want.HTML {
		t.Errorf("body: sent %d bytes of text and %d of HTML, stored %d and %d", len(got.Text), len(got.HTML), len(want.Text), len(want.HTML))
	}
	gotFiles := files(got)
	for _, a := range sent.Attachments {
		gotFiles = append(gotFiles, file{a.Name, fmt.Sprintf("%x", sha256.Sum256(a.Content))})
	}
	cmp := func(a, b file) int { return strings.Compare(a.name+a.sum, b.name+b.sum) }
	wantFiles := files(want)
	slices.SortFunc(gotFiles, cmp)
	slices.SortFunc(wantFiles, cmp)
	if !slices.Equal(gotFiles, wantFiles) {
		t.Errorf("attachments sent %v, stored %v", gotFiles, wantFiles)
	}
}

func endpoints(reqs []graphtest.Request) []graphtest.Endpoint {
	var out []graphtest.Endpoint
	for _, q := range reqs {
		out = append(out, q.Endpoint)
	}
	return out
}

func wantEndpoints(t *testing.T, reqs []graphtest.Request, want ...graphtest.Endpoint) {
	t.Helper()
	if got := endpoints(reqs); !slices.Equal(got, want) {
		t.Fatalf("requests %v, want %v", got, want)
	}
}

func accepted(t *testing.T, res *relay.Result) {
	t.Helper()
	for _, r := range res.Rcpts {
		if !r.Reply.Accepted() || r.Reply.Type != graphrelay.DiagGraph {
			t.Fatalf("%s: %v", r.Addr, r.Reply)
		}
	}
}

func TestDraftWithoutSentItems(t *testing.T) {
	t.Parallel()
	e := setupSave(t, false)
	accepted(t, send(t, e, msg(stored, "a@contoso.com", "b@fabrikam.com")))
	reqs := e.graph.Requests()
	wantEndpoints(t, reqs, graphtest.CreateMessage, graphtest.UpdateMessage, graphtest.SendDraft)
	create, patch, sendq := reqs[0], reqs[1], reqs[2]
	id := patch.MessageID
	base := "/v1.0/users/" + mailbox + "/messages"
	for i, c := range []struct {
		method, path, ctype string
	}{{"POST", base, "text/plain"}, {"PATCH", base + "/" + id, "application/json"}, {"POST", base + "/" + id + "/send", ""}} {
		q := reqs[i]
		if q.Method != c.method || q.Path != c.path || q.ContentType != c.ctype || q.Mailbox != mailbox {
			t.Errorf("request %d: %s %s (%s, mailbox %q), want %s %s (%s)", i, q.Method, q.Path, q.ContentType, q.Mailbox, c.method, c.path, c.ctype)
		}
		if q.Header.Get("Authorization") != "Bearer "+q.Token || !e.entra.Valid(q.Token) {
			t.Errorf("request %d: authorization %q is not a valid bearer token", i, q.Header.Get("Authorization"))
		}
	}
	want := strings.ReplaceAll(stored, "\n", "\r\n")
	if string(create.MIME) != want || string(create.Body) != base64.StdEncoding.EncodeToString([]byte(want)) {
		t.Errorf("draft MIME %q, want %q", create.MIME, want)
	}
	var p struct {
		Props []struct{ ID, Value string } `json:"singleValueExtendedProperties"`
	}
	if err := json.Unmarshal(patch.Body, &p); err != nil || len(p.Props) != 1 || p.Props[0].ID != "Boolean 0x0E01000B" || p.Props[0].Value != "true" {
		t.Errorf("PATCH body %s", patch.Body)
	}
	if sendq.Header.Get("Content-Length") != "0" || len(sendq.Body) != 0 {
		t.Errorf("send with Content-Length %q and %d bytes", sendq.Header.Get("Content-Length"), len(sendq.Body))
	}
	sent := e.graph.Sent()
	if len(sent) != 1 || string(sent[0].MIME) != want || sent[0].Via != graphtest.CreateMessage {
		t.Fatalf("sent %d messages", len(sent))
	}
	if d, s := e.graph.Drafts(), e.graph.SentItems(); len(d) != 0 || len(s) != 0 {
		t.Fatalf("%d drafts and %d in Sent Items left", len(d), len(s))
	}
}

// TestThreeMiBBoundary crosses the true sendMail limit with a message
// whose attachment can go apart: exactly 3 MiB is one sendMail, one byte
// more a draft with the attachment added by POST.
func TestThreeMiBBoundary(t *testing.T) {
	t.Parallel()
	e := setupSave(t, true)
	pdf := part{name: "scan.pdf", ctype: "application/pdf", data: randomBytes(1, 2<<20)}
	at := mixedSized(t, graphrelay.MaxMessageBytes, pdf)
	accepted(t, send(t, e, msg(at, "a@contoso.com")))
	reqs := e.graph.Requests()
	wantEndpoints(t, reqs, graphtest.SendMail)
	if string(reqs[0].MIME) != at || len(reqs[0].Body) != graphrelay.MaxRequestBytes {
		t.Fatalf("sendMail of %d bytes", len(reqs[0].Body))
	}

	over := mixedSized(t, graphrelay.MaxMessageBytes+1, pdf)
	accepted(t, send(t, e, msg(over, "a@contoso.com")))
	reqs = e.graph.Requests()[1:]
	wantEndpoints(t, reqs, graphtest.CreateMessage, graphtest.AddAttachment, graphtest.SendDraft)
	if len(reqs[0].Body) > graphrelay.MaxRequestBytes || len(reqs[1].Body) > graphrelay.MaxRequestBytes {
		t.Fatalf("requests of %d and %d bytes", len(reqs[0].Body), len(reqs[1].Body))
	}
	sent := e.graph.Sent()
	if len(sent) != 2 {
		t.Fatalf("%d sent", len(sent))
	}
	checkDelivered(t, over, sent[1])
	if a := sent[1].Attachments; len(a) != 1 || a[0].Via != graphtest.AddAttachment || a[0].ContentType != "application/pdf" || a[0].IsInline {
		t.Fatalf("attachments %+v", a)
	}
	// Kept: the sendMail copy and the sent draft.
	if d, s := e.graph.Drafts(), e.graph.SentItems(); len(d) != 0 || len(s) != 2 {
		t.Fatalf("%d drafts and %d in Sent Items", len(d), len(s))
	}
}

// TestUploadSession sends a message with a 5 MiB attachment at Graph's
// true sizes: the draft keeps the body and the inline image, the PDF goes
// through an upload session in 3.75 MiB ranges.
func TestUploadSession(t *testing.T) {
	t.Parallel()
	e := setupSave(t, false)
	pdf := part{name: "scan.pdf", ctype: "application/pdf", data: randomBytes(2, 5<<20+7)}
	logo := part{name: "logo.png", ctype: "image/png", cid: "logo@postern", inline: true, data: randomBytes(3, 200<<10)}
	body := mixed(500, logo, pdf)
	accepted(t, send(t, e, msg(body, "a@contoso.com")))
	reqs := e.graph.Requests()
	wantEndpoints(t, reqs, graphtest.CreateMessage, graphtest.UpdateMessage, graphtest.CreateUploadSession,
		graphtest.UploadRange, graphtest.UploadRange, graphtest.SendDraft)

	var cs struct {
		Item map[string]any `json:"AttachmentItem"`
	}
	if err := json.Unmarshal(reqs[2].Body, &cs); err != nil {
		t.Fatal(err)
	}
	wantItem := map[string]any{"attachmentType": "file", "name": "scan.pdf", "size": float64(len(pdf.data)), "contentType": "application/pdf", "isInline": false}
	if fmt.Sprint(cs.Item) != fmt.Sprint(wantItem) {
		t.Errorf("AttachmentItem %v, want %v", cs.Item, wantItem)
	}
	off := 0
	for _, q := range reqs[3:5] {
		if q.Method != "PUT" || q.Header.Get("Authorization") != "" || q.Token != "" {
			t.Errorf("%s with Authorization %q", q.Method, q.Header.Get("Authorization"))
		}
		if q.ContentType != "application/octet-stream" || len(q.Body) > 4<<20 {
			t.Errorf("range of %d bytes as %q", len(q.Body), q.ContentType)
		}
		last := off+len(q.Body) == len(pdf.data)
		if !last && (len(q.Body)%(320<<10) != 0 || len(q.Body) != graphrelay.UploadChunk) {
			t.Errorf("intermediate range of %d bytes", len(q.Body))
		}
		if cr := fmt.Sprintf("bytes %d-%d/%d", off, off+len(q.Body)-1, len(pdf.data)); q.Header.Get("Content-Range") != cr {
			t.Errorf("Content-Range %q, want %q", q.Header.Get("Content-Range"), cr)
		}
		off += len(q.Body)
	}
	sent := e.graph.Sent()
	if len(sent) != 1 {
		t.Fatalf("%d sent", len(sent))
	}
	checkDelivered(t, body, sent[0])
	if a := sent[0].Attachments; len(a) != 1 || a[0].Via != graphtest.UploadRange || !bytes.Equal(a[0].Content, pdf.data) {
		t.Fatalf("%d attachments", len(a))
	}
	if len(reqs[0].Body) > graphrelay.MaxRequestBytes || !bytes.Contains(sent[0].MIME, []byte("Content-ID: <logo@postern>")) {
		t.Errorf("draft of %d bytes, inline image kept: %v", len(reqs[0].Body), bytes.Contains(sent[0].MIME, []byte("logo@postern")))
	}
	if d, s := e.graph.Drafts(), e.graph.SentItems(); len(d) != 0 || len(s) != 0 {
		t.Fatalf("%d drafts and %d in Sent Items left", len(d), len(s))
	}
}

// small lowers the limits: 64 KiB requests (48 KiB drafts), total limit,
// 320 KiB ranges; the stand-in enforces the same request size.
func small(t *testing.T, e *env, total int) {
	graphrelay.SetLimits(e.tr, 64<<10, total, 320<<10)
	l := graphtest.DefaultLimits()
	l.MaxRequestBytes, l.MinUploadSessionBytes = 64<<10, 1
	e.graph.SetLimits(l)
}

func TestLargeLimit(t *testing.T) {
	t.Parallel()
	parts := []part{
		{name: "a.bin", ctype: "application/octet-stream", data: randomBytes(4, 700<<10)},
		{name: "b.txt", ctype: "text/plain", data: randomBytes(5, 40<<10)},
		{name: "c.jpg", ctype: "image/jpeg", data: randomBytes(6, 400<<10)},
	}
	total := len(mixed(1000, parts...)) // the limit, lowered to about 1.5 MiB
	body := mixedSized(t, total, parts...)
	e := setupSave(t, false)
	small(t, e, total)
	accepted(t, send(t, e, msg(body, "a@contoso.com")))
	wantEndpoints(t, e.graph.Requests(), graphtest.CreateMessage, graphtest.UpdateMessage,
		graphtest.CreateUploadSession, graphtest.UploadRange, graphtest.UploadRange, graphtest.UploadRange, // a.bin
		graphtest.AddAttachment,                                                     // b.txt, 40 KiB: its JSON fits 64 KiB
		graphtest.CreateUploadSession, graphtest.UploadRange, graphtest.UploadRange, // c.jpg
		graphtest.SendDraft)
	checkDelivered(t, body, e.graph.Sent()[0])
	before := len(e.graph.Requests())

	over := mixedSized(t, total+1, parts...)
	for _, size := range []int64{0, int64(len(over))} { // unknown, then known
		m := msg(over, "a@contoso.com")
		m.Size = size
		res := send(t, e, m)
		if r := res.Rcpts[0].Reply; r.Status != "5.3.4" || !strings.Contains(r.Text, strconv.Itoa(total)+" bytes") {
			t.Fatalf("over the limit: %v", r)
		}
	}
	if n := len(e.graph.Requests()); n != before {
		t.Fatalf("%d requests over the limit", n-before)
	}
}

// failReader fails the test when read: a message too large to send must
// be refused by its size alone.
type failReader struct{ t *testing.T }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("message read")
	return 0, io.EOF
}

func TestOver150MiBRefusedUnread(t *testing.T) {
	t.Parallel()
	e := setupSave(t, false)
	m := msg("", "a@contoso.com")
	m.Body, m.Size = failReader{t}, graphrelay.MaxLargeMessageBytes+1
	res := send(t, e, m)
	if r := res.Rcpts[0].Reply; r.Status != "5.3.4" || !strings.Contains(r.Text, "157286400 bytes (150 MiB)") || r.Remote() {
		t.Fatalf("reply %v", r)
	}
	if n := len(e.graph.Requests()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

// bigMessage needs every kind of request: a.bin by upload session, b.txt
// by POST.
func bigMessage() string {
	return mixed(100,
		part{name: "a.bin", ctype: "application/octet-stream", data: randomBytes(7, 500<<10)},
		part{name: "b.txt", ctype: "text/plain", data: randomBytes(8, 40<<10)})
}

func TestFailureDeletesDraft(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ep     graphtest.Endpoint
		f      graphtest.Failure
		status string
		after  time.Duration
	}{
		{graphtest.UpdateMessage, graphtest.AccessDenied(), "5.7.1", 0},
		{graphtest.CreateUploadSession, graphtest.NotRESTEnabled(), "5.7.0", 0},
		{graphtest.UploadRange, graphtest.Unavailable(7 * time.Second), "4.3.0", 7 * time.Second},
		{graphtest.UploadRange, graphtest.Failure{Status: 416, Code: "InvalidRange", Message: "Expected a range starting at 0."}, "4.3.0", 0},
		{graphtest.AddAttachment, graphtest.Throttled(30 * time.Second), "4.4.5", 30 * time.Second},
		{graphtest.SendDraft, graphtest.TooLarge(), "5.3.4", 0},
		{graphtest.SendDraft, graphtest.InvalidRecipients(), "5.1.3", 0},
		{graphtest.SendDraft, graphtest.InvalidUser(), "5.7.0", 0},
	} {
		t.Run(fmt.Sprint(c.ep, c.f.Status, c.f.Code), func(t *testing.T) {
			e := setupSave(t, false)
			small(t, e, graphrelay.MaxLargeMessageBytes)
			e.graph.FailOn(c.ep, c.f)
			res := send(t, e, msg(bigMessage(), "a@contoso.com", "b@fabrikam.com"))
			for _, r := range res.Rcpts {
				rp := r.Reply
				if rp.Status != c.status || !strings.Contains(rp.Text, c.f.Code) || !strings.Contains(rp.Text, c.f.Message) {
					t.Fatalf("reply %v, want status %s with %s: %s", rp, c.status, c.f.Code, c.f.Message)
				}
				if d, ok := graphrelay.RetryAfter(rp); ok != (c.after > 0) || d != c.after {
					t.Fatalf("retry after %v %v, want %v", d, ok, c.after)
				}
			}
			reqs := e.graph.Requests()
			last, created := reqs[len(reqs)-1], reqs[1].MessageID
			if last.Endpoint != graphtest.DeleteMessage || last.MessageID != created || last.Method != "DELETE" ||
				last.Path != "/v1.0/users/"+mailbox+"/messages/"+created || !e.entra.Valid(last.Token) {
				t.Fatalf("last request %s %s (%s), want the draft %s deleted", last.Method, last.Path, last.Endpoint, created)
			}
			if d, s := e.graph.Drafts(), e.graph.Sent(); len(d) != 0 || len(s) != 0 {
				t.Fatalf("%d drafts left, %d sent", len(d), len(s))
			}
		})
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	e := setupSave(t, false)
	e.graph.FailOn(graphtest.CreateMessage, graphtest.AccessDenied())
	res := send(t, e, msg(stored, "a@contoso.com", "b@fabrikam.com"))
	if r := res.Rcpts[0].Reply; r.Status != "5.7.1" || !strings.Contains(r.Text, "ErrorAccessDenied") {
		t.Fatalf("reply %v", r)
	}
	wantEndpoints(t, e.graph.Requests(), graphtest.CreateMessage)
}

func TestDraftUnauthorizedRenewsOnce(t *testing.T) {
	t.Parallel()
	e := setupSave(t, false)
	e.graph.FailOn(graphtest.SendDraft, graphtest.Unauthorized())
	accepted(t, send(t, e, msg(stored, "a@contoso.com", "b@fabrikam.com")))
	reqs := e.graph.Requests()
	wantEndpoints(t, reqs, graphtest.CreateMessage, graphtest.UpdateMessage, graphtest.SendDraft,
		graphtest.DeleteMessage, graphtest.CreateMessage, graphtest.UpdateMessage, graphtest.SendDraft)
	first, fresh := reqs[0].Token, reqs[3].Token
	if first == fresh || reqs[3].MessageID != reqs[1].MessageID || reqs[6].Token != fresh || e.fetches.Load() != 1 {
		t.Fatalf("stale draft deleted with a fresh token: %v; %d invalidations", first != fresh, e.fetches.Load())
	}
	if d, s := e.graph.Drafts(), e.graph.Sent(); len(d) != 0 || len(s) != 1 {
		t.Fatalf("%d drafts left, %d sent", len(d), len(s))
	}

	// Refused twice: temporary, and no draft left behind.
	e.graph.FailOn(graphtest.SendDraft, graphtest.Unauthorized(), graphtest.Unauthorized())
	res := send(t, e, msg(stored, "a@contoso.com", "b@fabrikam.com"))
	if r := res.Rcpts[0].Reply; r.Permanent() || r.Accepted() || !strings.Contains(r.Text, "InvalidAuthenticationToken") {
		t.Fatalf("reply %v", r)
	}
	if d, s := e.graph.Drafts(), e.graph.Sent(); len(d) != 0 || len(s) != 1 {
		t.Fatalf("%d drafts left, %d sent", len(d), len(s))
	}
}

func TestUploadResumesWhereSessionAsks(t *testing.T) {
	t.Parallel()
	e := setupSave(t, false)
	small(t, e, graphrelay.MaxLargeMessageBytes)
	e.graph.LoseRanges(1)
	body := bigMessage()
	accepted(t, send(t, e, msg(body, "a@contoso.com")))
	var ranges []string
	for _, q := range e.graph.Requests() {
		if q.Endpoint == graphtest.UploadRange {
			ranges = append(ranges, q.Header.Get("Content-Range"))
		}
	}
	const n = 500 << 10
	want := []string{fmt.Sprintf("bytes 0-%d/%d", 320<<10-1, n), fmt.Sprintf("bytes 0-%d/%d", 320<<10-1, n), fmt.Sprintf("bytes %d-%d/%d", 320<<10, n-1, n)}
	if !slices.Equal(ranges, want) {
		t.Fatalf("ranges %q, want %q", ranges, want)
	}
	checkDelivered(t, body, e.graph.Sent()[0])

	// The last range lost: the session's 200 asks for it again.
	e.graph.LoseRanges(1)
	one := part{name: "one.bin", ctype: "application/octet-stream", data: randomBytes(13, 300<<10)}
	body = mixed(100, one)
	accepted(t, send(t, e, msg(body, "a@contoso.com")))
	reqs := e.graph.Requests()
	wantEndpoints(t, reqs[len(reqs)-4:], graphtest.CreateUploadSession, graphtest.UploadRange, graphtest.UploadRange, graphtest.SendDraft)
	checkDelivered(t, body, e.graph.Sent()[1])
}

func TestOnlyAttachmentKeepsMIME(t *testing.T) {
	t.Parallel()
	e := setupSave(t, false)
	small(t, e, graphrelay.MaxLargeMessageBytes)
	body := mixed(-1, part{name: "a.bin", ctype: "application/octet-stream", data: randomBytes(9, 100<<10)})
	accepted(t, send(t, e, msg(body, "a@contoso.com")))
	sent := e.graph.Sent()[0]
	checkDelivered(t, body, sent)
	// The multipart keeps one (empty) part, as MIME requires.
	env, err := enmime.ReadEnvelope(bytes.NewReader(sent.MIME))
	if err != nil || len(env.Errors) != 0 {
		t.Fatalf("draft MIME: %v %v", err, env.Errors)
	}
}

func TestBodyTooLargeForDraft(t *testing.T) {
	t.Parallel()
	e := setupSave(t, false)
	small(t, e, graphrelay.MaxLargeMessageBytes)
	res := send(t, e, msg(mixed(60<<10, part{name: "a.bin", ctype: "application/octet-stream", data: randomBytes(10, 100<<10)}), "a@contoso.com"))
	if r := res.Rcpts[0].Reply; r.Status != "5.3.4" || !strings.Contains(r.Text, "without its attachment parts") {
		t.Fatalf("reply %v", r)
	}
	if n := len(e.graph.Requests()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

func TestDraftDeadline(t *testing.T) {
	t.Parallel()
	e := setupSave(t, false)
	e.graph.SetDelay(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := e.tr.Send(ctx, msg(stored, "a@contoso.com", "b@fabrikam.com"))
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Rcpts[0].Reply; r.Status != "4.4.2" || r.Remote() {
		t.Fatalf("reply %v", r)
	}
}

// TestNestedParts sends what mail clients build: text and HTML
// alternatives, an inline image in a related part, attachments in base64
// (quoted-printable in TestQuotedPrintablePart). Cut parts keep their inline flag and Content-ID.
func TestNestedParts(t *testing.T) {
	t.Parallel()
	notes := []byte(strings.Repeat("Line of notes with = signs and trailing space \r\n", 1500))
	p, err := enmime.Builder().RandSeed(1).From("Scanner", "scanner@contoso.com").To("", "a@contoso.com").Subject("nested").
		Text([]byte("see attached\r\n")).HTML([]byte(`<p>see <img src="cid:img1@postern"></p>`)).
		AddInline(randomBytes(11, 90<<10), "image/png", "img.png", "img1@postern").
		AddAttachment(randomBytes(12, 300<<10), "application/pdf", "scan.pdf").
		AddAttachment(notes, "text/plain", "notes.txt").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.Encode(&b); err != nil {
		t.Fatal(err)
	}
	body := b.String()
	if !strings.Contains(body, "multipart/related") {
		t.Fatalf("the builder made no related part:\n%.2000s", body)
	}
	e := setupSave(t, false)
	small(t, e, graphrelay.MaxLargeMessageBytes)
	accepted(t, send(t, e, msg(body, "a@contoso.com")))
	sent := e.graph.Sent()[0]
	checkDelivered(t, body, sent)
	byName := map[string]graphtest.Attachment{}
	for _, a := range sent.Attachments {
		byName[a.Name] = a
	}
	if img := byName["img.png"]; !img.IsInline || img.ContentID != "img1@postern" || img.ContentType != "image/png" {
		t.Errorf("inline image sent as %+v", img)
	}
	if n := byName["notes.txt"]; !bytes.Equal(n.Content, notes) || n.IsInline {
		t.Errorf("notes sent as %d bytes", len(n.Content))
	}
	if _, ok := byName["scan.pdf"]; !ok {
		t.Errorf("scan.pdf not cut: %v", byName)
	}
}

func TestDraftRevokedToken(t *testing.T) {
	t.Parallel()
	e := setupSave(t, false)
	accepted(t, send(t, e, msg(stored, "a@contoso.com", "b@fabrikam.com")))
	first := e.graph.Requests()[0].Token
	e.entra.Revoke(first)
	accepted(t, send(t, e, msg(stored, "a@contoso.com", "b@fabrikam.com")))
	reqs := e.graph.Requests()[3:]
	wantEndpoints(t, reqs, graphtest.CreateMessage, graphtest.CreateMessage, graphtest.UpdateMessage, graphtest.SendDraft)
	if reqs[0].Token != first || reqs[1].Token == first || e.fetches.Load() != 1 {
		t.Fatalf("retried with the revoked token: %v; %d invalidations", reqs[1].Token == first, e.fetches.Load())
	}
	if d := e.graph.Drafts(); len(d) != 0 {
		t.Fatalf("%d drafts left", len(d))
	}
}

func TestQuotedPrintablePart(t *testing.T) {
	t.Parallel()
	notes := []byte(strings.Repeat("Zeile mit = Zeichen, \xe4\xf6\xfc und Leerzeichen am Ende \r\n", 2000))
	body := mixed(100, part{name: "notes.txt", ctype: "text/plain; charset=iso-8859-1", qp: true, data: notes})
	e := setupSave(t, false)
	small(t, e, graphrelay.MaxLargeMessageBytes)
	accepted(t, send(t, e, msg(body, "a@contoso.com")))
	sent := e.graph.Sent()[0]
	if a := sent.Attachments; len(a) != 1 || !bytes.Equal(a[0].Content, notes) || a[0].ContentType != "text/plain; charset=iso-8859-1" {
		t.Fatalf("attachments %d", len(a))
	}
}

func TestSignedNotCut(t *testing.T) {
	t.Parallel()
	inner := mixed(100, part{name: "a.bin", ctype: "application/octet-stream", data: randomBytes(14, 100<<10)})
	_, innerBody, _ := strings.Cut(inner, "\r\n\r\n")
	signed := "From: s@contoso.com\r\nTo: a@contoso.com\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"s1\"\r\n\r\n" +
		"--s1\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" + innerBody + "\r\n--s1\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--s1--\r\n"
	e := setupSave(t, false)
	small(t, e, graphrelay.MaxLargeMessageBytes)
	res := send(t, e, msg(signed, "a@contoso.com"))
	if r := res.Rcpts[0].Reply; r.Status != "5.3.4" {
		t.Fatalf("reply %v", r)
	}
	if n := len(e.graph.Requests()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

// TestThreeMiBBoundaryDraft: without Sent Items, exactly 3 MiB is a draft
// made of the whole message; one byte more has its attachment cut.
func TestThreeMiBBoundaryDraft(t *testing.T) {
	t.Parallel()
	e := setupSave(t, false)
	pdf := part{name: "scan.pdf", ctype: "application/pdf", data: randomBytes(15, 2<<20)}
	at := mixedSized(t, graphrelay.MaxMessageBytes, pdf)
	accepted(t, send(t, e, msg(at, "a@contoso.com")))
	reqs := e.graph.Requests()
	wantEndpoints(t, reqs, graphtest.CreateMessage, graphtest.UpdateMessage, graphtest.SendDraft)
	if string(reqs[0].MIME) != at || len(reqs[0].Body) != graphrelay.MaxRequestBytes {
		t.Fatalf("draft of %d bytes", len(reqs[0].Body))
	}

	over := mixedSized(t, graphrelay.MaxMessageBytes+1, pdf)
	accepted(t, send(t, e, msg(over, "a@contoso.com")))
	wantEndpoints(t, e.graph.Requests()[3:], graphtest.CreateMessage, graphtest.UpdateMessage, graphtest.AddAttachment, graphtest.SendDraft)
	checkDelivered(t, over, e.graph.Sent()[1])
	if d, s := e.graph.Drafts(), e.graph.SentItems(); len(d) != 0 || len(s) != 0 {
		t.Fatalf("%d drafts and %d in Sent Items left", len(d), len(s))
	}
}

// TestAttachmentRequestBoundary: an attachment whose JSON request is
// exactly the request limit goes by POST, one byte of content more by an
// upload session (limits lowered to 64 KiB).
func TestAttachmentRequestBoundary(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	var name string
	var n int
	for _, nm := range []string{"a.bin", "ab.bin", "abc.bin", "abcd.bin"} {
		overhead, _ := json.Marshal(map[string]any{"@odata.type": "#microsoft.graph.fileAttachment", "name": nm,
			"contentType": "application/octet-stream", "isInline": false, "contentBytes": []byte{}})
		if (limit-len(overhead))%4 == 0 {
			name, n = nm, (limit-len(overhead))/4*3
			break
		}
	}
	if name == "" {
		t.Fatal("no name makes the request limit a whole number of base64 quanta")
	}
	for _, c := range []struct {
		size int
		via  graphtest.Endpoint
	}{{n, graphtest.AddAttachment}, {n + 1, graphtest.CreateUploadSession}} {
		e := setupSave(t, false)
		small(t, e, graphrelay.MaxLargeMessageBytes)
		body := mixed(100, part{name: name, ctype: "application/octet-stream", data: randomBytes(16, c.size)})
		accepted(t, send(t, e, msg(body, "a@contoso.com")))
		reqs := e.graph.Requests()
		if reqs[2].Endpoint != c.via || (c.via == graphtest.AddAttachment && len(reqs[2].Body) != limit) {
			t.Fatalf("%d bytes: attached by %s with %d bytes", c.size, reqs[2].Endpoint, len(reqs[2].Body))
		}
		checkDelivered(t, body, e.graph.Sent()[0])
	}
}
