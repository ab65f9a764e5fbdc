package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/postern/postern/internal/atomicfile"
	"github.com/postern/postern/internal/blob"
)

// writeFile writes r to dir/name atomically and durably (package
// atomicfile): a reader of dir sees the whole file or none, and a retry
// writes the same name again, so a redelivery replaces the file rather than
// adding a second one. Files are 0600: they hold mail.
func writeFile(ctx context.Context, dir, name string, r io.Reader) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, name)
	if err := atomicfile.WriteFile(path, blob.ContextReader(ctx, r), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// EnvelopeFileExt ends the name of the envelope a directory target writes
// beside each raw message: <webhook-id>.envelope.json next to
// <webhook-id>.eml. Route names hold no dots, so no payload file of
// another route can have this name.
const EnvelopeFileExt = ".envelope.json"

// writeRaw writes a raw delivery to dir: env (a RawEnvelope as JSON: the
// recipients this delivery is for, which a Bcc copy's header does not
// show) as <id>.envelope.json, then the message as <id>.eml, each
// atomically, so an application that waits for the .eml finds its
// envelope already there. It returns the .eml's path.
func writeRaw(ctx context.Context, dir, webhookID string, env []byte, msg io.Reader) (string, error) {
	if _, err := writeFile(ctx, dir, fileName(webhookID, EnvelopeFileExt), bytes.NewReader(append(env, '\n'))); err != nil {
		return "", err
	}
	return writeFile(ctx, dir, fileName(webhookID, ".eml"), msg)
}

// fileName makes a webhook id safe as one file name on any system: bytes
// outside [A-Za-z0-9._-] become %XX, so no route name can add a path
// element. The id starts with a ULID, so the name never starts with a dot.
func fileName(id, ext string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String() + ext
}
