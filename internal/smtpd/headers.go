package smtpd

import (
	"bytes"
	"errors"
	"io"
)

var (
	errHeaderTooBig = errors.New("header block exceeds limit")
	errLoop         = errors.New("too many Received headers")
	errBodyTooBig   = errors.New("message exceeds the identity's size limit")
	// errNoRouteForMessage: the header leaves no recipient routed.
	errNoRouteForMessage = errors.New("no route takes the message")
)

// headerScanner passes DATA through while checking, as it streams, the size
// of the header block, the number of Received: hops (a mail loop otherwise
// circles for ever) and a per-identity size limit below the server's.
type headerScanner struct {
	r           io.Reader
	maxHeader   int64
	maxReceived int
	limit       int64 // 0: none beyond go-smtp's own

	// onHeader, when set, is given the header block (without the empty
	// line that ends it) as soon as it is complete; an error it returns
	// ends the upload.
	onHeader func(block []byte) error
	header   []byte

	n        int64 // bytes passed
	inBody   bool
	bodyAt   int    // where in the current read the body began
	line     []byte // current header line start (bounded)
	received int
	atStart  bool // at the start of a line
	started  bool
}

func (h *headerScanner) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		if !h.started {
			h.started, h.atStart = true, true
		}
		if !h.inBody {
			if serr := h.scan(p[:n]); serr != nil {
				return 0, serr
			}
			if h.onHeader != nil {
				if !h.inBody {
					h.header = append(h.header, p[:n]...)
				} else {
					h.header = append(h.header, p[:h.bodyAt]...)
					if herr := h.onHeader(h.header); herr != nil {
						return 0, herr
					}
				}
			}
		}
		h.n += int64(n)
		if h.limit > 0 && h.n > h.limit {
			return 0, errBodyTooBig
		}
	}
	if err == io.EOF && !h.inBody && h.onHeader != nil {
		// A message without a body: all of it is header.
		h.inBody = true
		if herr := h.onHeader(h.header); herr != nil {
			return n, herr
		}
	}
	return n, err
}

var receivedPrefix = []byte("received:")

func (h *headerScanner) scan(b []byte) error {
	for i, c := range b {
		if h.inBody {
			return nil
		}
		if h.maxHeader > 0 && h.n+int64(i) >= h.maxHeader {
			return errHeaderTooBig
		}
		if h.atStart {
			h.atStart = false
			if c == '\r' || c == '\n' {
				// An empty line ends the header block.
				h.inBody, h.bodyAt = true, i
				return nil
			}
			h.line = h.line[:0]
		}
		if len(h.line) < len(receivedPrefix) {
			h.line = append(h.line, c)
			if len(h.line) == len(receivedPrefix) && bytes.EqualFold(h.line, receivedPrefix) {
				h.received++
				if h.maxReceived > 0 && h.received > h.maxReceived {
					return errLoop
				}
			}
		}
		if c == '\n' {
			h.atStart = true
		}
	}
	return nil
}
