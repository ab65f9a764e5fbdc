package parse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
	"github.com/postern/postern/internal/mailheader"
	"github.com/postern/postern/internal/postern"
)

// Names of the parse errors this package adds to enmime's own.
const (
	ErrNameLimit       = "MIME limit"
	ErrNameUnparseable = "Unparseable message"
	ErrNamePanic       = "Parser failure"
	ErrNameTooMany     = "Too many errors"
	ErrNameNUL         = "NUL bytes"
	ErrNamePartial     = "Partial content"
	ErrNameMisread     = "Misread delimiter"
)

// maxErrors caps the listed parse errors; a pathological message can
// otherwise produce one per bad byte.
const maxErrors = 100

// Parse turns a raw message into its parsed form. It never fails and never
// panics: problems become entries in Errors, Severe when part of the message
// could not be represented. Headers are always read, even when the body is
// over a limit or cannot be parsed at all.
//
// Every string taken from the message is valid UTF-8 without NUL bytes
// (either becomes U+FFFD); attachment bytes are kept as they are.
//
// Every attachment carries its bytes in Content; the stage moves those above
// the inline threshold to the store. ID is left for the caller to set.
func Parse(raw []byte, cfg Config) *postern.Parsed {
	p, _ := parseMessage(raw, cfg.withDefaults(), nil)
	return p
}

// parseMessage parses raw, which is the message itself when sk is nil and
// otherwise sk's skeleton of it. marks gives, for each attachment, the index
// of its marked part in sk, or -1 when the skeleton holds all of it.
func parseMessage(raw []byte, cfg Config, sk *skeleton) (p *postern.Parsed, marks []int) {
	p = &postern.Parsed{
		V:           postern.ParsedVersion,
		Attachments: []postern.Attachment{},
		Errors:      []postern.ParseError{},
	}
	// One bad message must not take the stage down: a panic anywhere below
	// (enmime's, or ours) becomes a severe parse error on what was gathered.
	defer func() {
		if r := recover(); r != nil {
			p.Errors = append(p.Errors, severe(ErrNamePanic, fmt.Sprintf("parser panicked: %v", r)))
			capErrors(p)
			marks = nil
		}
	}()
	var header []byte
	var size int64
	var nul bool
	var limit error
	if sk == nil {
		header, size, nul = splitHeader(raw), int64(len(raw)), bytes.IndexByte(raw, 0) >= 0
	} else {
		header, size, nul, limit = sk.header, sk.size, sk.nul, sk.limit
	}
	headerFacts(p, mailheader.Fields(header))
	if nul {
		p.Errors = append(p.Errors, warning(ErrNameNUL, "NUL bytes in the message are given as U+FFFD in headers, names and bodies; attachments keep theirs"))
	}
	if limit == nil {
		limit = checkLimits(raw, size, cfg)
	}
	if limit != nil {
		p.Errors = append(p.Errors, severe(ErrNameLimit, limit.Error()+"; body not parsed, headers only"))
	} else {
		marks = parseBody(p, raw, cfg, sk)
		if r := p.TextRaw; r != nil && sk != nil {
			// The skeleton holds the body as the message does, after
			// another header.
			*r = [2]int64{sk.bodyAt, sk.bodyAt + r[1] - r[0]}
		}
	}
	capErrors(p)
	return p, marks
}

func checkLimits(raw []byte, size int64, cfg Config) error {
	if size > cfg.MaxMessageBytes {
		return &limitError{fmt.Sprintf("message larger than %d bytes (limit max_message_bytes)", cfg.MaxMessageBytes)}
	}
	return checkShape(raw, cfg.MaxDepth, cfg.MaxParts)
}

// parseBody runs enmime and copies bodies, attachments and enmime's errors
// into p. With a skeleton, it returns the marks of the attachments and flags
// the bodies cut in the skeleton.
func parseBody(p *postern.Parsed, raw []byte, cfg Config, sk *skeleton) (marks []int) {
	mediaType := parseMediaType
	ascii := !cfg.decodeEveryCharset && passThroughASCII(raw)
	if ascii {
		mediaType = parseMediaTypeASCII
	}
	parser := enmime.NewParser(
		enmime.SkipMalformedParts(true),
		enmime.MultipartWOBoundaryAsSinglePart(true),
		enmime.SetReadPartErrorPolicy(enmime.AllowCorruptTextPartErrorPolicy),
		enmime.MaxStoredPartErrors(maxErrors),
		// A part that names its charset is decoded with it; detection (most
		// of the parse CPU) runs only for parts that name none.
		enmime.DisableCharacterDetection(true),
		// A Content-Type that does not parse leaves the part untyped
		// instead of dropping it (untyped.go).
		enmime.SetCustomParseMediaType(mediaType),
	)
	var env *enmime.Envelope
	var err error
	// byRef: the text is named in the message (TextRaw), not copied;
	// refCut: the cap cut it.
	var byRef *[2]int64
	refCut := false
	if ascii && !cfg.enmimeEveryBody {
		if head, body, ok := plainBody(raw, mediaType); ok {
			// Cleaning changes a NUL (7-bit text is otherwise valid);
			// a cap only shortens the text.
			ref := cfg.textRawMin > 0 && len(body) >= cfg.textRawMin && bytes.IndexByte(body, 0) < 0
			env, err = parser.ReadEnvelope(bytes.NewReader(head))
			if err == nil && !fillPlainBody(env, body, !ref) {
				env = nil
			}
			if env != nil && ref {
				at := int64(len(head))
				byRef = &[2]int64{at, at + int64(min(len(body), cfg.BodyInlineMax))}
				refCut = len(body) > cfg.BodyInlineMax
			}
		}
	}
	if env == nil {
		env, err = parser.ReadEnvelope(bytes.NewReader(raw))
	}
	if err != nil {
		p.Errors = append(p.Errors, severe(ErrNameUnparseable, err.Error()+"; headers only"))
		return nil
	}
	// enmime takes some lines for delimiters that RFC 2046 does not (one
	// that holds the boundary after other bytes, say), and their bytes
	// reach no part. Only a multipart root has delimiters to misread, so a
	// single-part message (most device mail) skips the walk.
	if env.Root != nil && strings.HasPrefix(env.Root.ContentType, "multipart/") {
		noteMisread(p, raw)
	}

	derived := false
	for _, e := range env.Errors {
		p.Errors = append(p.Errors, postern.ParseError{
			Name:   e.Name,
			Detail: clean(e.Detail),
			Severe: e.Severe,
		})
		if e.Name == enmime.ErrorPlainTextFromHTML {
			derived = true
		}
	}
	pieces := htmlPieces(env.Root)
	derived = joinHTMLPieces(parser, env, pieces, derived)
	untyped, text, cut := placeUntyped(env, sk, func(name, detail string) {
		p.Errors = append(p.Errors, warning(name, detail))
	})
	p.Text, p.TextTruncated = capBody(text, cfg.BodyInlineMax)
	p.TextTruncated = p.TextTruncated || cut || refCut
	p.TextRaw = byRef
	p.HTML, p.HTMLTruncated = capBody(env.HTML, cfg.BodyInlineMax)
	p.TextDerived = derived && p.Text != ""
	p.Attachments, marks = attachments(env, sk, untyped, pieces)
	if sk != nil {
		flagCutBodies(p, sk, marks)
	}
	return marks
}

// clean makes s valid UTF-8 without NUL bytes, replacing either with
// U+FFFD. NUL is never valid in headers or text (RFC 5322, RFC 2046), and
// receivers choke on it: PostgreSQL, for one, refuses it in text and jsonb.
func clean(s string) string { return mailheader.Clean(s) }

// noteMisread lists a line enmime read as a delimiter though RFC 2046 does
// not, found by the walk that bounds the shape (checkLimits has bounded its
// cost).
func noteMisread(p *postern.Parsed, raw []byte) {
	w, err := walkShape(raw, math.MaxInt, math.MaxInt)
	switch {
	case err != nil:
		p.Errors = append(p.Errors, severe(ErrNameMisread, err.Error()+"; some part's bytes may be missing"))
	case w.misread >= 0:
		line := raw[w.misread:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		p.Errors = append(p.Errors, severe(ErrNameMisread, fmt.Sprintf("the line %q is read as a MIME delimiter though it does not start with one; bytes of the part around it are not delivered", line[:min(len(line), 80)])))
	}
}

// capBody cleans s and cuts it to at most max bytes on a rune
// boundary.
func capBody(s string, max int) (string, bool) {
	s = clean(s)
	if len(s) <= max {
		return s, false
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], true
}

// attachments lists, in tree order, every leaf part that is not a body:
// enmime's attachment, inline and other parts, and the parts it has no
// place for (pieces.go). It leaves out the parts enmime used as the text and
// HTML bodies, the pieces joined to HTML, and the multipart containers
// themselves. Of the untyped leaves (placeUntyped), those not given as text
// are attachments too.
func attachments(env *enmime.Envelope, sk *skeleton, untyped map[*enmime.Part]bool, pieces []*enmime.Part) ([]postern.Attachment, []int) {
	out := []postern.Attachment{}
	var marks []int
	if env.Root == nil {
		return out, marks
	}
	var single map[*enmime.Part]bool
	if env.Root.FirstChild == nil {
		// A single part is the body or listed by enmime, never both.
		single = make(map[*enmime.Part]bool)
		for _, list := range [][]*enmime.Part{env.Attachments, env.Inlines, env.OtherParts} {
			for _, part := range list {
				single[part] = true
			}
		}
	}
	body := make(map[*enmime.Part]bool)
	for _, part := range bodyParts(env.Root) {
		body[part] = true
	}
	for _, part := range pieces {
		body[part] = true
	}
	parts := env.Root.DepthMatchAll(func(part *enmime.Part) bool {
		if asText, ok := untyped[part]; ok {
			return !asText
		}
		if part.FirstChild != nil || strings.HasPrefix(part.ContentType, "multipart/") || readAsContainer(part) {
			return false
		}
		if single != nil {
			return single[part]
		}
		return !body[part]
	})
	for _, part := range parts {
		sum := sha256.Sum256(part.Content)
		name := part.FileName
		if name == "" {
			name = fileName2231(part.Header)
		}
		out = append(out, postern.Attachment{
			Filename:     clean(name),
			ContentType:  clean(part.ContentType),
			DetectedType: http.DetectContentType(part.Content),
			Size:         int64(len(part.Content)),
			SHA256:       hex.EncodeToString(sum[:]),
			ContentID:    clean(part.ContentID),
			Disposition:  clean(part.Disposition),
			Content:      part.Content,
		})
		if sk != nil {
			marks = append(marks, markOf(part, sk.marked))
		}
	}
	return out, marks
}

// bodyParts returns the parts enmime read Text and HTML from, by enmime's own
// rules: in multipart/alternative the first text/plain breadth-first, else
// every text/plain; and the first text/html depth-first; none of them marked
// as attachment. (enmime lists inline-disposed body parts among Inlines too.)
func bodyParts(root *enmime.Part) []*enmime.Part {
	if root.FirstChild == nil {
		return nil // single part: the body is never also listed
	}
	isText := func(p *enmime.Part) bool { return p.ContentType == "text/plain" && p.Disposition != "attachment" }
	var out []*enmime.Part
	if root.ContentType == "multipart/alternative" {
		if p := root.BreadthMatchFirst(isText); p != nil {
			out = append(out, p)
		}
	} else {
		out = append(out, root.DepthMatchAll(isText)...)
	}
	if p := root.DepthMatchFirst(isHTMLBody); p != nil {
		out = append(out, p)
	}
	return out
}

// capErrors keeps at most maxErrors entries, severe ones first so a limit or
// parser failure is never crowded out by warnings, in their original order.
func capErrors(p *postern.Parsed) {
	if len(p.Errors) <= maxErrors {
		return
	}
	nSevere := 0
	for _, e := range p.Errors {
		if e.Severe {
			nSevere++
		}
	}
	warnBudget := maxErrors - min(nSevere, maxErrors)
	kept := make([]postern.ParseError, 0, maxErrors+1)
	for _, e := range p.Errors {
		switch {
		case e.Severe && len(kept) < maxErrors:
			kept = append(kept, e)
		case !e.Severe && warnBudget > 0:
			kept = append(kept, e)
			warnBudget--
		}
	}
	more := len(p.Errors) - len(kept)
	p.Errors = append(kept, warning(ErrNameTooMany, fmt.Sprintf("%d more not listed", more)))
}
