package parse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jhillyerd/enmime/v2"
	"golang.org/x/sync/semaphore"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue"
	"github.com/postern/postern/internal/route"
)

// Sender is the one queue method the stage needs: a subset of queue.Queue.
type Sender interface {
	Send(ctx context.Context, body []byte, delay time.Duration) (id string, err error)
}

var _ Sender = queue.Queue(nil)

// Outbox holds the queues the stage hands work to.
type Outbox struct {
	Webhook Sender // WebhookJob, for webhook and directory routes
	Relay   Sender // RelayJob
	DSN     Sender // DSNJob, for rejected and unroutable recipients
}

// Handler is the parse stage. It is safe for concurrent use.
//
// Every step is idempotent, so a retried job redoes all of them: the parsed
// JSON and attachments go to keys derived from the message id, and the jobs
// it enqueues again are de-duplicated downstream (by key and webhook-id).
type Handler struct {
	cfg   Config
	store blob.Store
	table *route.Table
	out   Outbox
	log   *slog.Logger
	mem   *semaphore.Weighted // bytes of parse memory, shared by concurrent jobs
	auth  Auth                // sender-authentication checks (auth.go)

	onParsed func(env *postern.Envelope, p *postern.Parsed) // OnParsed; nil for none
}

// OnParsed calls f with each message's parsed form once parsed.json is
// stored, before routing, for a view of messages (the console's index)
// that would otherwise read parsed.json back, a JSON decode as large as the
// message. f runs on the job's goroutine: it must return at once and must
// not change env or p.
func OnParsed(f func(env *postern.Envelope, p *postern.Parsed)) Option {
	return func(h *Handler) { h.onParsed = f }
}

// With returns a copy of h with opts applied, for a caller that adds to a
// Handler built elsewhere; h is unchanged.
func (h *Handler) With(opts ...Option) *Handler {
	c := *h
	for _, o := range opts {
		o(&c)
	}
	return &c
}

var _ postern.Handler = (*Handler)(nil)

// New builds the stage. store, table and every Outbox queue are required,
// and New panics without them, at wiring time rather than on the first job;
// a nil log discards.
func New(cfg Config, store blob.Store, table *route.Table, out Outbox, log *slog.Logger, opts ...Option) *Handler {
	if store == nil || table == nil || out.Webhook == nil || out.Relay == nil || out.DSN == nil {
		panic("parse.New: store, table and every Outbox queue are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if cfg.ReferParsed {
		cfg.textRawMin = textRawMin
	}
	h := &Handler{cfg: cfg, store: store, table: table, out: out, log: log, mem: semaphore.NewWeighted(cfg.MemoryBudget)}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Handle parses and routes the message a ParseJob names. A job that cannot be
// decoded is permanent (it would fail the same way forever); a store or queue
// failure is temporary. A message that does not parse is not an error: it is
// delivered with its parse errors listed.
func (h *Handler) Handle(ctx context.Context, job postern.Job) error {
	var pj postern.ParseJob
	if err := json.Unmarshal(job.Body, &pj); err != nil {
		return postern.Permanent(fmt.Errorf("decode parse job: %w", err))
	}
	if pj.V != postern.JobVersion {
		return postern.Permanent(fmt.Errorf("parse job version %d, want %d", pj.V, postern.JobVersion))
	}
	id, err := postern.ParseMsgID(string(pj.ID))
	if err != nil {
		return postern.Permanent(fmt.Errorf("parse job: %w", err))
	}
	pj.ID = id
	log := h.log.With("msg_id", id, "stage", "parse", "attempt", job.Attempt)

	var p *postern.Parsed
	if pj.Raw != nil {
		p, err = h.parseInline(ctx, &pj)
	} else {
		p, err = h.parse(ctx, id, pj.Envelope.Size)
	}
	if err != nil {
		return err
	}
	p.ID = id
	// The envelope goes into the archive with the parsed form: on AWS there
	// is no envelope.json (see postern.Parsed.Envelope).
	p.Envelope = &pj.Envelope
	// The sender checks run here, after the gateway's 250, so DNS never
	// delays it; their verdicts go into parsed.json and decide routing.
	v, err := h.verify(ctx, log, &pj.Envelope)
	if err != nil {
		return err
	}
	p.Auth, p.AuthResults = v.stored, v.header
	if err := h.storeAttachments(ctx, p); err != nil {
		return err
	}
	buf := getBuf()
	defer putBuf(buf) // after routing, which may copy it into jobs
	body, spans, err := h.writeParsed(ctx, p, buf)
	if err != nil {
		return err
	}
	if h.onParsed != nil {
		h.onParsed(&pj.Envelope, p)
	}
	log.InfoContext(ctx, "parsed",
		"attachments", len(p.Attachments), "parse_errors", len(p.Errors), "severe", hasSevere(p.Errors))
	return h.route(ctx, log, pj, p, stored{body, spans}, v)
}

// textRawMin is the shortest text parsed.json names in raw.eml (TextRaw)
// rather than holds, with ReferParsed: below it, a second copy costs less
// than a read.
const textRawMin = 32 << 10

// parse parses the stored message: a large one without holding it, any
// other (and a large one the streaming reader does not follow) whole.
func (h *Handler) parse(ctx context.Context, id postern.MsgID, size int64) (*postern.Parsed, error) {
	if size > h.cfg.StreamAbove {
		p, err := h.parseLarge(ctx, id, size)
		switch {
		case errors.Is(err, errTextAttachment):
			// Parsed whole, as before the large path started below 4 MiB.
		case !errors.Is(err, errIrregular):
			return p, err
		default:
			h.log.InfoContext(ctx, "large message parsed whole", "msg_id", id, "reason", err.Error())
		}
	}
	// The decoder holds the whole message and its decoded parts: bound what
	// concurrent jobs hold together, so ten 25 MiB messages are parsed one
	// or two at a time instead of all at once.
	release, err := h.reserve(ctx, max(size, 1)*parseMemoryFactor)
	if err != nil {
		return nil, err
	}
	defer release()
	raw, err := h.readRaw(ctx, id, size)
	if err != nil {
		return nil, err
	}
	p, _ := parseMessage(raw, h.cfg, nil)
	return p, nil
}

// parseInline stores the message a job carries (ingest.Ingester puts small
// messages in their ParseJob) where every later reader looks for it, then
// parses it from the job's bytes: no read back from the store. A job whose
// bytes do not match its envelope's digest is permanent: it would fail the
// same way on every try, and the DLQ keeps it for an operator.
func (h *Handler) parseInline(ctx context.Context, pj *postern.ParseJob) (*postern.Parsed, error) {
	sum := sha256.Sum256(pj.Raw)
	if int64(len(pj.Raw)) != pj.Envelope.Size || hex.EncodeToString(sum[:]) != pj.Envelope.SHA256 {
		return nil, postern.Permanent(fmt.Errorf("parse job %s: the message it carries (%d bytes) does not match its envelope's size %d and sha256", pj.ID, len(pj.Raw), pj.Envelope.Size))
	}
	key := pj.ID.RawKey()
	if err := h.store.Put(ctx, key, bytes.NewReader(pj.Raw), &blob.PutOptions{ContentType: "message/rfc822"}); err != nil {
		return nil, fmt.Errorf("store raw %s: %w", key, err)
	}
	release, err := h.reserve(ctx, max(int64(len(pj.Raw)), 1)*parseMemoryFactor)
	if err != nil {
		return nil, err
	}
	defer release()
	return Parse(pj.Raw, h.cfg), nil
}

// reserve takes need bytes of the parse memory budget (all of it at most).
func (h *Handler) reserve(ctx context.Context, need int64) (release func(), err error) {
	need = min(need, h.cfg.MemoryBudget)
	if err := h.mem.Acquire(ctx, need); err != nil {
		return nil, fmt.Errorf("wait for parse memory: %w", err)
	}
	return func() { h.mem.Release(need) }, nil
}

// parseLarge is the large-message path (large.go): a skeleton of the message
// through the usual parse, then the parts left out of it decoded from the
// stored message. errIrregular means: parse it whole.
func (h *Handler) parseLarge(ctx context.Context, id postern.MsgID, size int64) (*postern.Parsed, error) {
	release, err := h.reserve(ctx, min(size, int64(h.cfg.large.skeletonMax))*parseMemoryFactor)
	if err != nil {
		return nil, err
	}
	defer release()
	rc, err := h.store.Get(ctx, id.RawKey())
	if err != nil {
		return nil, fmt.Errorf("get raw %s: %w", id.RawKey(), err)
	}
	sk, err := buildSkeleton(rc, h.cfg, size)
	rc.Close()
	// Nothing in the parsed form points into the skeleton (enmime and
	// fillPlainBody copy what they keep), so its buffer is reused.
	defer putBuf(sk.buf)
	if err == nil && size <= h.cfg.large.textWholeBelow && sk.leavesOutText() {
		return nil, errTextAttachment
	}
	var limit *limitError
	switch {
	case errors.As(err, &limit):
		p, _ := parseMessage(nil, h.cfg, &skeleton{header: sk.header, size: sk.size, nul: sk.nul, limit: limit, bodyAt: -1})
		return p, nil
	case errors.Is(err, errIrregular):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("read raw %s: %w", id.RawKey(), err)
	}
	p, marks := parseMessage(sk.raw, h.cfg, sk)
	p.ID = id
	if err := h.fillMarked(ctx, p, sk, marks); err != nil {
		return nil, err
	}
	return p, nil
}

// fillMarked is the second pass: it decodes every attachment the skeleton
// left out or cut from the stored message, to its own object or inline.
func (h *Handler) fillMarked(ctx context.Context, p *postern.Parsed, sk *skeleton, marks []int) error {
	want := make(map[int]int) // leaf ordinal -> attachment index
	for i, m := range marks {
		if m >= 0 {
			want[m] = i
		}
	}
	if len(want) == 0 {
		return nil
	}
	rc, err := h.store.Get(ctx, p.ID.RawKey())
	if err != nil {
		return fmt.Errorf("get raw %s: %w", p.ID.RawKey(), err)
	}
	defer rc.Close()
	filled := 0
	leaf := func(leaf int, header []byte, body io.Reader) error {
		i, ok := want[leaf]
		if !ok {
			return nil
		}
		_, _, cte, _ := partFacts(header)
		filled++
		return h.fillAttachment(ctx, p, i, newPartDecoder(body, cte))
	}
	if _, _, _, _, err := walkMessage(rc, h.cfg, io.Discard, leaf); err != nil {
		// The first pass walked the same bytes: irregular now means changed.
		return fmt.Errorf("second pass over %s: %w", p.ID.RawKey(), err)
	}
	if filled != len(want) {
		return fmt.Errorf("second pass over %s found %d of %d parts", p.ID.RawKey(), filled, len(want))
	}
	return nil
}

// fillAttachment decodes one part into attachment i: inline when within the
// inline threshold, else streamed to its object.
func (h *Handler) fillAttachment(ctx context.Context, p *postern.Parsed, i int, dec *partDecoder) error {
	a := &p.Attachments[i]
	sum, head := sha256.New(), &headBuffer{}
	counted := &countReader{r: dec}
	src := io.TeeReader(counted, io.MultiWriter(sum, head))
	var first []byte
	inline := false
	if max := h.cfg.InlineAttachmentMax; max >= 0 {
		var err error
		if first, inline, err = readUpTo(src, int(max)); err != nil {
			return err
		}
	}
	a.Content, a.Key = nil, ""
	if inline {
		a.Content = first
	} else {
		key := p.ID.AttachmentKey(i)
		opts := &blob.PutOptions{ContentType: storedType(a.ContentType)}
		if err := h.store.Put(ctx, key, io.MultiReader(bytes.NewReader(first), src), opts); err != nil {
			return &stageError{fmt.Errorf("put attachment %s: %w", key, err)}
		}
		a.Key = key
	}
	a.Size = counted.n
	a.SHA256 = hex.EncodeToString(sum.Sum(nil))
	a.DetectedType = http.DetectContentType(head.b)
	for _, e := range dec.problems() {
		p.Errors = append(p.Errors, warning(enmime.ErrorMalformedBase64, e.Error()))
	}
	if dec.decodeErr != nil {
		p.Errors = append(p.Errors, severe(ErrNamePartial, fmt.Sprintf("attachment %d (%s) decoded up to byte %d: %v", i, a.Filename, a.Size, dec.decodeErr)))
	}
	capErrors(p)
	return nil
}

// readRaw reads at most MaxMessageBytes+1 bytes, so Parse can tell a message
// over the limit without the stage ever holding more than that.
func (h *Handler) readRaw(ctx context.Context, id postern.MsgID, size int64) ([]byte, error) {
	key := id.RawKey()
	rc, err := h.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get raw %s: %w", key, err)
	}
	defer rc.Close()
	// One allocation of the size the envelope gives (and a byte to see
	// the end) instead of ReadAll's doublings; a wrong size only costs those.
	var buf bytes.Buffer
	buf.Grow(int(min(max(size, 0), h.cfg.MaxMessageBytes)) + bytes.MinRead)
	if _, err := buf.ReadFrom(io.LimitReader(rc, h.cfg.MaxMessageBytes+1)); err != nil {
		return nil, fmt.Errorf("read raw %s: %w", key, err)
	}
	return buf.Bytes(), nil
}

// storeAttachments moves attachments over the inline threshold to objects of
// their own. The key is from the attachment's index in Parsed.Attachments
// (so the numbers of stored ones may have gaps), the same on every retry.
func (h *Handler) storeAttachments(ctx context.Context, p *postern.Parsed) error {
	for i := range p.Attachments {
		a := &p.Attachments[i]
		if a.Key != "" || h.cfg.InlineAttachmentMax >= 0 && a.Size <= h.cfg.InlineAttachmentMax {
			continue // stored already by the large-message path, or inline
		}
		key := p.ID.AttachmentKey(i)
		opts := &blob.PutOptions{ContentType: storedType(a.ContentType)}
		if err := h.store.Put(ctx, key, bytes.NewReader(a.Content), opts); err != nil {
			return fmt.Errorf("put attachment %s: %w", key, err)
		}
		a.Key, a.Content = key, nil
	}
	return nil
}

// stored is parsed.json as parse wrote it: webhook jobs carry it inline
// when it is small, else where its bodies are.
type stored struct {
	body  []byte
	spans *postern.BodySpans
}

// writeParsed stores p as parsed.json and returns the JSON it stored and
// where its bodies are in it.
func (h *Handler) writeParsed(ctx context.Context, p *postern.Parsed, buf *bytes.Buffer) ([]byte, *postern.BodySpans, error) {
	body, text, html, err := marshalParsed(p, buf)
	if err != nil {
		return nil, nil, fmt.Errorf("encode parsed %s: %w", p.ID, err)
	}
	key := p.ID.ParsedKey()
	if err := h.store.Put(ctx, key, bytes.NewReader(body), &blob.PutOptions{ContentType: "application/json"}); err != nil {
		return nil, nil, fmt.Errorf("put parsed %s: %w", key, err)
	}
	return body, postern.SpansFor(body, text, html), nil
}

// storedType passes a declared media type on to the store only when it looks
// like one, since stores echo it in HTTP headers.
func storedType(ct string) string {
	const fallback = "application/octet-stream"
	typ, sub, ok := strings.Cut(ct, "/")
	if !ok || typ == "" || sub == "" || len(ct) > 127 {
		return fallback
	}
	for i := 0; i < len(ct); i++ {
		c := ct[i]
		if c <= ' ' || c >= 127 || strings.IndexByte(`()<>@,;:\"[]?=`, c) >= 0 {
			return fallback
		}
	}
	return ct
}

func hasSevere(errs []postern.ParseError) bool {
	for _, e := range errs {
		if e.Severe {
			return true
		}
	}
	return false
}
