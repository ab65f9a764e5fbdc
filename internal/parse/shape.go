package parse

import (
	"bufio"
	"bytes"
	"fmt"
	"unicode"

	"github.com/jhillyerd/enmime/v2"
	"github.com/jhillyerd/enmime/v2/mediatype"
)

// enmime puts no bound on MIME nesting or part count, and its cost grows with
// depth times size: every byte passes through one boundary reader per level,
// so a 350 KB message nested 5,000 deep takes it about 20 s. checkShape
// bounds the structure first, without decoding anything, so a message over a
// limit never reaches enmime. It works in two steps:
//
//  1. A quick count that bounds enmime from above whatever it does: every
//     level needs its own line declaring a "boundary", and every part its own
//     line holding "--". Nearly all messages pass here.
//  2. Otherwise a walk that replays enmime's boundary rules (boundary.go and
//     parser.go in enmime v2), quirks included, and counts exactly the parts
//     and levels enmime would: a delimiter is recognised where a line starts,
//     anywhere in a line that a level's Next reads, and at any byte of a
//     part's first read (4 KiB); the outer reader's end bounds every inner
//     one; a part recurses when it declares a boundary and is not text/plain
//     or text/html. One quirk is not replayed: a delimiter in the middle of a
//     line in a part's first read gives enmime an end-of-part that some of
//     its readers honour and others read past. Its effect depends on which
//     reader meets it, so a message relying on it is refused as ambiguous.
//
// FuzzCheckShape holds both steps to enmime's behaviour. The cost is linear
// in the message size (times the depth reached, for the walk).

// maxBoundaryLen bounds a boundary's length. RFC 2046 allows 70 characters
// and RFC 5322 lines 998. It also keeps enmime's look-ahead (boundary plus a
// few bytes) inside its 4 KiB read buffer, which the walk relies on.
const maxBoundaryLen = 998

// firstReadLen is the size of the first read of every part (bufio's default
// buffer), during which enmime looks for a delimiter at every byte.
const firstReadLen = 4096

// limitError says which MIME limit a message exceeds.
type limitError struct{ detail string }

func (e *limitError) Error() string { return e.detail }

// checkShape returns a *limitError if raw nests multiparts deeper than
// maxDepth or holds more than maxParts parts.
func checkShape(raw []byte, maxDepth, maxParts int) error {
	if singlePart(raw) {
		return nil // one leaf: depth 0, one part
	}
	if lines, dashes := shapeBounds(raw); lines <= maxDepth && dashes <= maxParts {
		return nil
	}
	_, err := walkShape(raw, maxDepth, maxParts)
	return err
}

// shapeBounds counts the lines that mention "boundary" (in any case) and the
// lines that hold "--": upper bounds on enmime's depth and part count.
func shapeBounds(raw []byte) (boundaryLines, dashLines int) {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i+1], raw[i+1:]
		} else {
			raw = nil
		}
		if containsFold(line, "boundary") {
			boundaryLines++
		}
		if bytes.Contains(line, []byte("--")) {
			dashLines++
		}
	}
	return boundaryLines, dashLines
}

// singlePart reports whether enmime will read raw as one leaf part: its
// header block (up to the first empty line, where any reader ends it) never
// says "multipart", so no Content-Type in it can name a multipart type. The
// scans that bound a multipart's shape then need not read the body, which
// is most of a large device message.
func singlePart(raw []byte) bool {
	return !containsFold(splitHeader(raw), "multipart")
}

// containsFold reports whether s holds word (lower-case ASCII) in any case.
// It jumps between candidate first letters with IndexByte (vectorised)
// instead of trying every byte: it runs on every line of every message.
func containsFold(s []byte, word string) bool {
	lo, up := word[0], word[0]&^0x20
	for len(s) >= len(word) {
		tail := s[:len(s)-len(word)+1] // where word can start
		i := bytes.IndexByte(tail, lo)
		if i < 0 {
			i = len(tail)
		}
		if j := bytes.IndexByte(tail[:i], up); j >= 0 {
			i = j
		}
		if i == len(tail) {
			return false
		}
		if bytes.EqualFold(s[i:i+len(word)], []byte(word)) {
			return true
		}
		s = s[i+1:]
	}
	return false
}

// walkShape replays enmime's walk over the multipart structure; the walk
// holds what it counted.
func walkShape(raw []byte, maxDepth, maxParts int) (*shapeWalk, error) {
	w := &shapeWalk{raw: raw, maxDepth: maxDepth, maxParts: maxParts, misread: -1}
	hdrEnd, bodyStart := headerEnd(raw, 0, len(raw))
	b, ok := boundaryOf(raw[:hdrEnd], true)
	if !ok {
		return w, nil
	}
	return w, w.level(b, bodyStart, len(raw), 1)
}

type shapeWalk struct {
	raw                []byte
	maxDepth, maxParts int
	parts              int // parts seen so far
	depth              int // deepest level holding a part
	misread            int // where a line enmime takes for a delimiter is none, or -1
}

// delimiter is one multipart level's boundary lines.
type delimiter struct {
	delim []byte // "--" + boundary
	term  []byte // "--" + boundary + "--"
}

// level walks one multipart level whose body is raw[pos:lim], as enmime's
// parseParts does, opening nested levels for parts that declare a boundary.
func (w *shapeWalk) level(boundary string, pos, lim, depth int) error {
	if depth > w.maxDepth {
		return &limitError{fmt.Sprintf("MIME nesting deeper than %d levels (limit max_depth)", w.maxDepth)}
	}
	if len(boundary) > maxBoundaryLen {
		return &limitError{fmt.Sprintf("MIME boundary longer than %d bytes", maxBoundaryLen)}
	}
	d := delimiter{delim: []byte("--" + boundary), term: []byte("--" + boundary + "--")}
	partsRead := 0
	for {
		start, ok := w.next(d, pos, lim, partsRead)
		if !ok {
			return nil
		}
		partsRead++
		w.parts++
		w.depth = max(w.depth, depth)
		if w.parts > w.maxParts {
			return &limitError{fmt.Sprintf("more than %d MIME parts (limit max_parts)", w.maxParts)}
		}
		end, err := w.partEnd(d, start, lim)
		if err != nil {
			return err
		}
		hdrEnd, bodyStart := headerEnd(w.raw, start, end)
		if child, ok := boundaryOf(w.raw[start:hdrEnd], false); ok {
			if err := w.level(child, bodyStart, end, depth+1); err != nil {
				return err
			}
		}
		pos = end // Next first drains the part to its end
	}
}

// next mirrors boundaryReader.Next: it reads whole lines from pos and returns
// where the next part starts, or false when the level is over (terminator,
// end of input, or a line that is not a boundary after a part).
func (w *shapeWalk) next(d delimiter, pos, lim, partsRead int) (int, bool) {
	for pos < lim {
		line := w.raw[pos:lim]
		eof := true
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line, eof = line[:i+1], false
		}
		pos += len(line)
		if line[0] == '\r' || line[0] == '\n' {
			continue // blank
		}
		if bytes.Contains(line, d.term) {
			w.noteLine(d, pos-len(line))
			return 0, false
		}
		if !eof && isDelimiter(line, d.delim) {
			w.noteLine(d, pos-len(line))
			return pos, true
		}
		if eof || partsRead > 0 {
			return 0, false
		}
		// Preamble: skip.
	}
	return 0, false
}

// partEnd mirrors boundaryReader.Read: where the part starting at start, in
// a source that ends at lim, stops. During the part's first read every byte
// is checked; after that only CR and LF bytes are. A stop in the middle of a
// line (see checkShape) is an error.
func (w *shapeWalk) partEnd(d delimiter, start, lim int) (int, error) {
	first := min(start+firstReadLen, lim)
	for k := start; k < first; k++ {
		if w.stopsAt(d, k, lim, true) {
			if k > start && w.raw[k] != '\r' && w.raw[k] != '\n' {
				return 0, &limitError{"ambiguous MIME structure: a boundary in the middle of a line"}
			}
			w.noteStop(d, k)
			return k, nil
		}
	}
	for k := first; k < lim; k++ {
		i := bytes.IndexAny(w.raw[k:lim], "\r\n")
		if i < 0 {
			break
		}
		k += i
		if w.stopsAt(d, k, lim, false) {
			w.noteStop(d, k)
			return k, nil
		}
	}
	return lim, nil
}

// stopsAt mirrors the look-ahead in boundaryReader.Read at byte k.
func (w *shapeWalk) stopsAt(d delimiter, k, lim int, atPartStart bool) bool {
	pad := 0
	switch w.raw[k] {
	case '\r':
		pad = 2
	case '\n':
		pad = 1
	default:
		if !atPartStart {
			return false
		}
	}
	need := len(d.delim) + 2 + pad // enmime peeks len("\n--"+boundary)+padding+1
	if k+need > lim {
		return false // the peek hits the end of the source: no boundary
	}
	peek := w.raw[k : k+need] // at least 5 bytes: the boundary is not empty
	// enmime does not look for a boundary just before an empty line.
	if peek[0] == '\n' && (peek[1] == '\n' || peek[1] == '\r') ||
		peek[0] == '\r' && peek[1] == '\n' && (peek[2] == '\r' || peek[2] == '\n') {
		return false
	}
	peek = peek[pad:]
	return isDelimiter(peek, d.delim) || bytes.Contains(peek, d.term)
}

// noteStop records a part end at k (a stop of stopsAt) that is not where
// RFC 2046 ends a part: before a line end (CRLF or a bare LF) and a line
// that starts with the delimiter, or, at the part's start, before the
// delimiter itself. enmime's look-ahead also stops one byte early ("x--b")
// or after a bare CR, and the bytes it skips are in no part.
func (w *shapeWalk) noteStop(d delimiter, k int) {
	switch w.raw[k] {
	case '\r':
		if k+1 < len(w.raw) && w.raw[k+1] == '\n' {
			w.noteLine(d, k+2)
			return
		}
		w.noteAt(k)
	case '\n':
		w.noteLine(d, k+1)
	default:
		w.noteLine(d, k)
	}
}

// noteLine records a line at pos that enmime takes for a delimiter (or a
// close) but that does not start with the delimiter (RFC 2046 section
// 5.1.1): enmime looks for it anywhere in the line.
func (w *shapeWalk) noteLine(d delimiter, pos int) {
	if !bytes.HasPrefix(w.raw[pos:], d.delim) {
		w.noteAt(pos)
	}
}

func (w *shapeWalk) noteAt(pos int) {
	if w.misread < 0 {
		w.misread = pos
	}
}

// isDelimiter mirrors enmime: the first occurrence of the delimiter, followed
// by white space.
func isDelimiter(buf, delim []byte) bool {
	i := bytes.Index(buf, delim)
	if i < 0 {
		return false
	}
	i += len(delim)
	return i < len(buf) && unicode.IsSpace(rune(buf[i]))
}

// headerEnd finds the end of the header block starting at start in
// raw[:lim]: the first empty line ends it (and is skipped), or the end of
// the input does.
func headerEnd(raw []byte, start, lim int) (hdrEnd, bodyStart int) {
	for pos := start; pos < lim; {
		line := raw[pos:lim]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		if string(line) == "\n" || string(line) == "\r\n" {
			return pos, pos + len(line)
		}
		pos += len(line)
	}
	return lim, lim
}

// boundaryOf returns the boundary a header block declares, if enmime would
// treat the part as a multipart container (containerType).
func boundaryOf(block []byte, root bool) (string, bool) {
	br := bufio.NewReader(bytes.NewReader(append(block[:len(block):len(block)], "\r\n"...)))
	h, err := enmime.ReadHeader(br, discardErrors{})
	if err != nil {
		return "", false
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return "", false
	}
	mtype, params, _, err := mediatype.Parse(ct)
	if err != nil {
		return "", false
	}
	b := params["boundary"]
	return b, containerType(mtype, b, root)
}

// discardErrors ignores header problems: the full parse reports them.
type discardErrors struct{}

func (discardErrors) AddError(string, string, ...any)   {}
func (discardErrors) AddWarning(string, string, ...any) {}

var _ enmime.ErrorCollector = discardErrors{}
