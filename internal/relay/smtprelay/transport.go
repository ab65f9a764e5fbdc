package smtprelay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/crlf"
	"github.com/postern/postern/internal/readerr"
	"github.com/postern/postern/internal/relay"
)

// Transport sends through one smarthost. It holds no connection between
// messages, so one Transport serves concurrent calls.
type Transport struct {
	cfg Config
}

var _ relay.Transport = (*Transport)(nil)

// New checks cfg and builds a Transport.
func New(cfg Config) (*Transport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Transport{cfg: cfg}, nil
}

// Send runs one SMTP transaction: MAIL, one RCPT per recipient, DATA when
// at least one recipient was accepted. Recipients refused at RCPT keep that
// reply; the reply to the data applies to every accepted one.
func (t *Transport) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	res := &relay.Result{Remote: t.cfg.Name, Rcpts: make([]relay.RcptResult, len(m.To))}
	for i, r := range m.To {
		res.Rcpts[i].Addr = r.Addr
	}
	set := func(idx []int, r relay.Reply) {
		for _, i := range idx {
			res.Rcpts[i].Reply = r
		}
	}
	all := make([]int, len(m.To))
	for i := range all {
		all[i] = i
	}
	if badAddr(m.From) {
		set(all, relay.Reply{Status: "5.1.7", Text: "sender address is malformed", Type: relay.DiagLocal})
		return res, nil
	}
	pass, err := t.password(ctx)
	if r, ok := t.tokenReply(ctx, m, err); ok {
		set(all, r)
		return res, nil
	}
	if err != nil {
		// This side's fault: the caller retries the job.
		return nil, err
	}

	s, err := t.open(ctx, pass)
	if t.tokenRefused(err) {
		if pass, err = t.refreshToken(ctx, m, pass, err); err != nil {
			if r, ok := t.tokenReply(ctx, m, err); ok {
				set(all, r)
				return res, nil
			}
			return nil, err
		}
		if s, err = t.open(ctx, pass); t.tokenRefused(err) {
			// Refused twice, so not an expired token but the grant
			// (consent, Mail.Send, SMTP AUTH off for the mailbox, a wrong
			// scope). Like any AUTH refusal it stays temporary below, with
			// the provider's code and text (535 5.7.3, 5.7.139, 5.7.8 as
			// 4.7.x): the operator can fix it, the sender cannot, and the
			// message bounces with those words only when it expires.
			t.invalidate(pass)
		}
	}
	if err != nil {
		set(all, failure(err, phaseConnect))
		return res, nil
	}
	defer s.close()
	c := s.c

	utf8Addrs := !isASCII(m.From) || slices.ContainsFunc(m.To, func(r relay.Rcpt) bool { return !isASCII(r.Addr) })
	hasUTF8, _ := c.Extension("SMTPUTF8")
	if utf8Addrs && !hasUTF8 {
		set(all, relay.Reply{Status: "5.6.7", Text: "smarthost does not support SMTPUTF8, needed for a non-ASCII address", Type: relay.DiagLocal})
		s.quit()
		return res, nil
	}
	if limit, ok := c.MaxMessageSize(); ok && limit > 0 && m.Size > int64(limit) {
		set(all, relay.Reply{Status: "5.3.4", Text: fmt.Sprintf("message of %d bytes exceeds the smarthost's limit of %d", m.Size, limit), Type: relay.DiagLocal})
		s.quit()
		return res, nil
	}

	if err := c.Mail(m.From, mailOptions(m, hasUTF8 && (utf8Addrs || m.SMTPUTF8))); err != nil {
		set(all, failure(err, phaseSession))
		s.quit()
		return res, nil
	}
	var accepted []int
	for i, r := range m.To {
		if badAddr(r.Addr) || r.Addr == "" {
			res.Rcpts[i].Reply = relay.Reply{Status: "5.1.3", Text: "recipient address is malformed", Type: relay.DiagLocal}
			continue
		}
		err := c.Rcpt(r.Addr, rcptOptions(r))
		if err == nil {
			accepted = append(accepted, i)
			continue
		}
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			res.Rcpts[i].Reply = fromSMTP(se)
			continue
		}
		// The connection broke: nothing in this transaction was delivered.
		rep := failure(err, phaseSession)
		set(all[i:], rep)
		set(accepted, rep)
		return res, nil
	}
	if len(accepted) == 0 {
		s.quit()
		return res, nil
	}

	w, err := c.Data()
	if err != nil {
		set(accepted, failure(err, phaseSession))
		s.quit()
		return res, nil
	}
	s.dataDeadline()
	// Every line end goes out as CRLF (RFC 5321 section 2.3.8): go-smtp
	// fixes a bare LF but passes a bare CR, and dot-stuffs only lines that
	// follow an LF. readerr keeps a store failure (ours) apart from the
	// smarthost's.
	body := &readerr.Reader{R: crlf.NewReader(m.Body)}
	if _, err := io.Copy(w, body); err != nil {
		if body.Err != nil {
			// Closing the connection mid-DATA aborts the transaction.
			return nil, fmt.Errorf("smtprelay: read message %s: %w", m.ID, body.Err)
		}
		set(accepted, failure(err, phaseSession))
		return res, nil
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		set(accepted, failure(err, phaseSession))
		return res, nil
	}
	set(accepted, okReply(resp.StatusText))
	s.quit()
	return res, nil
}

// session is one connection to the smarthost.
type session struct {
	c       *smtp.Client
	raw     net.Conn
	stop    func() bool
	timeout time.Duration
}

// open connects, greets, secures and authenticates. The context's deadline
// bounds every command (go-smtp's per-command timeouts are capped by it)
// and its end closes the connection, which fails any call in progress.
func (t *Transport) open(ctx context.Context, pass string) (*session, error) {
	dctx, cancel := context.WithTimeout(ctx, t.cfg.ConnectTimeout)
	defer cancel()
	dial := t.cfg.Dial
	if dial == nil {
		d := &net.Dialer{}
		dial = d.DialContext
	}
	raw, err := dial(dctx, "tcp", t.cfg.Addr)
	if err != nil {
		return nil, err
	}
	conn := raw
	if t.cfg.TLS == TLSImplicit {
		tc := tls.Client(raw, t.cfg.TLSConfig.Clone())
		if err := tc.HandshakeContext(dctx); err != nil {
			raw.Close()
			return nil, err
		}
		conn = tc
	}
	s := &session{raw: raw}
	s.stop = context.AfterFunc(ctx, func() { raw.Close() })
	s.timeout = capTo(ctx, t.cfg.CommandTimeout)
	fail := func(err error) (*session, error) {
		s.close()
		return nil, err
	}
	if t.cfg.TLS == TLSStartTLS {
		// go-smtp does its own EHLO (as "localhost") before STARTTLS, under
		// its default timeouts (the context still bounds it); the
		// configured name is used once TLS is up.
		s.c, err = smtp.NewClientStartTLS(conn, t.cfg.TLSConfig.Clone())
		if err != nil {
			s.stop()
			raw.Close()
			return nil, err
		}
	} else {
		s.c = smtp.NewClient(conn)
	}
	s.c.CommandTimeout = s.timeout
	s.c.SubmissionTimeout = capTo(ctx, t.cfg.DataTimeout)
	if err := s.c.Hello(t.cfg.LocalName); err != nil {
		return fail(err)
	}
	if t.cfg.Username != "" {
		if err := t.auth(s.c, pass); err != nil {
			return fail(&authError{err})
		}
	}
	return s, nil
}

func (t *Transport) auth(c *smtp.Client, pass string) error {
	ok, params := c.Extension("AUTH")
	if !ok {
		return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "smarthost does not offer AUTH"}
	}
	offered := strings.Fields(strings.ToUpper(params))
	mech := t.cfg.AuthMechanism
	if mech == "" {
		mech = "PLAIN"
		if !slices.Contains(offered, "PLAIN") && slices.Contains(offered, "LOGIN") {
			mech = "LOGIN"
		}
	}
	if !slices.Contains(offered, mech) {
		return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "smarthost does not offer AUTH " + mech}
	}
	var a sasl.Client = sasl.NewPlainClient("", t.cfg.Username, pass)
	switch mech {
	case "LOGIN":
		a = &loginClient{user: t.cfg.Username, pass: pass}
	case AuthXOAUTH2:
		a = &xoauth2Client{user: t.cfg.Username, token: pass}
	}
	return c.Auth(a)
}

// dataDeadline bounds the upload of the message, which go-smtp leaves
// without a deadline.
func (s *session) dataDeadline() {
	s.raw.SetWriteDeadline(time.Now().Add(s.c.SubmissionTimeout))
}

// quit ends the session politely; its outcome no longer matters.
func (s *session) quit() {
	s.c.CommandTimeout = min(s.timeout, 10*time.Second)
	s.c.Quit()
}

func (s *session) close() {
	s.stop()
	s.c.Close()
}

// capTo returns d, or less when ctx ends sooner.
func capTo(ctx context.Context, d time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < d {
			return max(left, time.Millisecond)
		}
	}
	return d
}

func mailOptions(m *relay.Message, utf8 bool) *smtp.MailOptions {
	o := &smtp.MailOptions{Size: m.Size, UTF8: utf8}
	switch strings.ToUpper(m.Ret) {
	case "FULL":
		o.Return = smtp.DSNReturnFull
	case "HDRS":
		o.Return = smtp.DSNReturnHeaders
	}
	if printableASCII(m.EnvID) {
		o.EnvelopeID = m.EnvID
	}
	return o
}

// rcptOptions passes NOTIFY and ORCPT on, dropping any that go-smtp would
// refuse to send rather than failing the recipient over them.
func rcptOptions(r relay.Rcpt) *smtp.RcptOptions {
	o := &smtp.RcptOptions{}
	seen := map[smtp.DSNNotify]bool{}
	for _, n := range r.Notify {
		v := smtp.DSNNotify(strings.ToUpper(n))
		switch v {
		case smtp.DSNNotifyNever, smtp.DSNNotifySuccess, smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed:
		default:
			continue
		}
		if !seen[v] {
			seen[v] = true
			o.Notify = append(o.Notify, v)
		}
	}
	if seen[smtp.DSNNotifyNever] && len(seen) > 1 {
		o.Notify = nil
	}
	if typ, addr, ok := strings.Cut(r.ORCPT, ";"); ok && addr != "" && !badAddr(addr) {
		switch strings.ToLower(strings.TrimSpace(typ)) {
		case "rfc822":
			if printableASCII(addr) {
				o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, addr
			}
		case "utf-8":
			o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeUTF8, addr
		}
	}
	return o
}

func okReply(text string) relay.Reply {
	r := fromSMTP(&smtp.SMTPError{Code: 250, Message: text})
	if code, rest, ok := strings.Cut(text, " "); ok && len(code) >= 5 && code[0] == '2' && code[1] == '.' {
		r.Status, r.Text = code, code+" "+strings.Join(strings.Fields(rest), " ")
	}
	return r
}

func badAddr(a string) bool { return strings.ContainsAny(a, "\r\n<>\x00") }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
