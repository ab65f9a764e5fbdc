// Package crlf turns every line end in a message into CRLF, for everything
// Postern writes outward: SMTP DATA, failure notices, .eml files.
//
// RFC 5321 section 2.3.8 forbids sending a bare CR or a bare LF. A stored
// message may hold both, and a next hop that ends DATA on "\r.\r" or
// "\n.\n" would split such a message in two (outbound SMTP smuggling); once
// every line end is CRLF, the SMTP client's dot-stuffing covers every line.
//
// # The rule
//
// A line end is one of:
//
//   - a run of one or more CRs, together with the LF right after it if
//     there is one: "\r\n", "\r\r\n", "\r" and "\r\r" are each one line end;
//   - an LF that no CR comes right before.
//
// Each line end becomes one CRLF; every other byte is kept. So CRLF is kept
// as it is, a bare LF and a bare CR each become CRLF, "\r\r\n" becomes one
// CRLF, and "\n\n" stays two line ends (an empty line). A message with no
// bare CR or LF passes unchanged, and one that does not end with a line end
// gets none added.
//
// Why a CR run is one line end: "\r\r\n" is what a CRLF text becomes when a
// naive LF-to-CRLF conversion is applied to it again, and every reader that
// splits lines on LF (Postern's own parse stage among them) sees one line
// end there; reading each CR as a line end of its own would insert empty
// lines, and an empty line in the header section ends the header, turning
// the fields after it into body. Compared with reading lines at LF, the
// only line ends this rule adds are the ones bare CRs force: one per run.
package crlf

import (
	"bytes"
	"io"
	"slices"
)

// converter holds the state that crosses chunk boundaries.
type converter struct {
	// cr: the last byte seen was a CR. Its CRLF is already written, so
	// further CRs and one LF right after them belong to it.
	cr bool
	// lf: the LF of a CRLF did not fit the destination and is owed.
	lf bool
}

// convert converts src into dst, as much as fits, and reports how many
// bytes it wrote and how many it consumed. It stops only when dst is full
// or src is used up.
func (c *converter) convert(dst, src []byte) (nDst, nSrc int) {
	if c.lf {
		if len(dst) == 0 {
			return 0, 0
		}
		dst[0] = '\n'
		nDst, c.lf = 1, false
	}
	// Positions of the next CR and LF in src; len(src) when there is none.
	// Each is searched for again only once i has passed it, so src is
	// scanned at most once per byte value, with bytes.IndexByte's speed.
	nextCR, nextLF := -1, -1
	i := 0
	for i < len(src) && nDst < len(dst) {
		if c.cr {
			// Swallow the rest of a CR run and the LF that ends it.
			if b := src[i]; b == '\r' || b == '\n' {
				c.cr = b == '\r'
				i++
				continue
			}
			c.cr = false
		}
		if nextCR < i {
			nextCR = indexByte(src, i, '\r')
		}
		if nextLF < i {
			nextLF = indexByte(src, i, '\n')
		}
		end := min(nextCR, nextLF)
		m := copy(dst[nDst:], src[i:end])
		nDst += m
		i += m
		if i == len(src) || nDst == len(dst) {
			break
		}
		// src[i] is a CR or a bare LF: one line end.
		c.cr = src[i] == '\r'
		i++
		if nDst+2 <= len(dst) {
			dst[nDst], dst[nDst+1] = '\r', '\n'
			nDst += 2
		} else {
			dst[nDst] = '\r'
			nDst++
			c.lf = true
		}
	}
	return nDst, i
}

func indexByte(src []byte, from int, b byte) int {
	if k := bytes.IndexByte(src[from:], b); k >= 0 {
		return from + k
	}
	return len(src)
}

// bufSize is the Reader's input buffer: large enough that a copy of a
// message goes in few reads, small enough to keep per message.
const bufSize = 32 << 10

// Reader converts the line ends of what it reads from its source (see the
// package comment). It holds one 32 KiB buffer, whatever the message size.
// It makes no errors of its own: its source's error, io.EOF included, is
// returned as it is once the bytes read before it have been returned.
type Reader struct {
	src      io.Reader
	buf      []byte
	off, end int // buf[off:end] is read but not yet converted
	err      error
	c        converter
}

// NewReader returns a Reader that converts r.
func NewReader(r io.Reader) *Reader {
	return &Reader{src: r}
}

// Read fills p with converted bytes.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if r.off < r.end || r.c.lf {
			n, m := r.c.convert(p, r.buf[r.off:r.end])
			r.off += m
			if n > 0 {
				return n, nil
			}
			// Only a swallowed CR run or LF gave nothing: read on.
		}
		if r.err != nil {
			return 0, r.err
		}
		if r.buf == nil {
			r.buf = make([]byte, bufSize)
		}
		n, err := r.src.Read(r.buf)
		r.off, r.end, r.err = 0, n, err
		if n == 0 && err == nil {
			// A source may return nothing without an error; returning the
			// same keeps io.Reader's contract and never spins.
			return 0, nil
		}
	}
}

// Append appends the conversion of b to dst, as if b were a whole message.
func Append(dst, b []byte) []byte {
	var c converter
	dst = slices.Grow(dst, len(b)+len(b)/32+8)
	for {
		n, m := c.convert(dst[len(dst):cap(dst)], b)
		dst = dst[:len(dst)+n]
		b = b[m:]
		if len(b) == 0 && !c.lf {
			return dst
		}
		dst = slices.Grow(dst, len(b)+len(b)/4+8)
	}
}
