// Package jsonstr writes a string as a JSON string literal, byte for byte as
// encoding/json does (HTML characters escaped, invalid UTF-8 replaced), for
// message bodies of up to megabytes: it looks at eight bytes at a time and
// jumps to the first one that needs an escape, where encoding/json looks up
// every byte in a table.
package jsonstr

import (
	"math/bits"
	"unicode/utf8"
)

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special marks the bytes of x (read little-endian) that need attention:
// below 0x20, at or above 0x80, or one of " \ < > &. Marks above the lowest
// may be false (a borrow carries into the next byte); the lowest is exact.
func special(x uint64) uint64 {
	m := x&highs | (x-0x20*ones)&^x
	v := x ^ '"'*ones
	m |= (v - ones) &^ v
	v = x ^ '\\'*ones
	m |= (v - ones) &^ v
	v = x ^ '<'*ones
	m |= (v - ones) &^ v
	v = x ^ '>'*ones
	m |= (v - ones) &^ v
	v = x ^ '&'*ones
	m |= (v - ones) &^ v
	return m & highs
}

// load8 reads s[i:i+8] as one little-endian word (the compiler makes it
// one load).
func load8[S ~string | ~[]byte](s S, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

const hex = "0123456789abcdef"

// Append appends s to dst as json.Marshal(string(s)) writes it, quotes
// included.
func Append[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	dst = AppendContent(dst, s)
	return append(dst, '"')
}

// AppendContent is Append without the quotes, for a string written in
// pieces: the pieces' contents, each between an opening and a closing quote
// the caller writes, are Append's as long as no piece ends inside a UTF-8
// sequence (a piece of 7-bit text never does).
func AppendContent[S ~string | ~[]byte](dst []byte, s S) []byte {
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			m := special(load8(s, i))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			if b == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				// A mail body's line ends: both escapes at once.
				dst = append(dst, `\r\n`...)
				i += 2
				start = i
				continue
			}
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		// Only the rune's bytes are converted, so a []byte costs no copy
		// of the rest.
		c, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			// Valid JSON, but not valid JavaScript: encoding/json escapes them.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(dst, s[start:]...)
}
