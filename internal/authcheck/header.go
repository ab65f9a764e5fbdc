package authcheck

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// maxHeader bounds the header read into memory. The gateway's own limits
// are far below it; it only keeps a caller's mistake from costing memory.
const maxHeader = 1 << 20

var errHeaderTooLarge = errors.New("message header larger than 1 MiB")

// headerVerdict is the verdict when the header could not be read: the
// message's fault when it is too large, else the reader's, which a retry may
// not meet.
func headerVerdict(err error) Verdict {
	if errors.Is(err, errHeaderTooLarge) {
		return PermError
	}
	return TempError
}

// field is one header field, unfolded (CRLF before WSP removed, as RFC 5322
// section 2.2.3 says), its value stripped of surrounding white space.
type field struct {
	name, value string
}

type header []field

// values returns the values of the fields named name, in header order.
func (h header) values(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

// readHeader reads the header of a message and returns its fields and a
// stream of the whole message (the header read again from memory, then the
// rest of r), for DKIM, which reads both. The stream never returns an error
// but io.EOF (a reader that fails would leave go-msgauth's parallel
// verifiers waiting on their pipes forever); the error is kept in it.
func readHeader(r io.Reader) (header, *stream, error) {
	if r == nil {
		r = bytes.NewReader(nil)
	}
	br := bufio.NewReader(r)
	var raw []byte
	start := 0 // offset in raw of the line being read
	for {
		chunk, err := br.ReadSlice('\n')
		raw = append(raw, chunk...)
		if len(raw) > maxHeader {
			return parseFields(raw[:start]), nil, errHeaderTooLarge
		}
		if err == bufio.ErrBufferFull {
			continue // a long line: keep reading it
		}
		if err == io.EOF {
			start = len(raw) // a message that is only a header
			break
		}
		if err != nil {
			return parseFields(raw[:start]), nil, err
		}
		if line := raw[start:]; string(line) == "\r\n" || string(line) == "\n" {
			break
		}
		start = len(raw)
	}
	s := &stream{r: io.MultiReader(bytes.NewReader(raw), br)}
	return parseFields(raw[:start]), s, nil
}

func parseFields(raw []byte) header {
	var h header
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(h) > 0 {
			h[len(h)-1].value += line
			continue
		}
		// A line with no colon is kept as a field of its own, as
		// go-msgauth's dkim keeps it, so continuation lines attach to the
		// same field in both.
		name, value, _ := strings.Cut(line, ":")
		// Trimmed both sides, as go-msgauth's dkim does, so both count
		// the same DKIM-Signature fields.
		h = append(h, field{name: strings.TrimSpace(name), value: value})
	}
	for i := range h {
		h[i].value = strings.Trim(h[i].value, " \t")
	}
	return h
}

// stream reads a message for DKIM, turning a read error into io.EOF and
// keeping it.
type stream struct {
	r   io.Reader
	err error
}

func (s *stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, io.EOF
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
		err = io.EOF
	}
	return n, err
}

// tags parses a tag list (RFC 6376 section 3.2), as DKIM-Signature and
// ARC-Seal use, dropping the white space that folding leaves in values.
func tags(v string) map[string]string {
	out := make(map[string]string)
	for _, kv := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = strings.Join(strings.Fields(val), "")
	}
	return out
}
