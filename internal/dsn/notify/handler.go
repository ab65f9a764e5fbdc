// Package notify is the dsn stage: it decides who is told about failed or
// delayed recipients (Policy), builds the notices with package dsn and sends
// them with the null envelope sender through a relay transport.
package notify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/textproto"
	"regexp"
	"strings"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/dsn"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
)

// Defaults applied to zero Config fields.
const (
	// DefaultMaxReturnBytes bounds RET=FULL: a larger original is returned
	// as its header section only (RFC 3461 section 4.3 allows this).
	DefaultMaxReturnBytes = 10 << 20
	// maxHeaderBytes bounds how much of the original is read for its
	// header section.
	maxHeaderBytes = 256 << 10
)

// Config configures the dsn stage.
type Config struct {
	// Hostname names this system in Reporting-MTA and the Message-ID.
	Hostname string
	// Domain is the domain of MAILER-DAEMON@Domain; Hostname when empty.
	Domain string
	Policy Policy
	// MaxReturnBytes: see DefaultMaxReturnBytes.
	MaxReturnBytes int64
}

// Handler handles dsn.Job (and plain postern.DSNJob) jobs. It keeps no
// state between jobs, so one Handler serves concurrent calls.
//
// A notice is never retried for ever and never causes a notice of its own:
// it goes out MAIL FROM:<> with NOTIFY=NEVER; a permanent refusal is logged
// and dropped; a temporary one is retried by the queue, whose maximum
// receive count dead-letters it in the end. A notice that cannot be built
// fails the job permanently, so the job goes to the dead-letter queue.
type Handler struct {
	cfg       Config
	store     blob.Store
	transport relay.Transport
	log       *slog.Logger
}

var _ postern.Handler = (*Handler)(nil)

var hostRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$`)

// New builds the dsn stage. store holds the original messages; transport
// sends the notices (the same kind of transport the relay uses).
func New(cfg Config, store blob.Store, transport relay.Transport, log *slog.Logger) (*Handler, error) {
	if !hostRE.MatchString(cfg.Hostname) {
		return nil, fmt.Errorf("notify: hostname %q is not a host name", cfg.Hostname)
	}
	if cfg.Domain != "" && !hostRE.MatchString(cfg.Domain) {
		return nil, fmt.Errorf("notify: domain %q is not a host name", cfg.Domain)
	}
	if transport == nil {
		return nil, errors.New("notify: no transport to send notices with")
	}
	if cfg.MaxReturnBytes <= 0 {
		cfg.MaxReturnBytes = DefaultMaxReturnBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, store: store, transport: transport, log: log}, nil
}

// Handle sends the notices a job calls for. It returns nil when every
// notice was accepted, refused for good (logged), or none was due; a
// temporary error when the store or the transport failed for now; and a
// permanent error for a malformed job or, once no notice is left to retry,
// for a notice that cannot be built.
func (h *Handler) Handle(ctx context.Context, job postern.Job) error {
	j, err := decodeJob(job.Body)
	if err != nil {
		return err
	}
	log := h.log.With(slog.String("msg_id", string(j.ID)), slog.String("stage", "dsn"), slog.Int("attempt", job.Attempt))
	if len(j.Failed) == 0 {
		log.LogAttrs(ctx, slog.LevelInfo, "dsn not sent", slog.String("reason", "no recipients to report"))
		return nil
	}

	orig, ret, facts, err := h.original(ctx, j)
	if err != nil {
		return fmt.Errorf("dsn %s: %w", j.ID, err)
	}
	notices, skipped := h.cfg.Policy.Plan(j, facts)
	for _, why := range skipped {
		log.LogAttrs(ctx, slog.LevelInfo, "dsn not sent", slog.String("reason", why))
	}
	if j.Action == "" || j.Action == dsn.ActionFailed {
		// A failure nobody is told about is never silent: one event line
		// per recipient. (A delay is reported when it turns into one.)
		for _, f := range Unreported(j, notices) {
			log.LogAttrs(ctx, slog.LevelWarn, "failure reported to nobody", slog.String("event", "email.failed"),
				slog.String("identity", j.Envelope.Identity), slog.String("sender", j.Envelope.Sender),
				slog.String("rcpt", f.Recipient), slog.String("route", f.Route), slog.String("status", f.Status),
				slog.String("diagnostic", f.Diagnostic), slog.String("reason", strings.Join(skipped, "; ")))
		}
	}
	var temp, perm []string
	for _, n := range notices {
		if err := h.send(ctx, log, j, n, orig, ret, job.Attempt, len(notices) > 1); postern.IsPermanent(err) {
			perm = append(perm, err.Error())
		} else if err != nil {
			temp = append(temp, err.Error())
		}
	}
	if len(temp) > 0 {
		// Retried; a notice that cannot be built fails again on the
		// attempt where the others succeed.
		return fmt.Errorf("dsn %s: %s", j.ID, strings.Join(append(temp, perm...), "; "))
	}
	if len(perm) > 0 {
		return postern.Permanent(fmt.Errorf("dsn %s: %s", j.ID, strings.Join(perm, "; ")))
	}
	return nil
}

// original reads the original message: its whole text when RET=FULL asks
// and it is small enough, else its header section, with what to return of
// it. A message no longer in the store gives a notice without it.
func (h *Handler) original(ctx context.Context, j *dsn.Job) ([]byte, dsn.Return, Original, error) {
	rc, err := h.store.Get(ctx, j.ID.RawKey())
	if errors.Is(err, blob.ErrNotFound) {
		return nil, dsn.ReturnNone, Original{}, nil
	}
	if err != nil {
		return nil, "", Original{}, fmt.Errorf("open original: %w", err)
	}
	defer rc.Close()
	full := strings.EqualFold(j.Envelope.Ret, "FULL")
	limit := int64(maxHeaderBytes)
	if full {
		limit = max(h.cfg.MaxReturnBytes, maxHeaderBytes)
	}
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, "", Original{}, fmt.Errorf("read original: %w", err)
	}
	hdr := headerSection(b)
	facts := Original{Automatic: IsAutomatic(readHeader(hdr))}
	// b holds more than limit bytes only when the message is larger than
	// MaxReturnBytes, so this also rules out a cut message.
	if !full || int64(len(b)) > h.cfg.MaxReturnBytes {
		return hdr, dsn.ReturnHeaders, facts, nil
	}
	return b, dsn.ReturnFull, facts, nil
}

// send builds and sends one notice. It returns an error when the notice
// should be tried again, and a permanent one when it cannot be built.
func (h *Handler) send(ctx context.Context, log *slog.Logger, j *dsn.Job, n Notice, orig []byte, ret dsn.Return, attempt int, several bool) error {
	r := h.report(j, n, orig, ret)
	m, err := dsn.Build(r)
	attrs := []slog.Attr{slog.String("rcpt", n.To), slog.Bool("owner", n.Owner), slog.Int("recipients", len(n.Failures)),
		slog.String("action", string(r.Recipients[0].Action))}
	if err != nil {
		// The same job can never build: it goes to the dead-letter queue.
		log.LogAttrs(ctx, slog.LevelError, "dsn not sent", append(attrs, slog.String("reason", "cannot build"), slog.String("error", err.Error()))...)
		return postern.Permanent(fmt.Errorf("notice to %s: %w", n.To, err))
	}
	marker := sentKey(j.ID, m.MessageID)
	if several && attempt > 1 {
		if _, err := h.store.Stat(ctx, marker); err == nil {
			log.LogAttrs(ctx, slog.LevelInfo, "dsn already sent", attrs...)
			return nil
		}
	}
	res, err := h.transport.Send(ctx, &relay.Message{
		ID: j.ID, From: "", Body: bytes.NewReader(m.Bytes), Size: int64(len(m.Bytes)), SMTPUTF8: m.SMTPUTF8,
		To: []relay.Rcpt{{Addr: n.To, Notify: []string{"NEVER"}}},
	})
	if err == nil && (res == nil || len(res.Rcpts) != 1) {
		err = errors.New("transport returned no result for the notice")
	}
	if err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "dsn send failed", append(attrs, slog.String("error", err.Error()))...)
		return fmt.Errorf("notice to %s: %w", n.To, err)
	}
	rep := res.Rcpts[0].Reply
	attrs = append(attrs, slog.String("remote", res.Remote), slog.Int("smtp_code", rep.Code), slog.String("status", rep.Status),
		slog.String("returned", string(m.Returned)), slog.String("dsn_message_id", m.MessageID))
	switch {
	case rep.Accepted():
		log.LogAttrs(ctx, slog.LevelInfo, "dsn sent", attrs...)
		if several {
			if err := h.store.Put(ctx, marker, strings.NewReader(m.MessageID), nil); err != nil {
				log.LogAttrs(ctx, slog.LevelWarn, "dsn sent marker not written", slog.String("error", err.Error()))
			}
		}
		return nil
	case rep.Permanent() && !rep.Remote():
		// Our side refused for good (the dsn relay's app has no consent,
		// its key is wrong): the notice is fine, the relay is not. Kept in
		// the dead-letter queue, it can be redriven once that is fixed.
		log.LogAttrs(ctx, slog.LevelError, "dsn not sent: the dsn relay refuses; dead-lettered", append(attrs, slog.String("diagnostic", rep.Diagnostic()))...)
		return postern.Permanent(fmt.Errorf("notice to %s: %s", n.To, rep.Diagnostic()))
	case rep.Permanent():
		log.LogAttrs(ctx, slog.LevelError, "dsn undeliverable; dropped", append(attrs, slog.String("diagnostic", rep.Diagnostic()))...)
		return nil
	}
	log.LogAttrs(ctx, slog.LevelWarn, "dsn deferred", append(attrs, slog.String("diagnostic", rep.Diagnostic()))...)
	return fmt.Errorf("notice to %s: %s", n.To, rep.Diagnostic())
}

// report turns a notice into what the builder renders.
func (h *Handler) report(j *dsn.Job, n Notice, orig []byte, ret dsn.Return) *dsn.Report {
	env := &j.Envelope
	action := j.Action
	if action == "" {
		action = dsn.ActionFailed
	}
	date := j.Created
	if date.IsZero() {
		date = env.ReceivedAt
	}
	r := &dsn.Report{
		ReportingMTA: h.cfg.Hostname, Domain: h.cfg.Domain, To: n.To, ID: j.ID, Date: date.UTC(),
		ArrivalDate: env.ReceivedAt.UTC(), EnvID: env.EnvID, ReceivedFromMTA: env.HELO,
		Return: ret, Original: orig,
	}
	for _, f := range n.Failures {
		rc := dsn.Recipient{
			Final: f.Recipient, Action: action, Status: fitStatus(f.Status, action),
			Diagnostic: f.Diagnostic, LastAttempt: f.LastAt.UTC(),
		}
		if hostRE.MatchString(f.RemoteMTA) {
			rc.RemoteMTA = f.RemoteMTA
		}
		for _, er := range env.Recipients {
			if er.Addr == f.Recipient {
				rc.Original = er.ORCPT
				break
			}
		}
		if !validORCPT(rc.Original) {
			rc.Original = ""
		}
		if action == dsn.ActionDelayed {
			rc.WillRetryUntil = j.RetryUntil.UTC()
		}
		r.Recipients = append(r.Recipients, rc)
	}
	return r
}

var statusRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// fitStatus makes a producer's status fit the action, so one odd status
// cannot stop the notice: failed needs class 4 or 5, delayed class 4.
func fitStatus(s string, a dsn.Action) string {
	ok := statusRE.MatchString(s)
	switch a {
	case dsn.ActionDelayed:
		if ok && s[0] == '4' {
			return s
		}
		return "4.0.0"
	default:
		if ok && s[0] != '2' {
			return s
		}
		return "5.0.0"
	}
}

func validORCPT(o string) bool {
	typ, addr, ok := strings.Cut(o, ";")
	return ok && strings.TrimSpace(typ) != "" && strings.TrimSpace(addr) != "" &&
		!strings.ContainsAny(o, "\r\n\x00<> ")
}

// sentKey marks a notice as sent, for a job with several notices whose
// retry must not repeat the ones already accepted.
func sentKey(id postern.MsgID, messageID string) string {
	sum := sha256.Sum256([]byte(messageID))
	return id.Prefix() + "dsn-" + hex.EncodeToString(sum[:10]) + ".sent"
}

// headerSection returns the header section of msg, up to and including the
// line end before the first empty line.
func headerSection(msg []byte) []byte {
	for i := 0; i < len(msg); {
		k := bytes.IndexByte(msg[i:], '\n')
		if k < 0 {
			return msg
		}
		if line := msg[i : i+k]; len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return msg[:i]
		}
		i += k + 1
	}
	return msg
}

// readHeader parses a header section leniently: a malformed line ends it,
// and the fields before it still count.
func readHeader(hdr []byte) textproto.MIMEHeader {
	tr := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("\r\n"))))
	h, _ := tr.ReadMIMEHeader()
	if h == nil {
		h = textproto.MIMEHeader{}
	}
	return h
}

// decodeJob reads and checks a job body. Every failure is permanent: the
// same bytes will never decode on a retry.
func decodeJob(body []byte) (*dsn.Job, error) {
	var j dsn.Job
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, postern.Permanent(fmt.Errorf("dsn: decode job: %w", err))
	}
	if j.V != postern.JobVersion {
		return nil, postern.Permanent(fmt.Errorf("dsn %s: job version %d, want %d", j.ID, j.V, postern.JobVersion))
	}
	if _, err := postern.ParseMsgID(string(j.ID)); err != nil {
		return nil, postern.Permanent(fmt.Errorf("dsn: %w", err))
	}
	switch j.Action {
	case "", dsn.ActionFailed, dsn.ActionDelayed:
	default:
		return nil, postern.Permanent(fmt.Errorf("dsn %s: action %q is not failed or delayed", j.ID, j.Action))
	}
	return &j, nil
}
