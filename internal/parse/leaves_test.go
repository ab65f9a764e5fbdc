package parse

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html/charset"
	"golang.org/x/text/encoding/htmlindex"

	"github.com/postern/postern/internal/postern"
)

// The property that parsing never drops content silently, checked against
// an independent reading of the message: Go's net/textproto, mime and
// mime/multipart walk the raw bytes (enmime takes no part in it) and list
// its leaf parts; every non-empty leaf's bytes must then be in the payload,
// in Text, in HTML or as an attachment's content, or an error must say why
// not.
//
// What the check can and cannot see:
//   - Which parts are containers follows enmime's rule (containerType), Go
//     splitting them: the root when it is multipart/* with a boundary, a
//     nested part when it has a boundary and is not text/plain or text/html,
//     whatever its type (a nested "Content-Type: x/y; boundary=a" is a
//     container, its body read for delimiters, not a leaf). A leaf is any
//     other part: no Content-Type, no boundary, a text body with one, a
//     root that is not multipart, or a container whose boundary never
//     appears (then its whole body is the leaf).
//   - Where Go cannot follow the structure (a header it refuses, a level it
//     cannot finish), the leaves read so far are checked and the rest is not.
//     A Content-Type that Go's strict parser refuses but enmime's tolerant
//     one may read as a container is not checked either: the two readings
//     need not agree on what the leaves are.
//   - Content is compared exactly where Go can decode it: the transfer
//     encoding decoded by Go (base64 without white space and padding;
//     quoted-printable read as enmime reads it, see qpStrayEscaped), then as it is or converted from its declared
//     charset (WHATWG names; none means us-ascii, which WHATWG reads as
//     windows-1252) or, for HTML naming none, from its meta tag; text is
//     cleaned (U+FFFD for NUL and bad UTF-8) as the stage cleans it. Where
//     Go cannot decode the transfer encoding (corrupt base64, say), only the
//     presence of an error is required.
//   - Text and HTML are searched for a leaf as a substring, so a short leaf
//     may match by chance; attachments must equal it byte for byte, each
//     attachment matching one leaf. cfg must let Text and HTML through uncut.
//   - A missing leaf is excused by a severe error (the stage lists one
//     whenever part of the message could not be represented) or by an
//     error that the structure is broken ("Missing Boundary"); a warning of
//     another kind excuses nothing.
//   - The line end before a delimiter belongs to the delimiter (RFC 2046
//     section 5.1.1: the delimiter is CRLF "--" boundary), CRLF or a bare
//     LF alike, as enmime reads it. Go's reader picks one kind for a whole
//     multipart from its first delimiter line: after a bare LF there it
//     ends each part at LF "--" boundary and leaves the CR of a CRLF line
//     end in the part. The walk gives that one CR back to the delimiter
//     (lfDelimited); a CR before it, or any CR when the first delimiter
//     line ends in CRLF, stays in the part. In CRLF mode Go reads a
//     delimiter line after a bare LF as content (bareLFDelimiter); the walk
//     stops there, as where Go cannot follow the structure.
//   - Leaves of a multipart/alternative count like any other: a second
//     text/plain or text/html alternative, which enmime takes for no body,
//     must be an attachment, and an HTML piece after an inline image must
//     be in HTML or an attachment (pieces.go; extraCases are among the
//     inputs).

// stdLeaf is a leaf part as Go reads it.
type stdLeaf struct {
	path    string // "1.2": the second part of the first part
	body    []byte // transfer-decoded when exact
	exact   bool   // body is exactly the decoded content
	charset string // the declared charset, lower case
	html    bool   // text/html
}

// stdLeaves walks raw with the standard library. complete is false where it
// could not follow the whole structure.
func stdLeaves(raw []byte) (leaves []stdLeaf, complete bool) {
	br := bufio.NewReader(bytes.NewReader(raw))
	h, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil && !(err == io.EOF && len(h) > 0) {
		return nil, false
	}
	body, err := io.ReadAll(br)
	if err != nil {
		return nil, false
	}
	w := &stdWalk{}
	w.part("0", h, body, 0)
	return w.leaves, !w.incomplete
}

type stdWalk struct {
	leaves     []stdLeaf
	incomplete bool
}

// maxStdDepth stops the walk on hostile nesting; the stage's own limit is
// lower, and a message over it carries a severe error.
const maxStdDepth = 64

func (w *stdWalk) part(path string, h textproto.MIMEHeader, raw []byte, depth int) {
	ct := h.Get("Content-Type")
	mtype, params, err := mime.ParseMediaType(ct)
	if ct != "" && err != nil {
		w.incomplete = true // see above: the readings may disagree
		return
	}
	if containerType(mtype, params["boundary"], path == "0") {
		if depth >= maxStdDepth {
			w.incomplete = true
			return
		}
		mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
		lf := lfDelimited(raw, params["boundary"])
		for n := 1; ; n++ {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				if n == 1 && !bytes.Contains(raw, []byte("--"+params["boundary"])) {
					break // the boundary never appears: the body is the leaf
				}
				w.incomplete = true
				return
			}
			b, err := io.ReadAll(p)
			if err != nil {
				w.incomplete = true
				return
			}
			if lf {
				// Go ended the part at LF "--" boundary; a CR before that
				// LF is the rest of a CRLF line end (see above).
				b = bytes.TrimSuffix(b, []byte("\r"))
			} else if bareLFDelimiter(b, params["boundary"]) {
				w.incomplete = true // see above: Go reads past a delimiter
				return
			}
			sub := strconv.Itoa(n)
			if path != "0" {
				sub = path + "." + sub
			}
			w.part(sub, p.Header, b, depth+1)
		}
	}
	leaf := stdLeaf{path: path, body: raw, exact: true, charset: strings.ToLower(params["charset"]), html: mtype == "text/html"}
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' || r == '=' {
				return -1
			}
			return r
		}, raw)
		dec, err := base64.RawStdEncoding.DecodeString(string(clean))
		leaf.body, leaf.exact = dec, err == nil
		if err != nil {
			leaf.body = raw
		}
	case "quoted-printable":
		esc := qpStrayEscaped(raw)
		dec, err := io.ReadAll(quotedprintable.NewReader(bufio.NewReaderSize(bytes.NewReader(esc), len(esc)+16)))
		leaf.body, leaf.exact = dec, err == nil
		if err != nil {
			leaf.body = raw
		}
	}
	w.leaves = append(w.leaves, leaf)
}

// qpStrayEscaped escapes in quoted-printable raw what Go's reader refuses
// and enmime takes for itself (its QPCleaner): a "=" that starts neither an
// escape (two hex digits, either case) nor a soft line break ("=" then LF
// or CRLF), a "=" at the very end included, becomes "=3D"; a byte outside
// tab, CR, LF and printable ASCII becomes its escape. Go's reader, given a
// buffer as large as the input (enmime breaks long lines instead; a soft
// line break changes nothing), then reads every input.
func qpStrayEscaped(raw []byte) []byte {
	hex := func(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f' }
	out := make([]byte, 0, len(raw))
	for i, c := range raw {
		switch rest := raw[i+1:]; {
		case c == '=':
			if bytes.HasPrefix(rest, []byte("\n")) || bytes.HasPrefix(rest, []byte("\r\n")) || len(rest) >= 2 && hex(rest[0]) && hex(rest[1]) {
				out = append(out, c)
			} else {
				out = append(out, "=3D"...)
			}
		case c == '\t' || c == '\r' || c == '\n' || ' ' <= c && c <= '~':
			out = append(out, c)
		default:
			out = fmt.Appendf(out, "=%02X", c)
		}
	}
	return out
}

// lfDelimited reports whether Go's multipart reader reads the multipart
// body raw with bare-LF line ends: whether the first line it takes for a
// delimiter line ("--" boundary, spaces or tabs, a line end) ends in a bare
// LF rather than CRLF. It then finds each part's end at LF "--" boundary.
func lfDelimited(raw []byte, boundary string) bool {
	dash := []byte("--" + boundary)
	for line := range bytes.Lines(raw) {
		rest, ok := bytes.CutPrefix(line, dash)
		if !ok {
			continue
		}
		rest = bytes.TrimLeft(rest, " \t")
		switch string(rest) {
		case "\n":
			return true
		case "\r\n":
			return false
		}
	}
	return false
}

// bareLFDelimiter reports whether the part body b, read by Go's reader in
// CRLF mode, holds a delimiter line after a bare LF, which Go reads as
// content and enmime as a delimiter.
func bareLFDelimiter(b []byte, boundary string) bool {
	dash := []byte("--" + boundary)
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, dash); ok && (len(rest) == 0 || strings.IndexByte(" \t\r\n-", rest[0]) >= 0) {
			return true
		}
	}
	return false
}

// leafForms are the forms a leaf's bytes may take in the payload.
func leafForms(l stdLeaf) [][]byte {
	forms := [][]byte{l.body}
	cs := l.charset
	if cs == "" {
		cs = "us-ascii" // the default; WHATWG reads it as windows-1252, as enmime does
	}
	if cs != "utf-8" {
		if enc, err := htmlindex.Get(cs); err == nil {
			if b, err := enc.NewDecoder().Bytes(l.body); err == nil {
				forms = append(forms, b)
			}
		}
	}
	if l.html && l.charset == "" {
		// A charset named in a meta tag, found by x/net's sniffer.
		if enc, name, _ := charset.DetermineEncoding(l.body, "text/html"); name != "utf-8" {
			if b, err := enc.NewDecoder().Bytes(l.body); err == nil {
				forms = append(forms, b)
			}
		}
		// enmime looks further: "charset=" anywhere after "<meta", in a
		// tag or not ("<meta4 charset=windows-1255" counts).
		if m := looseMetaCharset.FindSubmatch(l.body); m != nil {
			if enc, err := htmlindex.Get(string(m[1])); err == nil {
				if b, err := enc.NewDecoder().Bytes(l.body); err == nil {
					forms = append(forms, b)
				}
			}
		}
	}
	return forms
}

// looseMetaCharset finds a charset the way enmime's HTML body reader does:
// the first "charset=" after "<meta", in any case.
var looseMetaCharset = regexp.MustCompile(`(?i)<meta.*charset="?\s*([a-zA-Z0-9_.:-]+)`)

// leafExcuse returns the error that excuses a missing leaf, if any.
func leafExcuse(p *postern.Parsed) (postern.ParseError, bool) {
	for _, e := range p.Errors {
		if e.Severe || e.Name == "Missing Boundary" {
			return e, true
		}
	}
	return postern.ParseError{}, false
}

// checkLeavesReached checks the property on p, the payload of raw.
func checkLeavesReached(t testing.TB, raw []byte, p *postern.Parsed) {
	t.Helper()
	leaves, _ := stdLeaves(raw)
	claimed := make([]bool, len(p.Attachments))
	for _, l := range leaves {
		if len(l.body) == 0 {
			continue
		}
		found := false
	forms:
		for _, form := range leafForms(l) {
			if s := clean(string(form)); strings.Contains(p.Text, s) || strings.Contains(p.HTML, s) {
				found = true
				break
			}
			for i, a := range p.Attachments {
				if !claimed[i] && bytes.Equal(a.Content, form) {
					claimed[i], found = true, true
					break forms
				}
			}
		}
		if found {
			continue
		}
		if !l.exact && len(p.Errors) > 0 {
			continue // not comparable; see above
		}
		if e, ok := leafExcuse(p); ok {
			t.Logf("leaf %s (%d bytes) not in the payload, excused by %q: %s", l.path, len(l.body), e.Name, e.Detail)
			continue
		}
		t.Errorf("leaf %s (%d bytes, %q...) is not in the payload and no error says why; errors %+v",
			l.path, len(l.body), l.body[:min(len(l.body), 40)], p.Errors)
	}
}

// leafTestMessages is every message the tests and fuzzers start from: the
// corpus, the fixtures, the fuzzers' seeds and their stored corpus.
func leafTestMessages(t *testing.T) map[string][]byte {
	t.Helper()
	out := testMessages(t)
	for i, b := range fuzzParseSeeds() {
		out["FuzzParse seed "+strconv.Itoa(i)] = b
	}
	for i, b := range fuzzLargePathSeeds() {
		out["FuzzLargePath seed "+strconv.Itoa(i)] = b
	}
	files, err := filepath.Glob("testdata/fuzz/*/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw, ok := fuzzFileBytes(b)
		if !ok {
			t.Fatalf("%s: not a one-[]byte fuzz corpus file", f)
		}
		out[f] = raw
	}
	for _, c := range untypedCases() {
		out["untyped: "+c.name] = []byte(c.raw)
	}
	for _, c := range extraCases() {
		out["extra: "+c.name] = []byte(c.raw)
	}
	return out
}

// fuzzFileBytes reads a "go test fuzz v1" file of one []byte value.
func fuzzFileBytes(b []byte) ([]byte, bool) {
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, false
	}
	lit, ok := strings.CutPrefix(lines[1], "[]byte(")
	if lit, ok = strings.CutSuffix(lit, ")"); !ok {
		return nil, false
	}
	s, err := strconv.Unquote(lit)
	return []byte(s), err == nil
}

// Every non-empty leaf part of every message reaches the payload, or an
// error says why not: from Parse, and from the stage on both paths.
func TestEveryLeafReachesThePayload(t *testing.T) {
	t.Parallel()
	for name, raw := range leafTestMessages(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("parse", func(t *testing.T) {
				checkLeavesReached(t, raw, Parse(raw, Config{BodyInlineMax: 64 << 20}))
			})
			t.Run("stage large", func(t *testing.T) {
				cfg := largeCfg()
				cfg.BodyInlineMax = 64 << 20
				hs := newHarnessCfg(t, cfg)
				hs.logs.quiet = true
				checkLeavesReached(t, raw, handled(t, hs, raw))
			})
		})
	}
}

// The check finds what it is for: a part whose body is missing from the
// payload without an error.
func TestLeafCheckFailsOnLoss(t *testing.T) {
	t.Parallel()
	raw := []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nkept\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\n\r\nlost bytes\r\n--b--\r\n")
	p := Parse(raw, Config{})
	if len(p.Attachments) != 1 {
		t.Fatalf("attachments = %+v", p.Attachments)
	}
	p.Attachments = nil
	ft := &fakeTB{TB: t}
	checkLeavesReached(ft, raw, p)
	if !ft.failed {
		t.Error("the check passed a payload without the attachment")
	}
	p.Errors = append(p.Errors, severe(ErrNameLimit, "x"))
	ft = &fakeTB{TB: t}
	checkLeavesReached(ft, raw, p)
	if ft.failed {
		t.Error("a severe error did not excuse the missing part")
	}
}

// The independent reading gives the line end before a delimiter to the
// delimiter, CRLF or bare LF, whichever kind of line end the multipart's
// first delimiter line has, and keeps any other CR in the part.
func TestStdLeavesLineEndBeforeDelimiter(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, raw, body string }{
		{"CRLF", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nabc\r\n--b--\r\n", "abc"},
		{"CRLF, a CR before it", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nabc\r\r\n--b--\r\n", "abc\r"},
		{"LF", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nabc\n--b--\n", "abc"},
		{"LF, then CRLF", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nabc\r\n--b--\n", "abc"},
		{"LF, then a CR before CRLF", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nabc\r\r\n--b--\n", "abc\r"},
		{"LF, a CR inside", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\na\rbc\r\n\n--b--\n", "a\rbc\r\n"},
		{"LF, padded", "Content-Type: multipart/mixed; boundary=b\n\n--b \t\n\nabc\r\n--b--\n", "abc"},
		{"LF after a preamble line", "Content-Type: multipart/mixed; boundary=b\n\n--bx\r\n--b\n\nabc\r\n--b--\n", "abc"},
		{"nested, LF inside CRLF", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n" +
			"--c\n\nabc\r\n--c--\r\n--b--\r\n", "abc"},
	}
	for _, c := range cases {
		leaves, _ := stdLeaves([]byte(c.raw))
		if len(leaves) != 1 || string(leaves[0].body) != c.body {
			t.Errorf("%s: leaves %+v, want one of %q", c.name, leaves, c.body)
			continue
		}
		if p := Parse([]byte(c.raw), Config{}); len(p.Attachments) == 1 && string(p.Attachments[0].Content) != c.body || len(p.Attachments) == 0 && p.Text != c.body {
			t.Errorf("%s: Parse gives text %q, attachments %+v; the walk %q", c.name, p.Text, p.Attachments, c.body)
		}
	}
}

// The independent reading splits the parts enmime reads as containers
// (containerType): below the root, any part with a boundary that is not
// text/plain or text/html, whatever its type.
func TestStdLeavesNestedContainers(t *testing.T) {
	t.Parallel()
	const inner = "--c\r\n\r\nabc\r\n--c--"
	cases := []struct{ name, ct, body string }{
		{"multipart", "multipart/mixed; boundary=c", "abc"},
		{"another type", "application/x-y; boundary=c", "abc"},
		{"no subtype", "0; boundary=c", "abc"},
		{"text/plain", "text/plain; boundary=c", inner},
		{"text/html", "text/html; boundary=c", inner},
		{"no boundary", "application/x-y", inner},
	}
	for _, c := range cases {
		raw := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: " + c.ct + "\r\n\r\n" + inner + "\r\n--b--\r\n"
		leaves, complete := stdLeaves([]byte(raw))
		if !complete || len(leaves) != 1 || string(leaves[0].body) != c.body {
			t.Errorf("%s: leaves %+v (complete %v), want one of %q", c.name, leaves, complete, c.body)
		}
	}
	// At the root only multipart/* is a container.
	raw := "Content-Type: application/x-y; boundary=c\r\n\r\n" + inner + "\r\n"
	if leaves, _ := stdLeaves([]byte(raw)); len(leaves) != 1 || string(leaves[0].body) != inner+"\r\n" {
		t.Errorf("root: leaves %+v, want one of %q", leaves, inner+"\r\n")
	}
}

// The independent reading decodes quoted-printable as enmime does, bytes
// Go's reader refuses standing for themselves, so such a leaf is compared
// exactly.
func TestStdLeavesQuotedPrintable(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		"=00\x7f", "a=3Db=\r\nc", "soft=\nbreak", "a=zz", "a=4", "end=", "a= \r\nb", "\x01\x1b[0m", "=E9t\xe9", "cr\rin a line",
	} {
		raw := "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body
		leaves, _ := stdLeaves([]byte(raw))
		p := Parse([]byte(raw), Config{})
		if len(leaves) != 1 || !leaves[0].exact || len(p.Attachments) != 1 || !bytes.Equal(leaves[0].body, p.Attachments[0].Content) {
			t.Errorf("%q: leaves %+v; Parse gives attachments %+v", body, leaves, p.Attachments)
		}
	}
}

// fakeTB records failures instead of failing the test.
type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Errorf(string, ...any) { f.failed = true }
func (f *fakeTB) Logf(string, ...any)   {}
func (f *fakeTB) Helper()               {}
