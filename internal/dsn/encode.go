package dsn

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/postern/postern/internal/crlf"
)

// maxLine is RFC 5322's hard limit on a line, CRLF excluded.
const maxLine = 998

// foldAt is where fields are folded when they can be (RFC 5322's 78).
const foldAt = 78

// maxAddr bounds an address (RFC 5321 allows 64 + 1 + 255 octets; this
// leaves room for UTF-8) so every field that holds one fits a line.
const maxAddr = 512

// maxFieldText caps remote texts copied into fields (diagnostics), so one
// verbose server cannot make a field unreadable.
const maxFieldText = 900

var statusRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isASCIIBytes(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// checkAddr rejects what could break a field or a header: empty, control
// characters, spaces, angle brackets or invalid UTF-8.
func checkAddr(what, a string) error {
	if a == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(a) > maxAddr {
		return fmt.Errorf("%s is %d bytes long", what, len(a))
	}
	if !utf8.ValidString(a) {
		return fmt.Errorf("%s %q is not valid UTF-8", what, a)
	}
	for _, r := range a {
		if r < 0x21 || r == 0x7f || r == '<' || r == '>' {
			return fmt.Errorf("%s %q has a character not allowed in an address", what, a)
		}
	}
	return nil
}

// cleanText turns untrusted text (a remote reply, a HELO name) into one
// field-safe line: controls become spaces, runs of white space one space,
// non-ASCII '?', and it is cut at max bytes.
func cleanText(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			r = '?'
		case r < 0x20 || r == 0x7f || r == ' ':
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
			continue
		case r >= utf8.RuneSelf:
			r = '?'
		}
		space = false
		b.WriteRune(r)
	}
	out := strings.TrimRight(b.String(), " ")
	if len(out) > max {
		out = out[:max-3] + "..."
	}
	return out
}

// writeField writes "Name: value" CRLF, folding at spaces so lines stay
// within 78 octets where a space allows it. value must be one line with
// single spaces (cleanText's output), so unfolding gives it back exactly.
func writeField(b *bytes.Buffer, name, value string) {
	line := name + ":"
	if value != "" {
		line += " " + value
	}
	for len(line) > foldAt {
		// Fold at the last space that keeps the line within foldAt, or at
		// the first space after it; never inside the field name.
		cut := strings.LastIndexByte(line[:foldAt+1], ' ')
		if cut <= len(name)+1 {
			next := strings.IndexByte(line[foldAt:], ' ')
			if next < 0 {
				break
			}
			cut = foldAt + next
		}
		b.WriteString(line[:cut])
		b.WriteString("\r\n")
		line = line[cut:] // keeps the space as the continuation's indent
	}
	b.WriteString(line)
	b.WriteString("\r\n")
}

// addressField renders an address for Final-Recipient or
// Original-Recipient: "rfc822; a@b" for ASCII, else "utf-8; ..." with the
// RFC 6533 encoding that fits the part: raw UTF-8 (utf-8-addr-unitext) in a
// message/global-delivery-status, \x{HH} escapes (utf-8-addr-xtext) in a
// message/delivery-status.
func addressField(addr string, global bool) string {
	if isASCII(addr) {
		return "rfc822; " + addr
	}
	return "utf-8; " + utf8Addr(addr, global)
}

// utf8Addr encodes addr per RFC 6533 section 3: QCHAR stays, and so does
// non-ASCII when unitext is allowed; everything else is \x{HEX}.
func utf8Addr(addr string, unitext bool) string {
	var b strings.Builder
	for _, r := range addr {
		qchar := r >= 0x21 && r <= 0x7e && r != '+' && r != '=' && r != '\\'
		if qchar || unitext && r >= utf8.RuneSelf {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, "\\x{%X}", r)
	}
	return b.String()
}

// splitORCPT splits a recorded ORCPT "type;address".
func splitORCPT(orcpt string) (typ, addr string, err error) {
	typ, addr, ok := strings.Cut(orcpt, ";")
	typ = strings.TrimSpace(typ)
	addr = strings.TrimSpace(addr)
	if !ok || typ == "" || addr == "" {
		return "", "", errors.New("not type;address")
	}
	return typ, addr, nil
}

// headerSection returns the header section of a message: everything up to
// and including the line end before the first empty line, or all of it
// when there is no empty line.
func headerSection(msg []byte) []byte {
	for i := 0; i < len(msg); {
		j := bytes.IndexByte(msg[i:], '\n')
		if j < 0 {
			return msg
		}
		line := msg[i : i+j]
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return msg[:i]
		}
		i += j + 1
	}
	return msg
}

// toCRLF gives b CRLF line ends only, by the one rule every outbound path
// uses (package crlf: a bare LF, a bare CR and a CR run before an LF each
// become one CRLF), ends it with a line end, and reports whether the result
// can travel as a 7bit or 8bit MIME body: no NUL, no line over 998 octets.
func toCRLF(b []byte) ([]byte, bool) {
	out := crlf.Append(make([]byte, 0, len(b)+len(b)/64+2), b)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\r', '\n')
	}
	if bytes.IndexByte(out, 0) >= 0 {
		return out, false
	}
	for line := range bytes.SplitSeq(out, []byte("\r\n")) {
		if len(line) > maxLine {
			return out, false
		}
	}
	return out, true
}
