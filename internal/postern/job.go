package postern

import (
	"context"
	"encoding/json"
	"hash/crc32"
	"time"
)

// JobVersion is the current schema version of every job type.
const JobVersion = 1

// Jobs carry references (ids, keys derive from them) and the envelope; a
// body rides along only when it is small (ParseJob.Raw, WebhookJob.Parsed),
// since SQS bodies are capped at 256 KiB.

// ParseJob asks the parse stage to parse a stored message and route it.
type ParseJob struct {
	V        int      `json:"v"`
	ID       MsgID    `json:"id"`
	Envelope Envelope `json:"envelope"`
	// Raw is the message itself, when the gateway made it durable in the
	// job instead of the store (at most MaxInlineRaw bytes): one queue send
	// before 250 instead of a PUT and then a send. The parse stage writes it
	// to RawKey before anything else, so every later reader finds it there.
	// Empty means: the message is at RawKey already.
	Raw []byte `json:"raw,omitempty"`
}

// MaxInlineRaw bounds ParseJob.Raw. Base64 makes 128 KiB into about 171
// KiB of JSON, which with the envelope stays under MaxJobBytes; a job that
// would not (a very long recipient list) goes the PUT-then-send way.
const MaxInlineRaw = 128 << 10

// MaxJobBytes is the largest job body any queue driver must take: SQS's
// 256 KiB message limit, less room for the SDK's attributes.
const MaxJobBytes = 250 << 10

// WebhookJob asks the webhook stage to deliver a parsed message to one route.
type WebhookJob struct {
	V          int       `json:"v"`
	ID         MsgID     `json:"id"`
	Route      string    `json:"route"`
	Recipients []string  `json:"recipients"` // the envelope recipients this route matched
	Envelope   Envelope  `json:"envelope"`
	Created    time.Time `json:"created"` // when routing created the job; bounds retries by max age
	// Parsed is the parse stage's parsed.json, inline when it is at most
	// MaxInlineParsed bytes: the webhook stage then delivers without
	// reading it back from the store (one S3 GET fewer per message and
	// route). Empty means: read ParsedKey. parsed.json is written all the
	// same, as the archive.
	Parsed json.RawMessage `json:"parsed,omitempty"`
	// Bodies locates the text and HTML in parsed.json when Parsed is not
	// inline, so the webhook stage takes them as the JSON strings they are
	// instead of scanning up to 2 MiB of JSON that it only passes on. Nil
	// (jobs made before it, replays) means: decode parsed.json whole.
	Bodies *BodySpans `json:"bodies,omitempty"`
	// AuthResults is the value of the Authentication-Results field a raw
	// payload starts with (see package authview); empty for none, as for mail
	// from trusted identities and jobs made before it existed.
	AuthResults string `json:"auth_results,omitempty"`
}

// BodySpans says where parse put the text and HTML bodies in the
// parsed.json it wrote: the byte ranges [start, end) of their JSON strings,
// quotes included. Size and CRC32C name that parsed.json: a retried parse
// may write another (its sender checks can differ), and a job whose spans
// were for an earlier one must not cut the new one at the wrong places.
type BodySpans struct {
	Size   int64    `json:"size"`
	CRC32C uint32   `json:"crc32c"`
	Text   [2]int64 `json:"text"`
	HTML   [2]int64 `json:"html"`
}

// MaxInlineParsed bounds WebhookJob.Parsed: with the envelope and the
// rest of the job it stays well under SQS's 256 KiB message limit (and the
// local queue's), so a large parsed form never makes a job unsendable.
const MaxInlineParsed = 128 << 10

// WebhookDeliveryID is the stable webhook-id of a message's delivery to a
// route: the same on every retry and replay, so receivers can de-duplicate.
func WebhookDeliveryID(id MsgID, route string) string { return string(id) + "." + route }

// RelayJob asks the relay stage to send a message outward.
type RelayJob struct {
	V          int       `json:"v"`
	ID         MsgID     `json:"id"`
	Route      string    `json:"route"`
	Recipients []string  `json:"recipients"`
	Envelope   Envelope  `json:"envelope"`
	Created    time.Time `json:"created"`
	// AuthResults is the value of the Authentication-Results field the
	// relayed message starts with (see package authview); empty for none.
	AuthResults string `json:"auth_results,omitempty"`
}

// DSNJob asks the dsn stage to report failed recipients to the sender.
type DSNJob struct {
	V        int       `json:"v"`
	ID       MsgID     `json:"id"`
	Envelope Envelope  `json:"envelope"`
	Failed   []Failure `json:"failed"`
	Created  time.Time `json:"created"`
}

// Failure is one recipient's final failure, as a DSN reports it.
type Failure struct {
	Recipient  string    `json:"recipient"`
	Route      string    `json:"route,omitempty"`
	Status     string    `json:"status"`     // enhanced status, e.g. 5.0.0
	Diagnostic string    `json:"diagnostic"` // e.g. "smtp; 550 5.1.1 no such user" or "http; 410 Gone"
	RemoteMTA  string    `json:"remote_mta,omitempty"`
	LastAt     time.Time `json:"last_attempt"`
}

// Job is one received queue message as a stage handler sees it.
type Job struct {
	Body    []byte
	Attempt int // 1 on the first delivery; from the queue's receive count
}

// Handler is one stage: it handles one job. nil means done (the job is
// acknowledged). A temporary error means "try again later" (RetryAfter may
// say when); a permanent one means the job can never succeed and goes to the
// dead-letter queue. A stage that reaches a final outcome for a message
// (delivered, or failed and reported by DSN) returns nil.
type Handler interface {
	Handle(ctx context.Context, job Job) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job Job) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, job Job) error { return f(ctx, job) }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SpansFor returns the BodySpans of parsed (as parse stored it) whose text
// and HTML strings are at text and html.
func SpansFor(parsed []byte, text, html [2]int64) *BodySpans {
	return &BodySpans{Size: int64(len(parsed)), CRC32C: crc32.Checksum(parsed, castagnoli), Text: text, HTML: html}
}

// Cut returns the JSON strings s locates in parsed, and parsed with each
// replaced by "" (a small document that decodes like the original with
// empty bodies). ok is false when s is not for these bytes: another size
// or checksum, or spans that are not two JSON strings in order.
func (s *BodySpans) Cut(parsed []byte) (rest, text, html []byte, ok bool) {
	n := int64(len(parsed))
	t, h := s.Text, s.HTML
	if n != s.Size || !(0 < t[0] && t[0]+2 <= t[1] && t[1] < h[0] && h[0]+2 <= h[1] && h[1] < n) {
		return nil, nil, nil, false
	}
	text, html = parsed[t[0]:t[1]], parsed[h[0]:h[1]]
	if text[0] != '"' || text[len(text)-1] != '"' || html[0] != '"' || html[len(html)-1] != '"' {
		return nil, nil, nil, false
	}
	if crc32.Checksum(parsed, castagnoli) != s.CRC32C {
		return nil, nil, nil, false
	}
	rest = make([]byte, 0, n-(t[1]-t[0])-(h[1]-h[0])+4)
	rest = append(rest, parsed[:t[0]]...)
	rest = append(rest, `""`...)
	rest = append(rest, parsed[t[1]:h[0]]...)
	rest = append(rest, `""`...)
	rest = append(rest, parsed[h[1]:]...)
	return rest, text, html, true
}
