// Package filerelay is a relay Transport that writes each message into a
// directory instead of sending it: the embedded default's stand-in for a
// smarthost, so that relayed mail and failure notices can be looked at
// without any mail set-up.
package filerelay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/postern/postern/internal/atomicfile"
	"github.com/postern/postern/internal/crlf"
	"github.com/postern/postern/internal/relay"
)

// Transport writes messages as <id>.<hash>.eml files. The name derives from
// the envelope and the bytes, so a retried send rewrites the same file.
type Transport struct {
	dir string
}

var _ relay.Transport = (*Transport)(nil)

// New makes dir if needed and returns a Transport writing into it.
func New(dir string) (*Transport, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("filerelay: %w", err)
	}
	return &Transport{dir: dir}, nil
}

// Send writes the message, preceded by X-Postern-Envelope-From and
// X-Postern-Envelope-To fields that record the envelope, and accepts every
// recipient. The write is atomic: a reader sees the whole file or none.
// Line ends are written as CRLF only (package crlf), as they would go to
// an SMTP peer, so the file can be replayed as it is.
func (t *Transport) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	var head strings.Builder
	fmt.Fprintf(&head, "X-Postern-Envelope-From: <%s>\r\n", oneLine(m.From))
	for _, r := range m.To {
		fmt.Fprintf(&head, "X-Postern-Envelope-To: <%s>\r\n", oneLine(r.Addr))
	}
	id := string(m.ID)
	if !safeName(id) {
		id = "msg"
	}
	// The message streams to a temporary file (hashing as it goes), so a
	// large one is never held; the hash names the file it is renamed to.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name, err := writeAtomic(t.dir, func(sum string) string { return id + "." + sum + ".eml" },
		strings.NewReader(head.String()), crlf.NewReader(m.Body))
	if err != nil {
		return nil, fmt.Errorf("filerelay: write message %s: %w", m.ID, err)
	}
	return relay.Uniform(m, "localhost", relay.Reply{Status: "2.0.0", Text: "written to " + name, Type: relay.DiagLocal}), nil
}

// writeAtomic writes parts to a temporary file in dir while hashing them,
// then commits it atomically and durably (package atomicfile) under
// name(first 8 bytes of the SHA-256, in hex), mode 0600 (it holds mail). It returns the name.
func writeAtomic(dir string, name func(sum string) string, parts ...io.Reader) (string, error) {
	f, err := atomicfile.Create(dir, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Abort()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), io.MultiReader(parts...)); err != nil {
		return "", err
	}
	final := name(hex.EncodeToString(h.Sum(nil)[:8]))
	if err := f.Commit(final); err != nil {
		return "", err
	}
	return final, nil
}

func oneLine(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }

func safeName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
