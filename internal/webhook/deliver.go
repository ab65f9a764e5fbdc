package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/jsonstr"
	"github.com/postern/postern/internal/postern"
)

// maxResponse is how much of a response body is read (and thrown away):
// enough to let the connection be reused, not enough to be a sink.
const maxResponse = 64 << 10

// userAgent names the sender to receivers; the digit is the payload major version.
const userAgent = "Postern/1"

// delivery is one job's attempt at one target.
type delivery struct {
	job       *postern.WebhookJob
	target    Target
	attempt   int
	webhookID string // stable across retries: receivers de-duplicate on it
}

func (d *delivery) kind() string {
	if d.target.Dir != "" {
		return "dir"
	}
	return "http"
}

// deadline is when the delivery stops being retried: its max age after
// routing (or after receipt, for a job without that time). A job with
// neither time has none and is bounded by the queue's receive count.
func (d *delivery) deadline() (time.Time, bool) {
	created := d.job.Created
	if created.IsZero() {
		created = d.job.Envelope.ReceivedAt
	}
	if created.IsZero() {
		return time.Time{}, false
	}
	return created.Add(d.target.MaxAge), true
}

// expired reports whether a failed attempt at now is the last: the
// deadline has come. Retries are scheduled no later than the deadline
// (Handler.retryDelay), so the one that lands on it ends the delivery.
func (d *delivery) expired(now time.Time) bool {
	deadline, ok := d.deadline()
	return ok && !now.Before(deadline)
}

// attempt makes one delivery. An error means no attempt could be made (the
// store, the link maker or the secret source failed: Postern's trouble, not
// the receiver's); otherwise the outcome says what the receiver did.
func (h *Handler) attempt(ctx context.Context, d *delivery) (outcome, error) {
	if err := d.resolveSecrets(ctx); err != nil {
		return outcome{}, err
	}
	if d.target.Payload == PayloadRaw {
		return h.attemptRaw(ctx, d)
	}
	body, err := h.payload(ctx, d.job)
	if err != nil {
		return outcome{}, err
	}
	if d.target.Dir != "" {
		return writeOutcome(writeFile(ctx, d.target.Dir, fileName(d.webhookID, ".json"), bytes.NewReader(body))), nil
	}
	ts := h.now()
	return h.send(ctx, d.target, request{
		url:    d.target.URL,
		header: signedHeader(d.webhookID, ts, signatures(d.target.Secrets, d.webhookID, ts, body), "application/json"),
		body:   bytes.NewReader(body),
	}), nil
}

// payload is the email.received body for job. The pooled buffers its
// bodies are read into go back before it returns, not after the send: the
// payload holds its own copy of them.
func (h *Handler) payload(ctx context.Context, job *postern.WebhookJob) ([]byte, error) {
	p, release, err := h.loadParsed(ctx, job)
	if err != nil {
		return nil, err
	}
	defer release()
	if p.TextRaw != nil {
		textRelease, err := h.loadTextRaw(ctx, job.ID, p)
		if err != nil {
			return nil, err
		}
		defer textRelease()
	}
	contents := p.inParsed()
	ev, err := buildReceived(ctx, job, &p.Parsed, h.urls)
	if err != nil {
		return nil, err
	}
	return encodeReceived(ev, p.Text, p.HTML, contents)
}

// rawInMemoryMax is the largest raw message attemptRaw holds in memory, so
// it is read from the store once (to sign and to send); a larger one is
// read twice rather than held.
const rawInMemoryMax = 1 << 20

// attemptRaw delivers the message as received, after the job's
// Authentication-Results field when it has one. A message of up to
// rawInMemoryMax bytes is read from the store once; a larger one twice, once
// to sign and once to send, rather than held in memory.
func (h *Handler) attemptRaw(ctx context.Context, d *delivery) (outcome, error) {
	key := d.job.ID.RawKey()
	if d.target.Dir != "" {
		env, err := rawEnvelopeJSON(d.job)
		if err != nil {
			return outcome{}, err
		}
		rc, err := h.getRaw(ctx, d.job)
		if err != nil {
			return outcome{}, err
		}
		defer rc.Close()
		return writeOutcome(writeRaw(ctx, d.target.Dir, d.webhookID, env, rc)), nil
	}
	ts := h.now()
	env, err := rawEnvelope(d.job)
	if err != nil {
		return outcome{}, err
	}
	rc, err := h.getRaw(ctx, d.job)
	if err != nil {
		return outcome{}, err
	}
	head, err := io.ReadAll(io.LimitReader(rc, rawInMemoryMax+1))
	if err != nil {
		rc.Close()
		return outcome{}, fmt.Errorf("read %s: %w", key, err)
	}
	if len(head) <= rawInMemoryMax {
		rc.Close()
		header := signedHeader(d.webhookID, ts, signatures(d.target.Secrets, d.webhookID, ts, signedBody(env, head)), "message/rfc822")
		header.Set(HeaderEnvelope, env)
		return h.send(ctx, d.target, request{
			url:    d.target.URL,
			header: header,
			body:   bytes.NewReader(head),
		}), nil
	}
	sig, size, err := signReader(d.target.Secrets, d.webhookID, ts, io.MultiReader(strings.NewReader(env+"."), bytes.NewReader(head), rc))
	size -= int64(len(env) + 1)
	rc.Close()
	if err != nil {
		return outcome{}, fmt.Errorf("read %s: %w", key, err)
	}
	getBody := func() (io.ReadCloser, error) { return h.getRaw(ctx, d.job) }
	body, err := getBody()
	if err != nil {
		return outcome{}, err
	}
	header := signedHeader(d.webhookID, ts, sig, "message/rfc822")
	header.Set(HeaderEnvelope, env)
	return h.send(ctx, d.target, request{
		url:     d.target.URL,
		header:  header,
		body:    body,
		size:    size,
		getBody: getBody,
	}), nil
}

// rawEnvelope is the HeaderEnvelope value of a raw delivery of job.
func rawEnvelope(job *postern.WebhookJob) (string, error) {
	b, err := rawEnvelopeJSON(job)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// rawEnvelopeJSON is the RawEnvelope of a raw delivery of job, as JSON.
func rawEnvelopeJSON(job *postern.WebhookJob) ([]byte, error) {
	e := &job.Envelope
	b, err := json.Marshal(RawEnvelope{
		V:          PayloadVersion,
		ID:         job.ID,
		Route:      job.Route,
		Sender:     e.Sender,
		Recipients: nonNil(job.Recipients),
		Identity:   e.Identity,
		ClientIP:   e.ClientIP,
		HELO:       e.HELO,
		Listener:   e.Listener,
		ReceivedAt: e.ReceivedAt.UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return b, nil
}

// loadParsed returns the parse stage's output for the job: the copy the job
// carries when parse put one in (no store read), else parsed.json, which
// is also where a copy that does not decode sends it (the archive decides).
// The bodies stay encoded (parsedBodies) and may point into a buffer the
// stage reuses: release gives it back once the payload is built.
func (h *Handler) loadParsed(ctx context.Context, job *postern.WebhookJob) (p *parsedBodies, release func(), err error) {
	id := job.ID
	if len(job.Parsed) > 0 {
		if p, ok := cutParsed(job.Parsed, job.Bodies); ok {
			return p, func() {}, nil
		}
		var p parsedBodies
		if err := json.Unmarshal(job.Parsed, &p); err == nil {
			return &p, func() {}, nil
		}
	}
	rc, err := h.get(ctx, id.ParsedKey())
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	buf, release := pooledBuf()
	b, err := readSized(rc, buf)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("read %s: %w", id.ParsedKey(), err)
	}
	if p, ok := cutParsed(b, job.Bodies); ok {
		return p, release, nil
	}
	p = new(parsedBodies)
	err = json.Unmarshal(b, p) // copies what it keeps: buf is free at once
	release()
	if err != nil {
		return nil, nil, fmt.Errorf("decode %s: %w", id.ParsedKey(), err)
	}
	return p, func() {}, nil
}

// bufs are the buffers parsed.json is read into and a text named in
// raw.eml is encoded into, a body of up to 1 MiB or two each: reused,
// rather than one allocated (and zeroed) per delivery. One that grew past
// maxPooledBuf is left to the collector.
var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBuf = 4 << 20

// pooledBuf returns an empty buffer from bufs, and the function that gives
// it back once nothing uses its bytes.
func pooledBuf() (*bytes.Buffer, func()) {
	buf := bufs.Get().(*bytes.Buffer)
	return buf, func() {
		if buf.Cap() <= maxPooledBuf {
			buf.Reset()
			bufs.Put(buf)
		}
	}
}

// loadTextRaw reads the text parsed.json names in raw.eml (TextRaw) into
// p.Text, encoded as json.Marshal encodes a string, so the payload is the
// same as with the text held in parsed.json. release gives back its buffer.
func (h *Handler) loadTextRaw(ctx context.Context, id postern.MsgID, p *parsedBodies) (release func(), err error) {
	rc, err := h.get(ctx, id.RawKey())
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	span := *p.TextRaw
	if err := postern.SeekTextRaw(rc, span); err != nil {
		return nil, postern.Permanent(fmt.Errorf("read %s: %w", id.RawKey(), err))
	}
	// The text is escaped a piece at a time into the pooled buffer's room
	// (the buffer only lends its memory), never held as a string of its
	// own. It is 7-bit text, so no piece ends inside a character.
	n := span[1] - span[0]
	buf, release := pooledBuf()
	// Sized for the text and some escapes; a span beyond any text parse
	// names (up to the inline cap) does not get its size in advance.
	pre := min(n, 8<<20)
	buf.Grow(int(pre + pre/16 + 16))
	out := append(buf.AvailableBuffer(), '"')
	piece := make([]byte, min(n, 32<<10))
	for left := n; left > 0; {
		k, err := io.ReadFull(rc, piece[:min(left, int64(len(piece)))])
		if err != nil {
			release()
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, postern.Permanent(fmt.Errorf("read %s: %w", id.RawKey(), postern.TextRawShort(span, err)))
			}
			return nil, fmt.Errorf("read %s: %w", id.RawKey(), err)
		}
		out = jsonstr.AppendContent(out, piece[:k])
		left -= int64(k)
	}
	p.Text = append(out, '"')
	p.TextRaw = nil
	return release, nil
}

// cutParsed decodes parsed but for its bodies, which go into the payload
// as they are, when spans says where they are. Spans for another parsed
// form (a retried parse wrote a new parsed.json) do not cut this one: ok
// is false, and the caller decodes it whole.
func cutParsed(parsed []byte, spans *postern.BodySpans) (*parsedBodies, bool) {
	if spans == nil {
		return nil, false
	}
	rest, text, html, ok := spans.Cut(parsed)
	if !ok {
		return nil, false
	}
	var p parsedBodies
	if err := json.Unmarshal(rest, &p); err != nil || string(p.Text) != `""` || string(p.HTML) != `""` {
		return nil, false
	}
	p.Text, p.HTML = text, html
	return &p, true
}

// readSized reads r whole into one buffer of its size when r can say it (a
// local file, a reader over bytes): parsed.json holds bodies of up to 1 MiB
// each, and a decoder's buffer would grow to it by doubling.
func readSized(r io.Reader, buf *bytes.Buffer) ([]byte, error) {
	var size int64 = -1
	switch v := r.(type) {
	case interface{ Stat() (fs.FileInfo, error) }:
		if fi, err := v.Stat(); err == nil {
			size = fi.Size()
		}
	case interface{ Len() int }:
		size = int64(v.Len())
	}
	if size >= 0 && size <= maxParsedBytes {
		buf.Grow(int(size) + bytes.MinRead) // room to see the end without growing
	}
	_, err := buf.ReadFrom(io.LimitReader(r, maxParsedBytes))
	return buf.Bytes(), err
}

// maxParsedBytes bounds what loadParsed reads: parse caps the bodies at 1
// MiB each and inlines attachments up to 256 KiB each, so a larger
// parsed.json is not one it wrote.
const maxParsedBytes = 256 << 20

// get opens a stored object. A missing object is permanent: parse writes
// both objects before it queues the job, so one that is gone will not come
// back, and the dead-letter queue keeps the job for a replay.
func (h *Handler) get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := h.store.Get(ctx, key)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return nil, postern.Permanent(fmt.Errorf("get %s: %w", key, err))
	case err != nil:
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return rc, nil
}

// signedHeader is the header set of every request, payload or failure notice.
// With no secrets the request goes unsigned (config validation requires
// one; this keeps a receiver-side problem from becoming a stuck queue).
func signedHeader(id string, ts time.Time, sig, contentType string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if sig != "" {
		h.Set(HeaderSignature, sig)
	}
	h.Set("Content-Type", contentType)
	h.Set("User-Agent", userAgent)
	return h
}

// request is one signed POST.
type request struct {
	url    string
	header http.Header
	body   io.Reader
	// size and getBody are set for streamed bodies; a *bytes.Reader body
	// gets both from net/http.
	size    int64
	getBody func() (io.ReadCloser, error)
}

// send POSTs r for target t, within t's timeout and through the client its
// address policy calls for, and classifies the answer.
func (h *Handler) send(ctx context.Context, t Target, r request) outcome {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, r.body)
	if err != nil {
		if c, ok := r.body.(io.Closer); ok {
			c.Close()
		}
		// The parse error quotes the URL, which may hold a token.
		return outcome{err: errors.New("invalid target url"), diag: "http; invalid url"}
	}
	req.Header = r.header
	if r.getBody != nil {
		req.ContentLength = r.size
		req.GetBody = r.getBody
		if r.size == 0 {
			req.Body.Close()
			req.Body = http.NoBody
		}
	}
	resp, err := h.clientFor(t).Do(req)
	if err != nil {
		return classifyError(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	return classifyStatus(resp.StatusCode, resp.Header, h.now())
}

// writeOutcome turns a directory write into an attempt outcome; a failed
// write is retried like a failed POST.
func writeOutcome(path string, err error) outcome {
	if err != nil {
		return outcome{err: err, diag: "file; write failed"}
	}
	return outcome{path: path}
}
