package dkimsign

import (
	"context"
	"log/slog"
	"strings"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/relay"
)

// WrapTransport returns a Transport that signs each message with s, then
// sends it through t. A message s has no key for goes out unsigned.
//
// Signing must see the bytes as they leave, so it is the last change made
// to them: any decorator that rewrites the message (sendas.Wrap rewriting
// From) goes outside it, and its rewritten From picks the signing domain:
//
//	sendas.Wrap(dkimsign.WrapTransport(smtp, signer), cfg)
//
// The whole message is read before it is passed on (Signer.Sign says why);
// Message.Size becomes the exact size of what is sent.
func WrapTransport(t relay.Transport, s *Signer) relay.Transport {
	log := s.opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &transport{next: t, s: s, log: log}
}

type transport struct {
	next relay.Transport
	s    *Signer
	log  *slog.Logger
}

var _ relay.Transport = (*transport)(nil)

func (t *transport) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	signed, err := t.s.sign(blob.ContextReader(ctx, m.Body), m.Size)
	if err != nil {
		// A read or spool fault on this side: the relay stage retries.
		return nil, err
	}
	defer signed.Close()
	sent := *m
	sent.Body = signed
	if signed.Domain != "" {
		sent.Size = signed.Size
		t.log.LogAttrs(ctx, slog.LevelDebug, "dkim signed", slog.String("msg_id", string(m.ID)),
			slog.String("domain", signed.Domain), slog.String("selectors", strings.Join(signed.Selectors, ",")))
	} else {
		t.log.LogAttrs(ctx, slog.LevelInfo, "dkim not signed", slog.String("msg_id", string(m.ID)),
			slog.String("reason", signed.Unsigned))
	}
	return t.next.Send(ctx, &sent)
}
