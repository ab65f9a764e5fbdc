package postern

import (
	"fmt"
	"strings"

	"github.com/oklog/ulid/v2"
)

// MsgID is a message's identity: a ULID minted when DATA starts. It appears
// in the 250 reply, the Received header, every key, job and log line.
type MsgID string

// NewMsgID mints a fresh id. ulid.Make is monotonic within a millisecond and
// safe for concurrent use.
func NewMsgID() MsgID { return MsgID(ulid.Make().String()) }

// ParseMsgID validates s as a message id. It is used on every id that comes
// from outside (CLI arguments, job bodies) before it is turned into a key.
func ParseMsgID(s string) (MsgID, error) {
	u, err := ulid.ParseStrict(s)
	if err != nil {
		return "", fmt.Errorf("message id %q: %w", s, err)
	}
	return MsgID(u.String()), nil
}

func (id MsgID) String() string { return string(id) }

// shard spreads keys over 1,024 prefixes using the ULID's random tail, so no
// single S3 prefix runs hot (the leading characters are a timestamp).
func (id MsgID) shard() string {
	s := string(id)
	if len(s) < 2 {
		return "00"
	}
	return strings.ToLower(s[len(s)-2:])
}

// Prefix is the key prefix under which every object of this message lives.
func (id MsgID) Prefix() string { return "m/" + id.shard() + "/" + string(id) + "/" }

// RawKey is the key of the raw message as received, Received header included.
func (id MsgID) RawKey() string { return id.Prefix() + "raw.eml" }

// EnvelopeKey is the key of the JSON envelope sidecar.
func (id MsgID) EnvelopeKey() string { return id.Prefix() + "envelope.json" }

// ParsedKey is the key of the parsed JSON form.
func (id MsgID) ParsedKey() string { return id.Prefix() + "parsed.json" }

// AttachmentKey is the key of the n-th stored attachment (0-based, in parse
// order), so a re-run of parse rewrites the same objects.
func (id MsgID) AttachmentKey(n int) string { return fmt.Sprintf("%satt/%03d", id.Prefix(), n) }
