package parse

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"

	"github.com/postern/postern/internal/readerr"
)

// The second pass of the large-message path decodes a part's transfer
// encoding as a stream, as leniently as enmime does for a part it holds:
// base64 skips white space, padding and stray bytes (a stray byte is
// reported), and bytes that still do not decode end the part with an error
// rather than failing the job. Read errors of the stored message itself stay
// errors, so a store failure is retried.

// maxStrayReports bounds the stray-byte warnings of one part.
const maxStrayReports = 10

// partDecoder decodes one part's body.
type partDecoder struct {
	src       *readerr.Reader // the encoded bytes; keeps their read error apart
	dec       io.Reader
	b64       *base64Filter
	decodeErr error // the first decode error; the part ends there
}

func newPartDecoder(body io.Reader, cte string) *partDecoder {
	d := &partDecoder{src: &readerr.Reader{R: body}}
	switch cte {
	case "base64":
		d.b64 = &base64Filter{r: d.src}
		d.dec = &base64Stream{r: d.b64}
	case "quoted-printable":
		d.dec = quotedprintable.NewReader(d.src)
	default:
		d.dec = d.src // 7bit, 8bit, binary, or unknown (enmime keeps it raw too)
	}
	return d
}

func (d *partDecoder) Read(p []byte) (int, error) {
	if d.decodeErr != nil {
		return 0, io.EOF
	}
	n, err := d.dec.Read(p)
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return n, err
	case d.src.Err != nil:
		return n, d.src.Err // the store's error, not the encoding's
	default:
		d.decodeErr = err
		return n, io.EOF
	}
}

// problems lists what went wrong in decoding, as enmime names it.
func (d *partDecoder) problems() []error {
	var out []error
	if d.b64 != nil {
		for _, c := range d.b64.stray {
			out = append(out, fmt.Errorf("unexpected %q in base64 stream", c))
		}
		if d.b64.extra > 0 {
			out = append(out, fmt.Errorf("%d more unexpected bytes in base64 stream", d.b64.extra))
		}
	}
	return out
}

// base64Filter passes on the base64 alphabet only. White space and '=' are
// dropped silently (the decoder runs without padding, as enmime's does);
// other bytes are dropped and kept for the report (first ones only).
type base64Filter struct {
	r     io.Reader
	buf   [4096]byte
	stray []byte
	extra int
}

func (f *base64Filter) Read(p []byte) (int, error) {
	for {
		m, err := f.r.Read(f.buf[:min(len(p), len(f.buf))])
		n := 0
		for _, c := range f.buf[:m] {
			switch b64Class[c] {
			case b64Alphabet:
				p[n] = c
				n++
			case b64Skip:
			default:
				if len(f.stray) < maxStrayReports {
					f.stray = append(f.stray, c)
				} else {
					f.extra++
				}
			}
		}
		// A read of nothing but white space must not look like the end.
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// base64Stream decodes what base64Filter passes on (the alphabet alone,
// no padding) with the standard library's decoder, whole quanta at a time,
// as base64.NewDecoder(base64.RawStdEncoding, ...) does, to the same bytes
// and errors; NewDecoder would scan the filtered stream for newlines once
// more, a byte at a time (a third of the CPU of decoding a 1 MiB PDF).
type base64Stream struct {
	r    io.Reader
	in   [4096]byte
	nin  int
	obuf [4096 / 4 * 3]byte
	out  []byte // decoded, not yet read
	err  error  // to return once out is drained
}

func (d *base64Stream) Read(p []byte) (int, error) {
	for {
		if len(d.out) > 0 {
			n := copy(p, d.out)
			d.out = d.out[n:]
			return n, nil
		}
		if d.err != nil {
			return 0, d.err
		}
		m, rerr := d.r.Read(d.in[d.nin:])
		d.nin += m
		q := d.nin / 4 * 4
		if rerr == nil && q == 0 {
			continue
		}
		// Whole quanta of the alphabet always decode; straight into p
		// when it has room.
		var n int
		var err error
		if direct := len(p) >= q/4*3 && rerr == nil; direct {
			n, err = base64.RawStdEncoding.Decode(p, d.in[:q])
		} else {
			var w int
			w, err = base64.RawStdEncoding.Decode(d.obuf[:], d.in[:q])
			d.out = d.obuf[:w]
		}
		d.nin = copy(d.in[:], d.in[q:d.nin])
		switch {
		case err != nil:
			d.err = err
		case rerr != nil && d.nin > 0:
			// The final fragment, decoded alone without padding as
			// NewDecoder does (its error offsets are the fragment's).
			var w int
			var frag [3]byte
			w, d.err = base64.RawStdEncoding.Decode(frag[:], d.in[:d.nin])
			d.out = append(d.out, frag[:w]...)
			d.nin = 0
			if d.err == nil {
				d.err = rerr
			}
		case rerr != nil:
			d.err = rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// b64Class sorts every byte for base64Filter with one lookup instead of a
// chain of range tests.
var b64Class = func() (t [256]uint8) {
	for i := range t {
		t[i] = b64Stray
	}
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = b64Alphabet
	}
	for _, c := range []byte(" \t\r\n=") {
		t[c] = b64Skip
	}
	return t
}()

const (
	b64Stray uint8 = iota
	b64Alphabet
	b64Skip
)

// headBuffer keeps the first bytes written to it, for sniffing.
type headBuffer struct{ b []byte }

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := sniffLen - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// sniffLen is all http.DetectContentType reads.
const sniffLen = 512
