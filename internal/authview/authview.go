// Package authview makes the copy of a message that leaves Postern: its
// Authentication-Results field first, and no field claiming to be ours
// that the message came with. The stored message never changes.
package authview

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// MaxHeader is the most header Reader looks through for forged fields;
// a message whose header is longer goes out with its header unfiltered
// (the gateway refuses headers over limits.max_header_bytes, 1 MiB by
// default, so only a raised limit reaches this).
const MaxHeader = 4 << 20

const fieldName = "Authentication-Results"

// Field is the Authentication-Results header field for value (the
// parse stage's, carried in jobs): name, value and CRLF; "" for "".
func Field(value string) string {
	if value == "" {
		return ""
	}
	return fieldName + ": " + value + "\r\n"
}

// Reader returns raw as it goes out: the field for value first, then raw
// without the Authentication-Results fields whose authserv-id is value's.
// RFC 8601 section 5: a receiver must not pass on such fields from the
// sender, who can write anything into them (a dmarc=pass below ours fools
// a reader that takes any field naming our host). Fields of other hosts
// stay. For value "" raw is returned as it is: no check ran, so nothing
// is claimed for us.
func Reader(value string, raw io.Reader) io.Reader {
	if value == "" {
		return raw
	}
	br := bufio.NewReader(raw)
	var kept bytes.Buffer
	kept.WriteString(Field(value))
	id := authservID(value)
	var field []byte // the field being read, with its continuation lines
	keep := func() {
		if field != nil && !forged(field, id) {
			kept.Write(field)
		}
		field = nil
	}
	read := 0
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long line: take it whole.
			buf := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				buf = append(buf, line...)
			}
			line = buf
		} else {
			line = append([]byte(nil), line...)
		}
		read += len(line)
		switch {
		case err != nil || read > MaxHeader:
			// The end of the message, a read error (the reader returns it
			// where it happened) or too long a header: what was read goes
			// out as it was.
			keep()
			kept.Write(line)
			if err != nil && err != io.EOF {
				return io.MultiReader(&kept, errReader{err})
			}
			return io.MultiReader(&kept, br)
		case string(line) == "\r\n" || string(line) == "\n":
			keep()
			kept.Write(line)
			return io.MultiReader(&kept, br)
		case line[0] == ' ' || line[0] == '\t':
			field = append(field, line...)
		default:
			keep()
			field = line
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// forged reports whether field is an Authentication-Results field naming
// id as its authserv-id.
func forged(field []byte, id string) bool {
	name, value, ok := strings.Cut(string(field), ":")
	if !ok || !strings.EqualFold(strings.TrimRight(name, " \t"), fieldName) {
		return false
	}
	return authservID(value) == id
}

// authservID is the authserv-id a field value starts with (RFC 8601
// section 2.2), lower-cased: the token before the first ';' or space,
// after any comment.
func authservID(value string) string {
	v := strings.TrimLeft(value, " \t\r\n")
	for strings.HasPrefix(v, "(") {
		end := strings.IndexByte(v, ')')
		if end < 0 {
			return ""
		}
		v = strings.TrimLeft(v[end+1:], " \t\r\n")
	}
	if strings.HasPrefix(v, `"`) {
		q, _, _ := strings.Cut(v[1:], `"`)
		return strings.ToLower(q) // a quoted-string authserv-id
	}
	end := strings.IndexAny(v, "; \t\r\n(")
	if end >= 0 {
		v = v[:end]
	}
	return strings.ToLower(v)
}
