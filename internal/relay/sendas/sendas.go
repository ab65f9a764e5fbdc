// Package sendas is sender control for relays that send as one mailbox
// (Microsoft 365, Google Workspace): it rewrites the envelope sender and,
// when asked, the From field of the copy sent (Wrap), and decides which
// senders such routes could never deliver (Policy). The stored message never
// changes.
package sendas

import (
	"bytes"
	"context"
	"errors"
	"io"
	"unicode/utf8"

	"github.com/postern/postern/internal/relay"
)

// Where a rewritten From's old value goes (config original_from).
const (
	OriginalReplyTo = "reply-to" // Reply-To, added only when the message has none
	OriginalHeader  = "header"   // an X-Original-From field
)

// Config says what to change on the copy sent.
type Config struct {
	// SendAs is the envelope sender every message gets; "" keeps the
	// sender as received. The null sender <> is never replaced: it marks
	// a notice that must not be answered with another (RFC 5321 section
	// 4.5.5, RFC 3461 section 6.2), and a mailbox there would draw bounces
	// of bounces into it.
	SendAs string
	// RewriteFrom makes the From field Mailbox (SendAs when Mailbox is
	// empty), keeping the device's display name.
	RewriteFrom bool
	// OriginalFrom is where the device's From goes when it is rewritten:
	// OriginalReplyTo (the default, also for "") or OriginalHeader.
	OriginalFrom string
	// Mailbox is the address a rewritten From gets when it is not SendAs:
	// an smtp relay with xoauth2 and no send_as signs in as its username
	// (config.Relay.Mailbox) and keeps the envelope sender as received.
	Mailbox string
}

// Wrap returns a Transport that sends through t with c's changes, or t
// itself when c changes nothing.
//
// Only the header block is read into memory (at most MaxHeaderBytes); the
// body streams through. Message.Size, when known, is adjusted by what the
// rewrite adds or removes, so it stays the size of the bytes in Body.
func Wrap(t relay.Transport, c Config) relay.Transport {
	if c.Mailbox == "" {
		c.Mailbox = c.SendAs
	}
	if !c.RewriteFrom || c.Mailbox == "" {
		c.RewriteFrom = false
		if c.SendAs == "" {
			return t
		}
	}
	return &transport{next: t, c: c}
}

type transport struct {
	next relay.Transport
	c    Config
}

var _ relay.Transport = (*transport)(nil)

func (t *transport) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	sent := *m
	if t.c.SendAs != "" && m.From != "" {
		sent.From = t.c.SendAs
	}
	if t.c.RewriteFrom {
		header, rest, err := readHeader(m.Body)
		if errors.Is(err, errHeaderTooBig) {
			// Sent as it is, the provider would refuse the device's From;
			// a retry would read the same header.
			return relay.Uniform(m, "", relay.Reply{Status: "5.3.4", Text: "message header too large to rewrite From", Type: relay.DiagLocal}), nil
		}
		if err != nil {
			return nil, err
		}
		h := rewriteFrom(header, t.c.Mailbox, t.c.OriginalFrom)
		sent.Body = io.MultiReader(bytes.NewReader(h), rest)
		if m.Size > 0 {
			sent.Size = m.Size + int64(len(h)-len(header))
		}
		if !isASCII(t.c.Mailbox) {
			sent.SMTPUTF8 = true // the header now holds a UTF-8 address
		}
	}
	return t.next.Send(ctx, &sent)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
