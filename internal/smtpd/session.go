package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/postern"
)

// session is one SMTP connection. go-smtp sessions carry no context, so the
// session owns one, cancelled at Logout, and each command derives its own.
type session struct {
	srv    *Server
	conn   *smtp.Conn
	front  *frontConn
	tc     *trackedConn
	ip     netip.Addr
	port   int
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	authID     *Identity // set by a successful AUTH
	authMech   string
	authFailed bool

	identity *Identity // who sends the current transaction
	from     string
	mailOpts smtp.MailOptions
	rcpts    []postern.Recipient

	// tx is held by Data for the whole of it. go-smtp runs Data on a
	// goroutine of its own for BDAT and, when a chunk fails, closes Data's
	// pipe and calls Reset without waiting for Data to return: Reset waits
	// here instead of clearing the transaction under it.
	tx sync.Mutex
}

var _ smtp.Session = (*session)(nil)

func (s *session) Reset() {
	s.tx.Lock()
	defer s.tx.Unlock()
	s.identity = nil
	s.from = ""
	s.mailOpts = smtp.MailOptions{}
	s.rcpts = nil
}

func (s *session) Logout() error {
	s.cancel()
	auth := "none"
	switch {
	case s.authID != nil:
		auth = "success"
	case s.authFailed:
		auth = "failure"
	}
	s.srv.cfg.Observer.SessionEnd(s.srv.cfg.Listener, s.isTLS(), auth)
	return nil
}

// observe counts the reply to a command (addr is its address argument, if
// any) and returns err unchanged.
func (s *session) observe(command, addr string, err error) error {
	code := 250
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		code = se.Code
	} else if err != nil {
		code = 451
	}
	s.srv.cfg.Observer.Reply(command, code)
	if id := s.transcribed(nil); id != nil {
		line := command
		switch command {
		case "MAIL":
			line = "MAIL FROM:<" + addr + ">"
		case "RCPT":
			line = "RCPT TO:<" + addr + ">"
		}
		reply := "error"
		if se != nil {
			reply = fmt.Sprintf("%d.%d.%d %s", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
		} else if err == nil {
			reply = "OK"
		}
		s.transcript(id, line, code, reply)
	}
	return err
}

// transcribed returns the identity whose transcript this session's
// commands belong to, or nil when it asked for none. id, when given, is the
// identity known to the caller (AUTH, before the session has one).
func (s *session) transcribed(id *Identity) *Identity {
	for _, c := range []*Identity{id, s.identity, s.authID} {
		if c != nil {
			id = c
			break
		}
	}
	if id == nil {
		id = s.srv.networkIdentity(s.ip)
	}
	if id == nil || !id.Transcript {
		return nil
	}
	return id
}

// transcript logs one command and its reply, to debug one device. AUTH
// payloads never reach it: AUTH is logged by mechanism and outcome only,
// and message bodies not at all.
func (s *session) transcript(id *Identity, line string, code int, reply string) {
	s.log.Info("smtp transcript", slog.String("stage", "gateway"), slog.String("identity", id.Name),
		slog.String("helo", s.conn.Hostname()), slog.Bool("tls", s.isTLS()),
		slog.String("command", line), slog.Int("smtp_code", code), slog.String("reply", reply))
}

func (s *session) isTLS() bool { return s.front.TLS() != nil }

// sender decides who this client is for a transaction, or why it may not
// send at all. It is what keeps the gateway from being an open relay.
func (s *session) sender() (*Identity, *smtp.SMTPError) {
	if s.authID != nil {
		if !s.isTLS() && !s.authID.AllowPlaintext {
			return nil, errNeedsTLS
		}
		return s.authID, nil
	}
	if s.srv.cfg.Mode == ModeSubmission {
		return nil, errAuthRequired
	}
	id := s.srv.networkIdentity(s.ip)
	if id == nil {
		return nil, errAuthRequired
	}
	if !s.isTLS() && !id.AllowPlaintext {
		return nil, errNeedsTLS
	}
	return id, nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	return s.observe("MAIL", from, s.mail(from, opts))
}

func (s *session) mail(from string, opts *smtp.MailOptions) error {
	if s.srv.gate.isDraining() {
		return errShuttingDown
	}
	if s.identity != nil {
		return errNestedMail
	}
	if low := s.srv.cfg.StorageLow; low != nil && low() {
		s.log.Info("mail refused: storage low", slog.String("stage", "gateway"), slog.Int("smtp_code", 452))
		return errStorageLow
	}
	id, rerr := s.sender()
	if rerr != nil {
		s.log.Info("sender refused", slog.String("stage", "gateway"), slog.Int("smtp_code", rerr.Code))
		return rerr
	}
	if id.AllowSender != nil && !id.AllowSender(from) {
		s.log.Info("sender refused", slog.String("stage", "gateway"), slog.String("identity", id.Name), slog.Int("smtp_code", 553))
		return errSenderDenied
	}
	if rerr := s.checkSender(id, from); rerr != nil {
		return rerr
	}
	if opts != nil && opts.Size > 0 && opts.Size > s.maxBytes(id) {
		return errTooBig
	}
	if id.Limiter != nil && !id.Limiter.Allow() {
		s.log.Warn("rate limited", slog.String("stage", "gateway"), slog.String("identity", id.Name), slog.Int("smtp_code", 451))
		s.srv.cfg.Observer.RateLimited(id.Name)
		return errRateLimited
	}
	s.Reset()
	s.identity = id
	s.from = from
	if opts != nil {
		s.mailOpts = *opts
	}
	return nil
}

func (s *session) maxBytes(id *Identity) int64 {
	if id.MaxMessageBytes > 0 && id.MaxMessageBytes < s.srv.cfg.MaxMessageBytes {
		return id.MaxMessageBytes
	}
	return s.srv.cfg.MaxMessageBytes
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	return s.observe("RCPT", to, s.rcpt(to, opts))
}

func (s *session) rcpt(to string, opts *smtp.RcptOptions) error {
	if s.identity == nil {
		return errAuthRequired
	}
	if s.identity.MaxRecipients > 0 && len(s.rcpts) >= s.identity.MaxRecipients {
		return errTooManyRcpts
	}
	if s.identity.AllowRecipient != nil && !s.identity.AllowRecipient(to) {
		s.log.Info("recipient refused", slog.String("stage", "gateway"), slog.String("identity", s.identity.Name), slog.Int("smtp_code", 550))
		return errRecipientDenied
	}
	if !s.srv.router.Accepts(to, s.from, s.identity.Name) {
		s.log.Info("recipient refused: no route", slog.String("stage", "gateway"), slog.String("identity", s.identity.Name), slog.Int("smtp_code", 550))
		return errNoSuchRecipient
	}
	if rerr := s.checkSenderRcpt(to); rerr != nil {
		return rerr
	}
	r := postern.Recipient{Addr: to}
	if opts != nil {
		for _, n := range opts.Notify {
			r.Notify = append(r.Notify, string(n))
		}
		if opts.OriginalRecipient != "" {
			r.ORCPT = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	s.rcpts = append(s.rcpts, r)
	return nil
}

func (s *session) Data(r io.Reader) error {
	s.tx.Lock()
	defer s.tx.Unlock()
	return s.observe("DATA", "", s.data(r))
}

func (s *session) data(r io.Reader) error {
	s.tc.inData.Store(true)
	defer s.tc.inData.Store(false)
	s.srv.uploads.Add(1)
	defer s.srv.uploads.Add(-1)
	s.srv.lastUpload.Store(time.Now().UnixNano())
	if s.identity == nil || len(s.rcpts) == 0 {
		return errBadSequence
	}
	id := postern.NewMsgID()
	now := s.srv.now().UTC()
	env := &postern.Envelope{
		V:          postern.EnvelopeVersion,
		ID:         id,
		Sender:     s.from,
		Recipients: s.rcpts,
		Identity:   s.identity.Name,
		AuthMech:   s.authMech,
		ClientIP:   s.ip.String(),
		ClientPort: s.port,
		HELO:       s.conn.Hostname(),
		Listener:   s.srv.cfg.Listener,
		Gateway:    s.srv.cfg.Hostname,
		ReceivedAt: now,
		Body:       string(s.mailOpts.Body),
		SMTPUTF8:   s.mailOpts.UTF8,
		DeclSize:   s.mailOpts.Size,
		Ret:        string(s.mailOpts.Return),
		EnvID:      s.mailOpts.EnvelopeID,
	}
	if s.authID != nil {
		env.AuthUser = s.authID.Username
	}
	if st := s.front.TLS(); st != nil {
		env.TLS = &postern.TLSInfo{Version: tls.VersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite), ServerName: st.ServerName}
	}

	// The client's side of the upload is bounded by the front (frontConn).
	// The store's side is bounded by limits.store_timeout: whenever the
	// store holds control (before it reads, between reads, after the last
	// one) for that long, it is given up and the client hears 451 4.4.5.
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	scan := &headerScanner{r: r, maxHeader: s.srv.cfg.MaxHeaderBytes, maxReceived: s.srv.cfg.MaxReceived, limit: s.maxBytes(s.identity)}
	trace := receivedHeader(env)
	if hr, ok := s.srv.router.(HeaderRouter); ok && hr.HasHeaderRules() {
		scan.onHeader = func(block []byte) error { return s.routeByHeader(hr, env, trace, block) }
	}
	notAccepted := func(err error) error {
		rep := dataError(err, id)
		s.log.Warn("message not accepted", slog.String("msg_id", id.String()), slog.String("stage", "gateway"),
			slog.String("identity", env.Identity), slog.Int("smtp_code", rep.Code), slog.String("error", err.Error()))
		return rep
	}
	// A listener that refuses DMARC failures under p=reject holds the
	// message and checks it before the store sees a byte: a refused
	// message leaves nothing behind.
	var msg io.Reader = scan
	if s.dmarcChecked() {
		held, err := holdMessage(scan, s.srv.cfg.DMARCReject.TempDir)
		if err != nil {
			return notAccepted(err)
		}
		defer held.Close()
		if rep := s.dmarcRefusal(env, held.reader()); rep != nil {
			return rep
		}
		msg = held.reader()
	}
	watch := &storeWatch{r: msg, d: s.srv.cfg.StoreTimeout,
		t: time.AfterFunc(s.srv.cfg.StoreTimeout, func() { cancel(context.DeadlineExceeded) })}
	defer watch.t.Stop()
	body := io.MultiReader(strings.NewReader(trace), watch)
	start := time.Now()
	if err := s.srv.ingest.Accept(ctx, env, body); err != nil {
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return notAccepted(err)
	}
	s.srv.cfg.Observer.Accepted(env, time.Since(start))
	s.log.Info("message queued", slog.String("msg_id", id.String()), slog.String("stage", "gateway"),
		slog.String("identity", env.Identity), slog.Int("smtp_code", 250), slog.Int64("latency_ms", time.Since(start).Milliseconds()))
	return accepted(id)
}

// routeByHeader refuses the message (before anything is stored) when, its
// header known, no route takes any of its recipients. When some route takes
// some of them, the message is accepted and the others are bounced by the
// parse stage, as one reply cannot refuse part of the recipients after DATA.
func (s *session) routeByHeader(hr HeaderRouter, env *postern.Envelope, trace string, block []byte) error {
	raw := make([]byte, 0, len(trace)+len(block)+4)
	raw = append(append(append(raw, trace...), block...), "\r\n\r\n"...)
	if hr.RoutesMessage(env.RecipientAddrs(), env.Sender, env.Identity, raw) {
		return nil
	}
	return errNoRouteForMessage
}

// receivedHeader is the trace field (RFC 5321 section 4.4) the gateway
// prepends. It names the recipient only when there is one, as Postfix does,
// so one copy does not reveal the others.
func receivedHeader(env *postern.Envelope) string {
	with := "ESMTP"
	if env.TLS != nil {
		with = "ESMTPS"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (Postern) with %s id %s",
		sanitize(env.HELO), env.ClientIP, sanitize(env.Gateway), with, env.ID)
	if env.TLS != nil {
		fmt.Fprintf(&b, "\r\n\t(using %s with cipher %s)", env.TLS.Version, env.TLS.Cipher)
	}
	if len(env.Recipients) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", sanitize(env.Recipients[0].Addr))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", env.ReceivedAt.Format(time.RFC1123Z))
	return b.String()
}

// sanitize keeps client-supplied text from breaking the header: printable
// ASCII only, no parentheses or angle brackets.
func sanitize(s string) string {
	if s == "" {
		return "unknown"
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x21 || c > 0x7e || c == '(' || c == ')' || c == '<' || c == '>' || c == ';' {
			b[i] = '_'
		}
	}
	if len(b) > 255 {
		b = b[:255]
	}
	return string(b)
}

// storeWatch runs the store timer only while the store holds control:
// it is stopped while the store waits for the client's bytes.
type storeWatch struct {
	r io.Reader
	d time.Duration
	t *time.Timer
}

func (w *storeWatch) Read(p []byte) (int, error) {
	w.t.Stop()
	n, err := w.r.Read(p)
	if err == nil || err == io.EOF {
		w.t.Reset(w.d)
	}
	return n, err
}
