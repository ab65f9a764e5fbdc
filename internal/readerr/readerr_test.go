package readerr

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestKeepsTheFirstFailureNotEOF(t *testing.T) {
	r := &Reader{R: strings.NewReader("hello")}
	if b, err := io.ReadAll(r); err != nil || string(b) != "hello" || r.Err != nil {
		t.Fatalf("clean read: %q, %v, kept %v", b, err, r.Err)
	}
	first, second := errors.New("disk gone"), errors.New("later")
	r = &Reader{R: io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(first))}
	if _, err := io.ReadAll(r); !errors.Is(err, first) || !errors.Is(r.Err, first) {
		t.Fatalf("read error %v, kept %v; want %v", err, r.Err, first)
	}
	r.R = iotest.ErrReader(second)
	r.Read(make([]byte, 1))
	if !errors.Is(r.Err, first) {
		t.Fatalf("kept %v; want the first failure", r.Err)
	}
}
