// Package readerr remembers why a reader failed. A reader handed on to code
// that reports errors of its own (a decoder, an SMTP client) comes back with
// its own failure kept apart, so the caller can tell "our store failed"
// (temporary, retry) from "their side refused" or "the bytes are bad".
package readerr

import (
	"errors"
	"io"
)

// Reader passes reads through to R and keeps the first error other than
// io.EOF in Err.
type Reader struct {
	R   io.Reader
	Err error
}

func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	if err != nil && r.Err == nil && !errors.Is(err, io.EOF) {
		r.Err = err
	}
	return n, err
}
