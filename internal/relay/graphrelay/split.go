package graphrelay

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
	"slices"
	"strings"

	"github.com/postern/postern/internal/relay"
)

// maxDepth bounds the multipart nesting walked for attachments.
const maxDepth = 16

// plan is what the draft path sends: the MIME the draft is made from and
// the attachment parts cut out of it.
type plan struct {
	mime []byte
	atts []attachment
}

// attachment is one leaf part cut out of the message: its metadata for
// Graph and its content as stored (transfer-encoded), decoded on demand.
type attachment struct {
	name, contentType, contentID string
	inline                       bool
	cte                          string // lower case; "" is 7bit
	encoded                      []byte // the part's body, a slice of the message
	size                         int    // decoded bytes
}

// open decodes the content as it is read.
func (a *attachment) open() io.Reader {
	r := bytes.NewReader(a.encoded)
	switch a.cte {
	case "base64":
		// Line ends and stray spaces are not base64; Graph wants the bytes.
		return base64.NewDecoder(base64.StdEncoding, &alphabetOnly{r: r})
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

// leaf is a non-multipart part located in the message body: cut is the
// byte range [start, end) that removes it with its delimiter line.
type leaf struct {
	start, end int
	att        attachment
	parent     *entity
}

// entity is a multipart body, to know which would be left with no part.
type entity struct {
	boundary string
	parts    int
	cut      int
}

// plan decides what the draft carries. A message that fits is the draft
// as it is; a larger one loses its largest attachment parts, in order of
// size, until the rest fits.
func (t *Transport) plan(head, body []byte) (*plan, relay.Reply, bool) {
	if len(head)+len(body) <= t.maxDraft {
		return &plan{mime: append(head[:len(head):len(head)], body...)}, relay.Reply{}, true
	}
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(head))).ReadMIMEHeader()
	if err != nil && len(hdr) == 0 {
		return nil, relay.Reply{Status: "5.6.0", Type: relay.DiagLocal, Text: "the message header cannot be read to find its attachments"}, false
	}
	var leaves []*leaf
	mt, params, _ := mime.ParseMediaType(hdr.Get("Content-Type"))
	if splittable(mt) && params["boundary"] != "" {
		leaves = walk(body, 0, params["boundary"], 1)
	}
	slices.SortStableFunc(leaves, func(a, b *leaf) int { return (b.end - b.start) - (a.end - a.start) })
	size := len(head) + len(body)
	var cut []*leaf
	for _, l := range leaves {
		if size <= t.maxDraft {
			break
		}
		cut = append(cut, l)
		size -= l.end - l.start
		if l.parent.cut++; l.parent.cut == l.parent.parts {
			size += len(placeholder(l.parent.boundary))
		}
	}
	if size > t.maxDraft {
		return nil, relay.Reply{Status: "5.3.4", Type: relay.DiagLocal,
			Text: fmt.Sprintf("message without its attachment parts still exceeds the %d bytes (3 MiB) Microsoft Graph takes for a draft's MIME; only attachment parts of a multipart message, not signed or encrypted, can be uploaded apart", t.maxDraft)}, false
	}
	slices.SortFunc(cut, func(a, b *leaf) int { return a.start - b.start })
	out := make([]byte, 0, size+64)
	out = append(out, head...)
	at := 0
	p := &plan{}
	for _, l := range cut {
		out = append(out, body[at:l.start]...)
		if l.parent.cut == l.parent.parts {
			// A multipart with no part left is not MIME; keep an empty
			// text part in the place of its last attachment.
			out = append(out, placeholder(l.parent.boundary)...)
			l.parent.cut = -1
		}
		at = l.end
		p.atts = append(p.atts, l.att)
	}
	p.mime = append(out, body[at:]...)
	return p, relay.Reply{}, true
}

// splittable says whether parts may be cut out of a multipart of type mt.
// Not out of a signed or encrypted one: the signature covers the bytes
// as stored, and a cut would deliver it broken rather than refused.
func splittable(mt string) bool {
	return strings.HasPrefix(mt, "multipart/") && mt != "multipart/signed" && mt != "multipart/encrypted"
}

// placeholder is an empty text part, with its delimiter line, for a
// multipart whose every part was cut.
func placeholder(boundary string) string {
	return "--" + boundary + "\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\r\n"
}

// walk returns the attachment leaves of the multipart body b (at offset
// off in the message body) with the given boundary. The parts are found
// by mime/multipart; their byte ranges are those of its delimiter lines.
// Where the two disagree, nothing under b is cut.
func walk(b []byte, off int, boundary string, depth int) []*leaf {
	if depth > maxDepth {
		return nil
	}
	var headers []textproto.MIMEHeader
	mr := multipart.NewReader(bytes.NewReader(b), boundary)
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil
		}
		headers = append(headers, p.Header)
	}
	delims := delimiters(b, boundary)
	if len(delims) != len(headers)+1 || len(headers) == 0 {
		return nil
	}
	e := &entity{boundary: boundary, parts: len(headers)}
	var leaves []*leaf
	for i, h := range headers {
		start, end := delims[i], delims[i+1]
		// The part runs from after its delimiter line to the CRLF that
		// belongs to the next delimiter.
		nl := bytes.Index(b[start:end], []byte("\r\n"))
		if nl < 0 {
			continue
		}
		partStart := start + nl + 2
		partEnd := max(end-2, partStart)
		part := b[partStart:partEnd]
		bodyAt := 0
		if !bytes.HasPrefix(part, []byte("\r\n")) {
			i := bytes.Index(part, []byte("\r\n\r\n"))
			if i < 0 {
				continue
			}
			bodyAt = i + 4
		} else {
			bodyAt = 2
		}
		mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
		if strings.HasPrefix(mt, "multipart/") {
			if splittable(mt) && params["boundary"] != "" {
				leaves = append(leaves, walk(part[bodyAt:], off+partStart+bodyAt, params["boundary"], depth+1)...)
			}
			continue
		}
		a, ok := describe(h, mt, params)
		if !ok {
			continue
		}
		a.encoded = part[bodyAt:]
		n, err := io.Copy(io.Discard, a.open())
		if err != nil {
			continue // undecodable content stays in the MIME, as stored
		}
		a.size = int(n)
		leaves = append(leaves, &leaf{start: off + start, end: off + end, att: a, parent: e})
	}
	return leaves
}

// delimiters returns the offsets in b of the delimiter lines of boundary
// (RFC 2046: "--" boundary at the start of a line, optional white space),
// the close delimiter last. It stops at the close delimiter.
func delimiters(b []byte, boundary string) []int {
	dash := []byte("--" + boundary)
	var at []int
	for i := 0; i < len(b); {
		if bytes.HasPrefix(b[i:], dash) {
			rest := b[i+len(dash):]
			closing := bytes.HasPrefix(rest, []byte("--"))
			if closing {
				rest = rest[2:]
			}
			line := rest
			if j := bytes.Index(rest, []byte("\r\n")); j >= 0 {
				line = rest[:j]
			}
			if len(bytes.Trim(line, " \t")) == 0 {
				at = append(at, i)
				if closing {
					return at
				}
			}
		}
		j := bytes.Index(b[i:], []byte("\r\n"))
		if j < 0 {
			break
		}
		i += j + 2
	}
	return at
}

// describe says whether a leaf is an attachment to cut, and how Graph
// should name it. Text parts without a file name or Content-ID are the
// message's body and stay in the MIME.
func describe(h textproto.MIMEHeader, mt string, params map[string]string) (attachment, bool) {
	disp, dparams, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	var dec mime.WordDecoder
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	if n, err := dec.DecodeHeader(name); err == nil {
		name = n
	}
	cid := strings.Trim(strings.TrimSpace(h.Get("Content-Id")), "<>")
	if (mt == "" || strings.HasPrefix(mt, "text/")) && disp != "attachment" && name == "" && cid == "" {
		return attachment{}, false
	}
	cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	switch cte {
	case "", "7bit", "8bit", "binary", "base64", "quoted-printable":
	default:
		return attachment{}, false // an encoding Graph could not be given decoded
	}
	if mt == "" {
		mt = "text/plain"
	}
	ct := mt
	if cs := params["charset"]; cs != "" {
		ct = mime.FormatMediaType(mt, map[string]string{"charset": cs})
	}
	if name == "" {
		name = "attachment"
	}
	return attachment{name: name, contentType: ct, contentID: cid, inline: disp == "inline", cte: cte}, true
}

// alphabetOnly passes the base64 alphabet and padding, dropping line ends
// and the white space some senders leave at line ends.
type alphabetOnly struct{ r io.Reader }

func (a *alphabetOnly) Read(p []byte) (int, error) {
	for {
		n, err := a.r.Read(p)
		kept := 0
		for _, c := range p[:n] {
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
				p[kept] = c
				kept++
			}
		}
		if kept > 0 || err != nil {
			return kept, err
		}
	}
}
