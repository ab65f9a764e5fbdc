package dkimsign

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/postern/postern/internal/crlf"
)

// tenMiB is a 10 MiB message: a header and base64-like 76-byte lines, the
// shape of a large attachment.
func tenMiB() []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nTo: b@example.net\r\nSubject: scan\r\nMIME-Version: 1.0\r\n\r\n")
	line := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 3)[:76] + "\r\n"
	for b.Len() < 10<<20 {
		b.WriteString(line)
	}
	return b.Bytes()
}

// BenchmarkSign10MiB measures signing a 10 MiB message end to end (read,
// hash, hold, send on) as WrapTransport does it, knowing the size, against
// the same copy through crlf alone.
func BenchmarkSign10MiB(b *testing.B) {
	msg := tenMiB()
	run := func(b *testing.B, o Options, sels ...Selector) {
		s, err := NewSigner(sels, o)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			m, err := s.sign(bytes.NewReader(msg), int64(len(msg)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, m); err != nil {
				b.Fatal(err)
			}
			m.Close()
		}
	}
	b.Run("crlf-only", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			io.Copy(io.Discard, crlf.NewReader(bytes.NewReader(msg)))
		}
	})
	rsaSel := Selector{"example.com", "r", rsaKey()}
	edSel := Selector{"example.com", "e", edKey()}
	b.Run("rsa/memory", func(b *testing.B) { run(b, Options{MemoryLimit: 16 << 20}, rsaSel) })
	b.Run("rsa/file", func(b *testing.B) { run(b, Options{MemoryLimit: -1, SpoolDir: b.TempDir()}, rsaSel) })
	b.Run("ed25519/memory", func(b *testing.B) { run(b, Options{MemoryLimit: 16 << 20}, edSel) })
	b.Run("rsa+ed25519/default", func(b *testing.B) { run(b, Options{SpoolDir: b.TempDir()}, rsaSel, edSel) })
}
