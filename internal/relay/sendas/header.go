package sendas

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"

	"golang.org/x/text/encoding/htmlindex"

	"github.com/postern/postern/internal/mailheader"
)

// MaxHeaderBytes bounds the header block Wrap reads into memory to rewrite
// From. The gateway stores no header over limits.max_header_bytes (1 MiB by
// default) plus its own Received field; a larger one is refused for good
// rather than sent with the device's From, which the provider would refuse.
const MaxHeaderBytes = 4 << 20

// errHeaderTooBig: the header block did not end within MaxHeaderBytes.
var errHeaderTooBig = fmt.Errorf("message header over %d bytes", MaxHeaderBytes)

// readHeader reads r up to and including the empty line that ends the
// header block (or to EOF when there is none). It returns the header block
// and a reader for the rest of the message: the bytes read past the header,
// then r. Line ends are read as crlf sends them (a run of CRs with an
// optional LF, or an LF), so the header found is the one the next hop sees.
func readHeader(r io.Reader) (header []byte, rest io.Reader, err error) {
	buf := make([]byte, 0, 8<<10)
	scan := 0 // start of the first line not yet known to be whole
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		eof := rerr == io.EOF
		if rerr != nil && !eof {
			return nil, nil, fmt.Errorf("read message: %w", rerr)
		}
		end, next, done := headerEnd(buf, scan, eof)
		if done && end > MaxHeaderBytes {
			return nil, nil, errHeaderTooBig
		}
		if done {
			return buf[:end:end], io.MultiReader(bytes.NewReader(buf[end:]), r), nil
		}
		scan = next
		if len(buf) > MaxHeaderBytes {
			return nil, nil, errHeaderTooBig
		}
	}
}

// headerEnd scans b from pos, the start of a line, for the empty line that
// ends the header. It returns the offset just past that line and done; or,
// when b may end inside the header, done false and where to scan again.
// At EOF the whole of b is header.
func headerEnd(b []byte, pos int, eof bool) (end, next int, done bool) {
	for pos < len(b) {
		i := bytes.IndexAny(b[pos:], "\r\n")
		if i < 0 {
			break
		}
		j, whole := lineEnd(b, pos+i, eof)
		if !whole {
			break
		}
		if i == 0 {
			return j, 0, true
		}
		pos = j
	}
	if eof {
		return len(b), 0, true
	}
	return 0, pos, false
}

// lineEnd returns the offset past the line end that starts at b[i] (a CR
// or LF) as crlf reads it, and whether it is whole: a CR run at the end of
// b could go on, or be followed by an LF, unless the input has ended.
func lineEnd(b []byte, i int, eof bool) (int, bool) {
	if b[i] == '\n' {
		return i + 1, true
	}
	for i < len(b) && b[i] == '\r' {
		i++
	}
	if i == len(b) {
		return i, eof
	}
	if b[i] == '\n' {
		i++
	}
	return i, true
}

// nextLine returns the offset past the line that starts at b[pos], its
// line end included (a whole b counts as ended).
func nextLine(b []byte, pos int) int {
	i := bytes.IndexAny(b[pos:], "\r\n")
	if i < 0 {
		return len(b)
	}
	end, _ := lineEnd(b, pos+i, true)
	return end
}

// field is one header field as stored: every line of it, each with its
// line end. name is "" for lines before the first field.
type field struct {
	name string
	raw  []byte
}

// splitHeader cuts a header into its fields and the rest, from the empty
// line that ends the header on. Fields are grouped as mailheader.Fields
// groups them: a line starts a field when it begins with a valid field
// name and a colon; any other line (folded, or one mailheader drops)
// belongs to the field before it.
func splitHeader(header []byte) (fields []field, rest []byte) {
	for pos := 0; pos < len(header); {
		start := pos
		pos = nextLine(header, pos)
		line := header[start:pos]
		if line[0] == '\r' || line[0] == '\n' {
			return fields, header[start:]
		}
		if name, ok := fieldName(line); ok || len(fields) == 0 {
			fields = append(fields, field{name: name, raw: line})
			continue
		}
		last := &fields[len(fields)-1]
		last.raw = header[start-len(last.raw) : pos]
	}
	return fields, nil
}

// fieldName returns the name of the field a line starts, if it starts one.
func fieldName(line []byte) (string, bool) {
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
		return "", false
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return "", false
	}
	name := string(bytes.TrimRight(line[:colon], " \t"))
	return name, mailheader.ValidName(name)
}

// value is a field's value as mailheader reads it: unfolded and trimmed.
// A bare CR, which crlf sends as a line end, reads as a space.
func (f field) value() string {
	raw := bytes.ReplaceAll(f.raw, []byte("\r"), []byte("\n"))
	if fs := mailheader.Fields(raw); len(fs) > 0 {
		return fs[0].Value
	}
	return ""
}

// eol is the line end a field's last line has, as LF or CRLF; "" if none.
func eol(raw []byte) string {
	switch {
	case bytes.HasSuffix(raw, []byte("\n")) && !bytes.HasSuffix(raw, []byte("\r\n")):
		return "\n"
	case bytes.HasSuffix(raw, []byte("\n")), bytes.HasSuffix(raw, []byte("\r")):
		return "\r\n"
	}
	return ""
}

// rewriteFrom returns header (a whole header block, its ending empty line
// included if it has one) with From set to mailbox, keeping the device's
// display name, and the device's From kept as original says: in Reply-To
// (added only when there is none) or in X-Original-From. A message
// without From gets one. Every other field stays as it is, byte for byte,
// and new lines end as the message's own do.
func rewriteFrom(header []byte, mailbox string, original string) []byte {
	fields, term := splitHeader(header)

	nl := ""
	fromAt, hasReplyTo := -1, false
	for i, f := range fields {
		switch {
		case strings.EqualFold(f.name, "From") && fromAt < 0:
			fromAt = i
		case strings.EqualFold(f.name, "Reply-To"):
			hasReplyTo = true
		}
	}
	if fromAt >= 0 {
		nl = eol(fields[fromAt].raw)
	}
	if nl == "" && len(term) > 0 {
		nl = eol(term[:nextLine(term, 0)])
	}
	if nl == "" {
		nl = "\r\n"
		if i := bytes.IndexAny(header, "\r\n"); i >= 0 && header[i] == '\n' {
			nl = "\n"
		}
	}

	out := make([]byte, 0, len(header)+len(mailbox)+128)
	if fromAt < 0 {
		for _, f := range fields {
			out = append(out, f.raw...)
		}
		if len(fields) > 0 && eol(fields[len(fields)-1].raw) == "" {
			out = append(out, nl...)
		}
		out = appendField(out, "From", (&mail.Address{Address: mailbox}).String(), nl)
		return append(out, term...)
	}
	devFrom := fields[fromAt].value()
	addrs, perr := addressParser.ParseList(devFrom)
	name := ""
	if perr == nil && len(addrs) > 0 {
		name = addrs[0].Name
	}
	for i, f := range fields {
		if strings.EqualFold(f.name, "From") {
			if i != fromAt {
				continue // a second From would be judged by the provider too
			}
			out = appendField(out, "From", (&mail.Address{Name: name, Address: mailbox}).String(), nl)
			switch {
			case original == OriginalHeader:
				if v := unstructured(devFrom); v != "" {
					out = appendField(out, "X-Original-From", v, nl)
				}
			case !hasReplyTo && perr == nil && len(addrs) > 0:
				list := make([]string, len(addrs))
				for j, a := range addrs {
					list[j] = a.String()
				}
				out = appendField(out, "Reply-To", strings.Join(list, ", "), nl)
			}
			continue
		}
		out = append(out, f.raw...)
		if i == len(fields)-1 && eol(f.raw) == "" {
			out = append(out, nl...)
		}
	}
	return append(out, term...)
}

// addressParser reads display names in any charset mail clients use.
var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: charsetReader}}

func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("charset %q: %w", charset, err)
	}
	return enc.NewDecoder().Reader(input), nil
}

// unstructured makes a field value safe to write as one field: control
// characters (CR and LF among them, which would start a new field) become
// spaces, and runs of white space one space.
func unstructured(v string) string {
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, v)
	return strings.Join(strings.Fields(v), " ")
}

// appendField writes "name: value" folded at spaces so lines stay within
// 78 characters where the value allows (RFC 5322 section 2.1.1). Folding
// only inserts a line end before a space (the field body may start with
// one), which unfolding removes, so the value reads the same; an encoded
// word or address is never split.
func appendField(out []byte, name, value, nl string) []byte {
	const width = 78
	line := name + ":"
	for _, w := range strings.Split(value, " ") {
		if len(line)+1+len(w) > width && strings.TrimSpace(line) != "" {
			out = append(append(out, line...), nl...)
			line = ""
		}
		line += " " + w
	}
	return append(append(out, line...), nl...)
}
