package parse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"golang.org/x/sync/semaphore"
	"io"
	"log/slog"
	"strings"
	"time"

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
}

var _ postern.Handler = (*Handler)(nil)

// New builds the stage. store, table and every Outbox queue are required,
// and New panics without them, at wiring time rather than on the first job;
// a nil log discards.
func New(cfg Config, store blob.Store, table *route.Table, out Outbox, log *slog.Logger) *Handler {
	if store == nil || table == nil || out.Webhook == nil || out.Relay == nil || out.DSN == nil {
		panic("parse.New: store, table and every Outbox queue are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	return &Handler{cfg: cfg, store: store, table: table, out: out, log: log, mem: semaphore.NewWeighted(cfg.MemoryBudget)}
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

	// The decoder holds the whole message and its decoded parts: bound what
	// concurrent jobs hold together, so ten 25 MiB messages are parsed one
	// or two at a time instead of all at once.
	need := min(max(pj.Envelope.Size, 1)*parseMemoryFactor, h.cfg.MemoryBudget)
	if err := h.mem.Acquire(ctx, need); err != nil {
		return fmt.Errorf("wait for parse memory: %w", err)
	}
	defer h.mem.Release(need)

	raw, err := h.readRaw(ctx, id)
	if err != nil {
		return err
	}
	p := Parse(raw, h.cfg)
	p.ID = id
	if err := h.storeAttachments(ctx, p); err != nil {
		return err
	}
	if err := h.writeParsed(ctx, p); err != nil {
		return err
	}
	log.InfoContext(ctx, "parsed",
		"attachments", len(p.Attachments), "parse_errors", len(p.Errors), "severe", hasSevere(p.Errors))
	return h.route(ctx, log, pj, p)
}

// readRaw reads at most MaxMessageBytes+1 bytes, so Parse can tell a message
// over the limit without the stage ever holding more than that.
func (h *Handler) readRaw(ctx context.Context, id postern.MsgID) ([]byte, error) {
	key := id.RawKey()
	rc, err := h.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get raw %s: %w", key, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, h.cfg.MaxMessageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read raw %s: %w", key, err)
	}
	return raw, nil
}

// storeAttachments moves attachments over the inline threshold to objects of
// their own. The key is from the attachment's index in Parsed.Attachments
// (so the numbers of stored ones may have gaps), the same on every retry.
func (h *Handler) storeAttachments(ctx context.Context, p *postern.Parsed) error {
	for i := range p.Attachments {
		a := &p.Attachments[i]
		if h.cfg.InlineAttachmentMax >= 0 && a.Size <= h.cfg.InlineAttachmentMax {
			continue
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

func (h *Handler) writeParsed(ctx context.Context, p *postern.Parsed) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode parsed %s: %w", p.ID, err)
	}
	key := p.ID.ParsedKey()
	if err := h.store.Put(ctx, key, bytes.NewReader(body), &blob.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("put parsed %s: %w", key, err)
	}
	return nil
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
