package parse

import "time"

// Defaults for Config's zero values.
const (
	DefaultInlineAttachmentMax = 256 << 10
	DefaultBodyInlineMax       = 1 << 20
	DefaultMaxDepth            = 20
	DefaultMaxParts            = 500
	DefaultMaxMessageBytes     = 64 << 20
	DefaultStreamAbove         = 64 << 10
)

// Config tunes the parse stage. Zero values take the defaults above.
type Config struct {
	// InlineAttachmentMax is the largest attachment carried inside the
	// parsed JSON; larger ones are stored as objects of their own. A negative
	// value stores every attachment.
	InlineAttachmentMax int64

	// BodyInlineMax caps Text and HTML, in bytes; a cut body is flagged
	// (TextTruncated, HTMLTruncated). The raw message keeps all of it.
	BodyInlineMax int

	// MaxDepth and MaxParts bound the MIME structure. A message beyond
	// either is delivered with its headers only and a severe parse error.
	MaxDepth int
	MaxParts int

	// MaxMessageBytes is the largest raw message given to the MIME decoder,
	// and so bounds the decoded bytes (transfer decoding never grows
	// content) and the decoder's memory. A larger message is delivered with
	// its headers only and a severe parse error. The gateway's own size
	// limit normally keeps messages well below it.
	MaxMessageBytes int64

	// MemoryBudget bounds the memory concurrent parses may hold together,
	// estimated as parseMemoryFactor times each message's size; a message
	// larger than the budget is parsed alone. Default 64 MiB.
	MemoryBudget int64

	// StreamAbove is the message size above which the stage parses without
	// holding the message: large parts are decoded straight from the stored
	// message to their own objects (see large.go). Default 64 KiB: that
	// path decodes base64 with the standard library instead of enmime's
	// byte-at-a-time readers, about half the CPU for a scan with a PDF of
	// 75 KiB or 1 MiB (BenchmarkHandle1MiB), the same for text, and holds
	// less; it costs one more read of the stored message.
	StreamAbove int64

	// ReferParsed: webhook jobs never carry the parsed form, however
	// small; they name parsed.json and where its bodies are. For a store on
	// local disk, where reading it back costs less than decoding it inside
	// each job (the worker, the tracer and the stage each decode a job's
	// body). Otherwise a parsed form up to postern.MaxInlineParsed rides in
	// the job, one store read fewer (an S3 GET).
	ReferParsed bool

	// Now is the clock for job timestamps; nil means time.Now.
	Now func() time.Time

	large largeLimits // the large-message path's bounds; tests shrink them

	// decodeEveryCharset turns off the 7-bit pass-through (untyped.go),
	// so tests can compare both ways.
	decodeEveryCharset bool
	// textRawMin: a plain body (plainbody.go) of at least this many bytes
	// is named in the message (TextRaw) instead of copied; 0 never. New
	// sets it with ReferParsed.
	textRawMin int

	// enmimeEveryBody turns off the plain-body shortcut (plainbody.go),
	// so tests can compare both ways.
	enmimeEveryBody bool
}

// parseMemoryFactor estimates a parse's peak memory from the message size:
// the raw bytes, the decoded parts and the text copies.
const parseMemoryFactor = 3

func (c Config) withDefaults() Config {
	if c.MemoryBudget <= 0 {
		c.MemoryBudget = 64 << 20
	}
	if c.InlineAttachmentMax == 0 {
		c.InlineAttachmentMax = DefaultInlineAttachmentMax
	}
	if c.BodyInlineMax <= 0 {
		c.BodyInlineMax = DefaultBodyInlineMax
	}
	if c.MaxDepth <= 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.MaxParts <= 0 {
		c.MaxParts = DefaultMaxParts
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.StreamAbove <= 0 {
		c.StreamAbove = DefaultStreamAbove
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.large == (largeLimits{}) {
		c.large = defaultLargeLimits(c.BodyInlineMax)
	}
	return c
}
