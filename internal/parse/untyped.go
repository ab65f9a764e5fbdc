package parse

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
	"github.com/jhillyerd/enmime/v2/mediatype"
)

// Untyped parts: enmime places a part's body by its media type, and two
// kinds of part get no place at all. A multipart part without a boundary is
// read as one leaf (MultipartWOBoundaryAsSinglePart), but enmime lists no
// multipart part among bodies or attachments, so its body would vanish. A
// Content-Type that does not parse fails the part (skipped) or, at the root,
// the whole body. The stage keeps both: parseMediaType lets enmime read such
// a part as one without a type, and the parse places every untyped leaf
// itself, as text when its bytes look like text (RFC 2045 section 5.2 takes
// an invalid Content-Type as text/plain), else as an attachment, with an
// error naming the problem.

// parseMediaType is the media type parser enmime runs with: enmime's own
// tolerant one, except that a value even that cannot parse gives no media
// type rather than an error, as enmime itself does for a value without a
// type (such as "@@@"). Content-Disposition goes through it too, where an
// error and no disposition already meant the same to enmime.
func parseMediaType(v string) (mtype string, params map[string]string, invalid []string, err error) {
	mtype, params, invalid, err = mediatype.Parse(v)
	if err != nil {
		return "", map[string]string{}, nil, nil
	}
	// enmime lists malformed parameters in a map's order, and each becomes
	// a warning: put them in the order they come in v, so a message parses
	// to the same bytes every time (a retried parse writes parsed.json again).
	lower := strings.ToLower(v)
	slices.SortStableFunc(invalid, func(a, b string) int {
		return cmp.Or(cmp.Compare(strings.Index(lower, a), strings.Index(lower, b)), strings.Compare(a, b))
	})
	return mtype, params, invalid, nil
}

var _ enmime.CustomParseMediaType = parseMediaType

// asciiCharsets are the charsets that map every 7-bit byte to itself.
// enmime decodes them through a charset decoder (us-ascii through
// windows-1252), which costs a copy and a table lookup per byte.
var asciiCharsets = map[string]bool{
	"us-ascii": true, "ascii": true, "iso-8859-1": true, "latin1": true, "windows-1252": true, "cp1252": true,
	"iso-8859-15": true, "iso-8859-2": true, "windows-1250": true,
}

// parseMediaTypeASCII is parseMediaType for a message passThroughASCII
// vouches for: there, decoding with an ASCII-compatible charset cannot
// change a byte, so the part is read as UTF-8, which enmime passes through.
func parseMediaTypeASCII(v string) (mtype string, params map[string]string, invalid []string, err error) {
	mtype, params, invalid, err = parseMediaType(v)
	if cs, ok := params["charset"]; ok && asciiCharsets[strings.ToLower(strings.TrimSpace(cs))] {
		params["charset"] = "utf-8"
	}
	return mtype, params, invalid, err
}

// passThroughASCII reports whether every part of raw decodes to 7-bit
// bytes: raw itself is 7-bit, and no part can be base64 or quoted-printable
// (the only transfer encodings enmime decodes, which could make 8-bit bytes
// from 7-bit text). The test is loose on purpose: the word anywhere, even
// in a body, keeps the usual path.
func passThroughASCII(raw []byte) bool {
	if !isASCII(raw) {
		return false
	}
	if singlePart(raw) {
		// One part: only its own header can name an encoding.
		raw = splitHeader(raw)
	}
	return !containsFold(raw, "base64") && !containsFold(raw, "quoted-printable")
}

// isASCII reports whether every byte of b is below 0x80, eight at a time.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// untypedProblem says why a leaf part with Content-Type value ct has no
// place among bodies and attachments, or returns "" when it has one. No
// Content-Type at all is not a problem (enmime applies the defaults).
func untypedProblem(ct string) (errName, detail string) {
	if strings.TrimSpace(ct) == "" {
		return "", ""
	}
	mtype, params, _, err := mediatype.Parse(ct)
	switch {
	case err != nil:
		return enmime.ErrorMalformedHeader, fmt.Sprintf("Content-Type %q does not parse (%v)", ct, err)
	case mtype == "":
		return enmime.ErrorMalformedHeader, fmt.Sprintf("Content-Type %q names no media type", ct)
	case !strings.Contains(mtype, "/"):
		return enmime.ErrorMalformedHeader, fmt.Sprintf("Content-Type %q is not type/subtype", ct)
	case strings.HasPrefix(strings.ToLower(mtype), "multipart/") && params["boundary"] == "":
		return enmime.ErrorMissingBoundary, fmt.Sprintf("%s part without a boundary parameter", strings.ToLower(mtype))
	}
	return "", ""
}

// readAsContainer reports whether enmime read part as a multipart container
// (containerType). A container without children held no delimiter, and its
// body is lost.
func readAsContainer(part *enmime.Part) bool {
	return containerType(part.ContentType, part.Boundary, part.Parent == nil)
}

// containerType is enmime's rule (ReadParts, parseParts) for which parts it
// reads as multipart containers, given a part's media type and boundary
// parameter as parsed: the root when it is multipart/* with a boundary, a
// nested part when it has a boundary and is not text/plain or text/html,
// whatever its type. Every reading of the structure (readAsContainer,
// boundaryOf, the tests' independent walk) follows it.
func containerType(mtype, boundary string, root bool) bool {
	if boundary == "" {
		return false
	}
	if root {
		return strings.HasPrefix(mtype, "multipart/")
	}
	return mtype != "text/plain" && mtype != "text/html"
}

// looksLikeText reports whether b reads as UTF-8 text: valid UTF-8 and none
// of the control bytes that http.DetectContentType takes for binary. A part
// that does not is kept byte for byte as an attachment instead.
func looksLikeText(b []byte) bool {
	for _, c := range b {
		if c <= 0x08 || c == 0x0b || 0x0e <= c && c <= 0x1a || 0x1c <= c && c <= 0x1f {
			return false
		}
	}
	return utf8.Valid(b)
}

// untypedLeaf is a leaf part placed by the stage rather than by enmime.
type untypedLeaf struct {
	part   *enmime.Part
	asText bool
}

// placeUntyped finds the untyped leaves of env's tree, in tree order, decides
// for each whether it is text, and reports each in p. text is env.Text with
// the untyped text parts added (joined as enmime joins text parts); cut says
// one of them was cut in the skeleton. With a skeleton, a part left out of
// it entirely (nothing to look at) is an attachment.
func placeUntyped(env *enmime.Envelope, sk *skeleton, add func(name, detail string)) (leaves map[*enmime.Part]bool, text string, cut bool) {
	text = env.Text
	if env.Root == nil {
		return nil, text, false
	}
	leaves = map[*enmime.Part]bool{}
	for _, part := range env.Root.DepthMatchAll(func(part *enmime.Part) bool { return part.FirstChild == nil }) {
		if readAsContainer(part) {
			// Its delimiter never came: enmime took the body for a
			// preamble, which it does not keep. Say so at least.
			what := part.ContentType + " part"
			if !strings.HasPrefix(part.ContentType, "multipart/") {
				what = fmt.Sprintf("%s part with a boundary parameter, read as a multipart,", part.ContentType)
			}
			add(enmime.ErrorMissingBoundary, fmt.Sprintf("part %s: %s holds no part delimited by %q; its body is not delivered",
				part.PartID, what, "--"+part.Boundary))
			continue
		}
		name, detail := untypedProblem(part.Header.Get("Content-Type"))
		if name == "" {
			continue
		}
		partial := sk != nil && markOf(part, sk.marked) >= 0
		asText := looksLikeText(part.Content) && !(partial && len(part.Content) == 0)
		leaves[part] = asText
		where := "an attachment"
		if asText {
			where = "text"
			if len(part.Content) > 0 {
				if text != "" {
					text += "\n--\n"
				}
				text += string(part.Content)
			}
			cut = cut || partial
		}
		add(name, fmt.Sprintf("part %s: %s; its body is given as %s", part.PartID, detail, where))
	}
	return leaves, text, cut
}
