package smtpd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/authcheck"
	"github.com/postern/postern/internal/postern"
)

// DefaultDMARCTimeout bounds the sender checks of one message at the end of
// DATA: well inside the ten minutes a client waits for the reply (RFC 5321
// section 4.5.3.2.6), and short enough that a slow DNS costs little. When
// it runs out, the verdicts are temperror and the message is accepted.
const DefaultDMARCTimeout = 10 * time.Second

// holdInMemory is the most of a message held in memory while it is
// checked; the rest goes to an unlinked temporary file.
const holdInMemory = 1 << 20

// DMARCReject makes a listener refuse, at the end of DATA, mail from
// internet identities (Identity.Internet) whose DMARC verdict is fail under
// a p=reject policy (RFC 7489 section 6.6.3): 550 5.7.1, and nothing of the
// message is kept. Any other verdict, temperror included, lets the message
// go on unchanged. Other identities' mail is not checked and asks no DNS.
type DMARCReject struct {
	// Resolver asks DNS: one per process (dnsresolve.New), so its cache
	// serves every message. Required.
	Resolver authcheck.Resolver
	// Timeout bounds the checks of one message; DefaultDMARCTimeout when 0.
	Timeout time.Duration
	// TempDir holds messages above holdInMemory while they are checked;
	// "" is os.TempDir.
	TempDir string
}

// dmarcChecked reports whether the current transaction's message is
// checked before it is stored.
func (s *session) dmarcChecked() bool {
	return s.srv.cfg.DMARCReject != nil && s.identity != nil && s.identity.Internet
}

// dmarcRefusal runs the sender checks on msg (the message as the client
// sent it) and returns the reply refusing it when DMARC fails under
// p=reject, or nil when it may go on.
func (s *session) dmarcRefusal(env *postern.Envelope, msg io.Reader) *smtp.SMTPError {
	d := s.srv.cfg.DMARCReject
	ctx, cancel := context.WithTimeout(s.ctx, d.Timeout)
	defer cancel()
	start := time.Now()
	res := authcheck.Check(ctx, d.Resolver, authcheck.Input{ClientIP: s.ip, HELO: env.HELO, MailFrom: env.Sender, Message: msg})
	refuse := res.DMARC.Result == authcheck.Fail && strings.EqualFold(res.DMARC.Policy, "reject")
	dkim := make([]string, len(res.DKIM))
	for i, k := range res.DKIM {
		dkim[i] = string(k.Result)
		if k.Domain != "" {
			dkim[i] = k.Domain + "=" + dkim[i]
		}
	}
	level, msgText, code := slog.LevelDebug, "sender checked before storing", 0
	if refuse {
		level, msgText, code = slog.LevelInfo, "message refused: DMARC policy reject", 550
	}
	attrs := []slog.Attr{slog.String("msg_id", env.ID.String()), slog.String("stage", "gateway"),
		slog.String("identity", env.Identity), slog.String("spf", string(res.SPF.Result)), slog.String("spf_domain", res.SPF.Domain),
		slog.String("dkim", strings.Join(dkim, ",")), slog.String("dmarc", string(res.DMARC.Result)),
		slog.String("dmarc_domain", res.DMARC.Domain), slog.String("dmarc_policy", res.DMARC.Policy),
		slog.Int64("latency_ms", time.Since(start).Milliseconds())}
	if code != 0 {
		attrs = append(attrs, slog.Int("smtp_code", code))
	}
	s.log.LogAttrs(ctx, level, msgText, attrs...)
	if !refuse {
		return nil
	}
	return reply(550, smtp.EnhancedCode{5, 7, 1}, fmt.Sprintf("Message rejected: %s's DMARC policy is reject and this message fails it %s",
		sanitize(res.DMARC.Domain), env.ID))
}

// heldMessage is a message read whole before anything of it is stored, so
// that it can be checked first: in memory up to holdInMemory, beyond that
// in a temporary file (0600) unlinked at once, so that none of it outlives
// Close, or a crash.
type heldMessage struct {
	mem  []byte
	f    *os.File
	size int64
}

// holdMessage reads r to its end. Its errors are r's (the client's upload,
// the header checks) or the temporary file's.
func holdMessage(r io.Reader, dir string) (*heldMessage, error) {
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, r, holdInMemory+1)
	if err == io.EOF {
		return &heldMessage{mem: buf.Bytes(), size: n}, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "postern-held-*")
	if err != nil {
		return nil, fmt.Errorf("hold message: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("hold message: %w", err)
	}
	h := &heldMessage{f: f}
	if h.size, err = io.Copy(f, io.MultiReader(&buf, r)); err != nil {
		f.Close()
		return nil, err
	}
	return h, nil
}

// reader reads the held message from its start; readers are independent.
func (h *heldMessage) reader() io.Reader {
	if h.f != nil {
		return io.NewSectionReader(h.f, 0, h.size)
	}
	return bytes.NewReader(h.mem)
}

// Close releases the held message.
func (h *heldMessage) Close() error {
	if h.f != nil {
		return h.f.Close()
	}
	return nil
}
