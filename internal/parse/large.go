package parse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"slices"
	"strconv"
	"strings"

	"github.com/jhillyerd/enmime/v2"
	"github.com/jhillyerd/enmime/v2/mediatype"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/readerr"
)

// A large message is parsed without ever being held whole. enmime keeps every
// part's bytes in memory, so instead of the message it is given a skeleton:
// the message's header and MIME structure, every leaf part marked with its
// ordinal, small leaves as they are, text bodies cut at a cap, and other
// large leaves left empty. The skeleton goes through the usual Parse, so the
// tree, text selection, names and errors come from enmime as for any
// message; a second pass over the stored message then decodes each part not
// held whole that became an attachment straight into the store (or inline,
// when small), hashing and sniffing it on the way. Memory is bounded by the
// skeleton cap, whatever the message size.
//
// One difference is deliberate: enmime converts a text attachment it holds
// to UTF-8; an attachment decoded by the second pass keeps the bytes it was
// sent with (transfer encoding removed), as a file should.
//
// The structure is read with the standard library's multipart reader. A
// message it does not follow cleanly (a part header it refuses, a level
// without parts or without its close) or might split differently from
// enmime (a delimiter inside a line or with more after it, mixed line ends
// around delimiters) is parsed the usual way instead: an irregular message
// gets enmime's full tolerance at the cost of memory. TestLargePath* and
// FuzzLargePath hold the two paths to the same result.

// largeLimits tunes the large-message path; Config carries the defaults.
type largeLimits struct {
	skeletonMax int // bytes of the message kept for enmime, in all
	elideAbove  int // leaf parts larger than this are left out (encoded bytes)
	bodyMax     int // a text body keeps at most this many encoded bytes
	headerMax   int // a larger message header is an irregular message
	// textWholeBelow: a message up to this size that leaves a text
	// attachment out of the skeleton is parsed whole (errTextAttachment).
	textWholeBelow int64
}

func defaultLargeLimits(bodyInlineMax int) largeLimits {
	return largeLimits{
		skeletonMax: 8 << 20,
		elideAbove:  64 << 10,
		// Encodings grow text (base64 by 4/3, UTF-16 doubles it): twice
		// the inline cap fills it for nearly all bodies; one that stays
		// shorter is flagged truncated all the same.
		bodyMax:        min(2*bodyInlineMax, 8<<20),
		headerMax:      1 << 20,
		textWholeBelow: 4 << 20,
	}
}

// partMarker names the header a marked skeleton part carries: the index of
// its markedPart. Any such header in the message itself is dropped from the
// skeleton, so only ours are seen.
const partMarker = "X-Postern-Skeleton-Part"

// errIrregular says the streaming reader does not follow the structure; the
// message is parsed whole instead.
var errIrregular = errors.New("irregular MIME structure")

// markedPart is a leaf part of the skeleton; skeleton.marked holds them in
// tree order, so a part's index is its leaf ordinal and its marker.
type markedPart struct {
	whole bool   // the skeleton holds all of it; nothing to fill in
	mtype string // its media type, lower case
	cte   string // its Content-Transfer-Encoding, lower case
	cut   bool   // a body part kept in part; false: left out entirely
}

// errTextAttachment: parse this message whole. Up to textWholeBelow (4
// MiB, where the large path began before it began at 256 KiB) a text
// attachment is decoded by enmime, to UTF-8, as it always was, so a
// payload's content and sha256 do not depend on the path; above it the large
// path keeps its bytes as sent (README says so).
var errTextAttachment = errors.New("a text attachment left out of the skeleton")

// leavesOutText reports whether a text/* part that is not a body was left
// out of the skeleton (its bytes would be decoded without conversion).
func (sk *skeleton) leavesOutText() bool {
	for _, m := range sk.marked {
		if !m.whole && !m.cut && strings.HasPrefix(m.mtype, "text/") {
			return true
		}
	}
	return false
}

// skeleton is what the first pass keeps of a large message.
type skeleton struct {
	header []byte        // the message's header block, as it is
	raw    []byte        // the skeleton message given to enmime
	buf    *bytes.Buffer // raw's buffer, from bufPool
	bodyAt int64         // a single-part message's body starts here in the message; -1 for a multipart
	marked []markedPart
	size   int64 // bytes read; over MaxMessageBytes means over the limit
	nul    bool  // the message holds a NUL byte
	limit  error // a MIME limit the walk met: headers only
}

// leafFunc is called for each leaf part in tree order with its header block
// (the message header for a single-part message) and body. It may leave the
// body unread. An error of its own (not one reading body) it wraps in
// stageError, so it is not taken for an irregular structure.
type leafFunc func(leaf int, header []byte, body io.Reader) error

// stageError is a leaf function's own failure, such as a store's.
type stageError struct{ err error }

func (e *stageError) Error() string { return e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// walkMessage reads a message's header and walks its MIME tree. The header
// block, the multipart structure (delimiters and container headers) are
// written to out; each leaf goes to leaf, which writes its own part of the
// skeleton. It returns the header block and what it counted.
//
// Errors: a read error of r itself, a *limitError, a leaf function's
// stageError, or else errIrregular for what the multipart reader refused.
func walkMessage(r io.Reader, cfg Config, out io.Writer, leaf leafFunc) (header []byte, size int64, nul bool, bodyAt int64, err error) {
	src := &readerr.Reader{R: r}
	cr := &countReader{r: io.LimitReader(src, cfg.MaxMessageBytes+1)}
	defer func() {
		var limit *limitError
		var own *stageError
		switch {
		case err == nil, errors.As(err, &limit), errors.Is(err, errIrregular):
		case src.Err != nil:
			err = src.Err
		case errors.As(err, &own):
			err = own.err
		default:
			err = fmt.Errorf("%w: %v", errIrregular, err)
		}
	}()
	br := bufio.NewReaderSize(cr, 32<<10)
	header, err = readHeaderBlock(br, cfg.large.headerMax)
	if err != nil {
		return nil, 0, false, -1, err
	}
	bodyAt = cr.n - int64(br.Buffered()) // where a single part's body starts
	if len(header) > 0 && header[len(header)-1] != '\n' {
		header = append(header, "\r\n"...)
	}
	if b, ok := boundaryOf(header, true); ok {
		out.Write(header)
		io.WriteString(out, "\r\n")
		w := &walker{maxDepth: cfg.MaxDepth, maxParts: cfg.MaxParts, out: out, leaf: leaf}
		err = w.level(br, b, 1)
		bodyAt = -1
	} else {
		err = readLeaf(leaf, 0, header, br)
	}
	if err != nil {
		return header, cr.n, cr.nul, bodyAt, err
	}
	// The epilogue counts towards the size and may hold a NUL too.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, 0, false, -1, err
	}
	return header, cr.n, cr.nul, bodyAt, nil
}

// readHeaderBlock reads up to and excluding the empty line that ends the
// header (consumed), or to the end of the input.
func readHeaderBlock(br *bufio.Reader, max int) ([]byte, error) {
	var block []byte
	for {
		line, err := br.ReadSlice('\n')
		// Only a whole line can be the empty one: a line longer than the
		// buffer comes in pieces.
		atStart := len(block) == 0 || block[len(block)-1] == '\n'
		if atStart && (string(line) == "\n" || string(line) == "\r\n") {
			return block, nil
		}
		block = append(block, line...)
		if len(block) > max {
			return nil, fmt.Errorf("%w: header block over %d bytes", errIrregular, max)
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return block, nil
		default:
			return nil, err
		}
	}
}

// walker walks multipart levels in the order enmime does.
type walker struct {
	maxDepth, maxParts int
	parts, leaves      int
	out                io.Writer
	leaf               leafFunc
}

func (w *walker) level(r io.Reader, boundary string, depth int) error {
	if depth > w.maxDepth {
		return &limitError{fmt.Sprintf("MIME nesting deeper than %d levels (limit max_depth)", w.maxDepth)}
	}
	lines := newDelimLines(r, boundary)
	mr := multipart.NewReader(lines, boundary)
	n := 0
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF { // exactly: a level without its close wraps io.EOF
			// The reader also ends a level at a delimiter followed by
			// nothing (no header, no body), where enmime sees one more part.
			if lines.ambiguous != "" {
				return fmt.Errorf("%w: level %q: %s", errIrregular, boundary, lines.ambiguous)
			}
			if !lines.closed {
				return fmt.Errorf("%w: level %q ends without its close delimiter", errIrregular, boundary)
			}
			break
		}
		if err != nil {
			return err
		}
		if lines.ambiguous != "" {
			return fmt.Errorf("%w: level %q: %s", errIrregular, boundary, lines.ambiguous)
		}
		n++
		if w.parts++; w.parts > w.maxParts {
			return &limitError{fmt.Sprintf("more than %d MIME parts (limit max_parts)", w.maxParts)}
		}
		io.WriteString(w.out, "--"+boundary+"\r\n")
		part.Header.Del(partMarker)
		hb := headerBytes(part.Header)
		if b, ok := boundaryOf(hb, false); ok {
			w.out.Write(hb)
			io.WriteString(w.out, "\r\n")
			if err := w.level(part, b, depth+1); err != nil {
				return err
			}
		} else {
			leaf := w.leaves
			w.leaves++
			if err := readLeaf(w.leaf, leaf, hb, part); err != nil {
				return err
			}
		}
		io.WriteString(w.out, "\r\n")
	}
	if n == 0 {
		return fmt.Errorf("%w: no part found for boundary %q", errIrregular, boundary)
	}
	io.WriteString(w.out, "--"+boundary+"--\r\n")
	return nil
}

// delimLines watches the bytes of one multipart level for delimiters the
// standard reader and enmime could read differently, and notes whether the
// last delimiter line is the close ("--boundary--"). The two agree on a
// delimiter that starts a line, is followed by nothing but blanks, and has
// the same line ends as the first one; anything else that looks like a
// delimiter (inside a line, other trailing bytes, mixed line ends) makes
// the level ambiguous, and the message is parsed whole.
type delimLines struct {
	r     io.Reader
	delim []byte // "--" + boundary
	fail  []int  // KMP failure function of delim

	match      int    // bytes of delim matched so far
	col        int    // bytes into the current line
	pendingMid bool   // delim ended mid-line; the next byte decides
	line       []byte // the start of the current line, up to len(delim)+4 bytes
	long       bool   // the current line goes on past line
	last       byte   // the current line's last byte so far
	delims     int    // delimiter lines so far
	prevCR     bool   // the last line ended in CRLF
	nl         int    // line end of delimiters: 0 unknown, 1 LF, 2 CRLF
	closed     bool
	ambiguous  string
}

func newDelimLines(r io.Reader, boundary string) *delimLines {
	d := &delimLines{r: r, delim: []byte("--" + boundary)}
	d.fail = make([]int, len(d.delim))
	for i, k := 1, 0; i < len(d.delim); i++ {
		for k > 0 && d.delim[i] != d.delim[k] {
			k = d.fail[k-1]
		}
		if d.delim[i] == d.delim[k] {
			k++
		}
		d.fail[i] = k
	}
	return d
}

func (d *delimLines) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.scan(p[:n])
	if err != nil {
		if d.pendingMid {
			d.ambiguous = "delimiter inside a line"
		}
		if len(d.line) > 0 || d.long {
			d.endLine(false)
		}
	}
	return n, err
}

// scan feeds b through byte, but takes runs that cannot touch a delimiter
// (no partial match pending, no '-', which starts every delimiter, and no
// LF) in one step: in base64 bodies that is nearly every byte.
func (d *delimLines) scan(b []byte) {
	for len(b) > 0 {
		if d.pendingMid || d.match > 0 {
			d.byte(b[0])
			b = b[1:]
			continue
		}
		end := bytes.IndexByte(b, '\n')
		if end < 0 {
			end = len(b)
		}
		if k := bytes.IndexByte(b[:end], d.delim[0]); k >= 0 {
			end = k
		}
		if end == 0 {
			d.byte(b[0])
			b = b[1:]
			continue
		}
		run := b[:end]
		// What byte does for each of them: count, remember the last, keep
		// the line's start.
		if room := len(d.delim) + 4 - len(d.line); room >= len(run) {
			d.line = append(d.line, run...)
		} else {
			d.line = append(d.line, run[:max(room, 0)]...)
			d.long = true
		}
		d.col += len(run)
		d.last = run[len(run)-1]
		b = b[end:]
	}
}

func (d *delimLines) byte(c byte) {
	if d.pendingMid {
		d.pendingMid = false
		if c == '-' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			d.ambiguous = "delimiter inside a line"
		}
	}
	for d.match > 0 && c != d.delim[d.match] {
		d.match = d.fail[d.match-1]
	}
	if c == d.delim[d.match] {
		d.match++
	}
	if d.match == len(d.delim) {
		if d.col+1 != len(d.delim) {
			d.pendingMid = true
		}
		d.match = d.fail[d.match-1]
	}
	if c == '\n' {
		d.endLine(true)
		d.col, d.match = 0, 0
		return
	}
	d.col++
	d.last = c
	if len(d.line) < len(d.delim)+4 {
		d.line = append(d.line, c)
	} else {
		d.long = true
	}
}

// endLine judges the line just ended (by LF when lf).
func (d *delimLines) endLine(lf bool) {
	line := d.line
	cr := lf && d.col > 0 && d.last == '\r'
	if cr && !d.long {
		line = line[:len(line)-1]
	}
	if rest, ok := bytes.CutPrefix(line, d.delim); ok && (len(rest) == 0 || strings.IndexByte("- \t\r", rest[0]) >= 0) {
		closing := bytes.HasPrefix(rest, []byte("--"))
		if closing {
			rest = rest[2:]
		}
		end := 1 // this line's end: 1 LF, 2 CRLF
		if cr {
			end = 2
		}
		switch {
		case len(bytes.Trim(rest, " \t")) > 0 || d.long:
			d.ambiguous = "a delimiter line with more on it"
		case lf && d.nl != 0 && end != d.nl,
			d.delims > 0 && d.prevCR != (d.nl == 2):
			// The standard reader takes the first delimiter's line end
			// for all of them and for the line before each.
			d.ambiguous = "mixed line ends around delimiters"
		default:
			if d.nl == 0 && lf {
				d.nl = end
			}
			d.delims++
			d.closed = closing
		}
	}
	d.prevCR = cr
	d.line, d.long, d.last = d.line[:0], false, 0
}

// readLeaf calls leaf and reads the rest of the body, so a part that does
// not end properly shows whether or not the leaf function read it.
func readLeaf(leaf leafFunc, n int, header []byte, body io.Reader) error {
	if err := leaf(n, header, body); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, body)
	return err
}

// headerBytes writes a part header back out, fields sorted by name (the
// multipart reader keeps no order; enmime needs none).
func headerBytes(h textproto.MIMEHeader) []byte {
	var b bytes.Buffer
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range h {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, v := range h[k] {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	return b.Bytes()
}

// partFacts reads what the skeleton needs from a header block: media type,
// disposition and transfer encoding, lower case, and whether the part is
// untyped (untyped.go). A part without a media type is text/plain (RFC 2045
// section 5.2).
func partFacts(header []byte) (mtype, disposition, cte string, untyped bool) {
	br := bufio.NewReader(bytes.NewReader(append(header[:len(header):len(header)], "\r\n"...)))
	h, err := enmime.ReadHeader(br, discardErrors{})
	if err != nil {
		return "", "", "", false
	}
	name, _ := untypedProblem(h.Get("Content-Type"))
	untyped = name != ""
	mtype = "text/plain"
	if ct := h.Get("Content-Type"); ct != "" {
		mtype = ""
		if t, _, _, err := mediatype.Parse(ct); err == nil {
			mtype = strings.ToLower(t)
		}
	}
	if cd := h.Get("Content-Disposition"); cd != "" {
		if d, _, _, err := mediatype.Parse(cd); err == nil {
			disposition = strings.ToLower(d)
		}
	}
	return mtype, disposition, strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))), untyped
}

// buildSkeleton is the first pass over a large message. On an error the
// skeleton holds the header block, when it was read. size is the stored
// message's size, which sizes the buffer of a single-part one.
func buildSkeleton(r io.Reader, cfg Config, size int64) (*skeleton, error) {
	sk := &skeleton{buf: getBuf()}
	out := sk.buf
	budget := cfg.large.skeletonMax
	leaf := func(leaf int, header []byte, body io.Reader) error {
		mtype, disp, cte, untyped := partFacts(header)
		// An untyped part is kept like a body: it may become text, and
		// which it becomes is decided on what the skeleton holds of it.
		isBody := (mtype == "text/plain" || mtype == "text/html") && disp != "attachment" || untyped
		keep := min(cfg.large.elideAbove, budget)
		if isBody {
			keep = min(cfg.large.bodyMax, budget)
		}
		if out.Len() == 0 && isBody {
			// A single-part message's body (walkMessage wrote nothing
			// before it): the skeleton is nearly all of the message, so
			// take room for it at once instead of doubling up to it, with
			// the slack ReadFrom wants to see the end.
			out.Grow(len(header) + len(partMarker) + 32 + int(min(size, int64(keep)+1)) + bytes.MinRead)
		}
		// Every leaf is marked (the marker is written before its size is
		// known); only the ones not held whole are looked up.
		out.Write(header)
		out.WriteString(partMarker + ": " + strconv.Itoa(leaf) + "\r\n\r\n") // == len(sk.marked)
		start := out.Len()
		n, err := out.ReadFrom(io.LimitReader(body, int64(keep)+1))
		if err != nil {
			return err
		}
		if n <= int64(keep) {
			sk.marked = append(sk.marked, markedPart{whole: true})
			budget -= int(n)
			return nil
		}
		kept := out.Bytes()[start : start+keep]
		cut := 0
		if isBody {
			// Cut on a line end, so the decoder sees whole lines.
			cut = bytes.LastIndexByte(kept, '\n') + 1
		}
		out.Truncate(start + cut)
		budget -= cut
		sk.marked = append(sk.marked, markedPart{mtype: mtype, cte: cte, cut: isBody})
		return nil
	}
	header, size, nul, bodyAt, err := walkMessage(r, cfg, out, leaf)
	sk.header, sk.raw, sk.size, sk.nul, sk.bodyAt = header, out.Bytes(), size, nul, bodyAt
	return sk, err
}

// readUpTo reads at most max+1 bytes of r; whole says r ended within the
// first max.
func readUpTo(r io.Reader, max int) (b []byte, whole bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, false, err
	}
	return b, len(b) <= max, nil
}

// countReader counts the bytes read and notes a NUL among them.
type countReader struct {
	r   io.Reader
	n   int64
	nul bool
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if !c.nul && bytes.IndexByte(p[:n], 0) >= 0 {
		c.nul = true
	}
	return n, err
}

// markOf returns the index of the marked part a skeleton part stands for, or
// -1. The last marker counts: the message's own header, kept whole for a
// single-part message, may carry one before ours.
func markOf(part *enmime.Part, marked []markedPart) int {
	vs := part.Header.Values(partMarker)
	if len(vs) == 0 {
		return -1
	}
	i, err := strconv.Atoi(strings.TrimSpace(vs[len(vs)-1]))
	if err != nil || i < 0 || i >= len(marked) || marked[i].whole {
		return -1
	}
	return i
}

// flagCutBodies marks Text and HTML truncated when a body part was cut in the
// skeleton and did not become an attachment (so enmime read it as a body).
func flagCutBodies(p *postern.Parsed, sk *skeleton, marks []int) {
	attached := make(map[int]bool, len(marks))
	for _, m := range marks {
		attached[m] = true
	}
	for i, mp := range sk.marked {
		if mp.whole || !mp.cut || attached[i] {
			continue
		}
		switch mp.mtype {
		case "text/plain":
			p.TextTruncated = true
		case "text/html":
			p.HTMLTruncated = true
			p.TextTruncated = p.TextTruncated || p.TextDerived
		}
	}
}
