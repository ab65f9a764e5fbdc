// Package smtpd is Postern's SMTP front door on github.com/emersion/go-smtp:
// it decides who may send what, streams DATA into durable storage through an
// Ingester, and answers 250 only after the message is stored and queued.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/time/rate"

	"github.com/postern/postern/internal/postern"
)

// Ingester makes a message durable and queued; nil means the gateway may
// answer 250. See ingest.Ingester.Accept for the contract.
type Ingester interface {
	Accept(ctx context.Context, env *postern.Envelope, body io.Reader) error
}

// Router reports whether some route would take a recipient, so unroutable
// recipients are refused at RCPT rather than bounced later.
type Router interface {
	Accepts(rcpt, sender, identity string) bool
}

// HeaderRouter is a Router whose routes may look at the message header.
// A recipient accepted at RCPT only because a header route might take it is
// settled at the end of DATA: when the header leaves no recipient routed,
// the message is refused there (550 5.7.1) instead of bounced later.
type HeaderRouter interface {
	Router
	// HasHeaderRules reports whether any route looks at the header; when
	// none does, RCPT has settled everything and the header is not read.
	HasHeaderRules() bool
	// RoutesMessage reports whether some route takes some of rcpts, given
	// the header as stored (the gateway's Received field, then the client's
	// header block, then the empty line that ends it). It must decide as
	// the parse stage will.
	RoutesMessage(rcpts []string, sender, identity string, header []byte) bool
}

// Observer receives the events metrics are made of. Methods must be cheap
// and safe for concurrent use.
type Observer interface {
	Connection(listener, outcome string)
	SessionEnd(listener string, tls bool, auth string)
	Reply(command string, code int)
	Accepted(env *postern.Envelope, d time.Duration)
	AuthFailure(identity string)
	RateLimited(identity string)
	// AcceptError is one failed accept on a listener (it is retried).
	AcceptError(listener string)
}

type noObserver struct{}

func (noObserver) Connection(string, string)                 {}
func (noObserver) SessionEnd(string, bool, string)           {}
func (noObserver) Reply(string, int)                         {}
func (noObserver) Accepted(*postern.Envelope, time.Duration) {}
func (noObserver) AuthFailure(string)                        {}
func (noObserver) RateLimited(string)                        {}
func (noObserver) AcceptError(string)                        {}

// Identity is a client the gateway recognises: by password (AUTH), by
// source network, or both (then the password is required and the networks
// restrict where it may be used).
type Identity struct {
	Name         string
	Username     string // AUTH username; "" means the identity cannot AUTH
	PasswordHash []byte // bcrypt
	Networks     []netip.Prefix
	// AllowPlaintext lets this identity's clients send (and AUTH) without TLS.
	AllowPlaintext bool
	// AllowSender and AllowRecipient check envelope addresses; nil allows any.
	AllowSender    func(addr string) bool
	AllowRecipient func(addr string) bool
	// Senders, when set, refuses senders no route could deliver (550
	// 5.7.1 at MAIL, or at RCPT for a recipient whose route cannot).
	Senders SenderPolicy
	// Per-identity limits; zero means the server's. Limiter (shared by all
	// listeners) bounds messages per minute; nil means none.
	MaxMessageBytes int64
	MaxRecipients   int
	Limiter         *rate.Limiter
	// Transcript logs this identity's commands and replies (AUTH payloads
	// redacted, no bodies), to debug one device.
	Transcript bool
	// Internet marks an identity that takes mail from the open internet:
	// on a listener with DMARCReject its mail is checked before it is kept.
	Internet bool
}

// Mode is a listener's kind.
type Mode string

const (
	ModeSMTP       Mode = "smtp"       // plain with STARTTLS (port 25 style)
	ModeSubmission Mode = "submission" // STARTTLS, AUTH required (587 style)
	ModeSMTPS      Mode = "smtps"      // implicit TLS (465 style)
)

// Config holds the server's settings; every limit is explicit.
type Config struct {
	Hostname        string
	Listener        string // listener name, recorded in the envelope
	Mode            Mode
	TLS             *tls.Config // nil: no STARTTLS (and no smtps)
	MaxMessageBytes int64
	MaxRecipients   int
	MaxLineLength   int
	CommandTimeout  time.Duration // per read while waiting for a command
	DataTimeout     time.Duration // per read during DATA
	StoreTimeout    time.Duration

	MaxSessions      int
	MaxSessionsPerIP int
	MaxAuthFailures  int
	AuthFailures     *AuthFailures // shared across listeners; nil: per server
	AuthTarpit       time.Duration // delay per recent failure; default 1s
	MaxHeaderBytes   int64
	MaxReceived      int

	// ProxyTrusted lists the load balancers whose connections start with a
	// PROXY protocol (v1 or v2) header naming the real client. Connections
	// from them must carry one; a header from anyone else is refused, so no
	// client can claim another's address.
	ProxyTrusted []netip.Prefix

	// Observer gets metrics events; nil means none.
	Observer Observer

	// StorageLow reports that the gateway cannot promise to keep more mail
	// (free disk under limits.min_free_bytes): MAIL is then answered 452
	// 4.3.1 and the client retries later. It is called once per MAIL, so it
	// must be cheap (cached). nil means never.
	StorageLow func() bool

	// DMARCReject, when set, refuses at the end of DATA internet mail that
	// fails DMARC under p=reject (see DMARCReject); nil checks nothing.
	DMARCReject *DMARCReject
}

// Server serves SMTP on one listener.
type Server struct {
	cfg        Config
	identities []Identity
	router     Router
	ingest     Ingester
	log        *slog.Logger
	smtp       *smtp.Server
	gate       *gate
	front      *frontConfig
	authFails  *AuthFailures
	dummyHash  []byte // checked for unknown AUTH users (dummyHashFor)
	now        func() time.Time
	accept     *acceptStatus
	mu         sync.Mutex // guards real and stopped
	real       *retryListener
	stopped    bool         // the real listener is closed (or Serve must not start)
	uploads    atomic.Int64 // transactions between DATA and their reply
	lastUpload atomic.Int64 // unix nanoseconds of the latest DATA
}

// New returns a server; call Serve to run it.
func New(cfg Config, identities []Identity, router Router, ingest Ingester, log *slog.Logger) *Server {
	if cfg.Mode == "" {
		cfg.Mode = ModeSMTP
	}
	if cfg.AuthTarpit <= 0 {
		cfg.AuthTarpit = time.Second
	}
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = 5
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	if d := cfg.DMARCReject; d != nil {
		if d.Resolver == nil {
			panic("smtpd.New: DMARCReject needs a Resolver")
		}
		c := *d
		if c.Timeout <= 0 {
			c.Timeout = DefaultDMARCTimeout
		}
		cfg.DMARCReject = &c
	}
	s := &Server{cfg: cfg, identities: identities, router: router, ingest: ingest, log: log, now: time.Now, authFails: cfg.AuthFailures}
	if s.authFails == nil {
		s.authFails = NewAuthFailures(cfg.MaxAuthFailures, 15*time.Minute)
	}
	s.dummyHash = dummyHashFor(identities)
	s.gate = newGate(s)
	s.accept = newAcceptStatus(cfg.Listener, log, cfg.Observer.AcceptError)
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = cfg.MaxLineLength
	// The front (frontConn) sets every read deadline itself; go-smtp's
	// ReadTimeout is ignored there. WriteTimeout bounds each reply.
	srv.ReadTimeout = cfg.CommandTimeout
	srv.WriteTimeout = cfg.CommandTimeout
	// AUTH without TLS is decided per client (session.authAllowed), so that
	// legacy devices on an allowed network can use it and nobody else.
	srv.AllowInsecureAuth = true
	// RFC 3461: NOTIFY, ORCPT, RET and ENVID are recorded in the envelope
	// and honoured by the dsn stage.
	srv.EnableDSN = true
	// RFC 6531: UTF-8 addresses are carried through (and DSNs for them use
	// the RFC 6533 types).
	srv.EnableSMTPUTF8 = true
	// TLS (STARTTLS and implicit) is run by the front, below go-smtp, so
	// go-smtp is given none.
	srv.ErrorLog = errorLog{log}
	s.front = &frontConfig{hostname: cfg.Hostname, cmdTimeout: cfg.CommandTimeout, dataTimeout: cfg.DataTimeout,
		maxLine: cfg.MaxLineLength, observe: cfg.Observer.Reply}
	if cfg.Mode != ModeSMTPS {
		s.front.tls = cfg.TLS
	}
	s.smtp = srv
	return s
}

// Serve accepts connections on l until Shutdown or Close.
// A failed accept (out of file descriptors, say) never ends it: it is
// retried with backoff, logged, counted and reported by Accepting.
func (s *Server) Serve(l net.Listener) error {
	if s.cfg.Mode == ModeSMTPS && s.cfg.TLS == nil {
		return fmt.Errorf("smtpd: listener %s is smtps but has no TLS configuration", s.cfg.Listener)
	}
	rl := newRetryListener(l, s.accept)
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.real = rl
	s.mu.Unlock()
	l = rl
	if len(s.cfg.ProxyTrusted) > 0 {
		l = s.proxyListen(l)
	}
	return s.smtp.Serve(s.gate.listen(l, s.cfg.Mode == ModeSMTPS))
}

// sessionsEndWait bounds how long WaitDrained waits, once its context has
// ended, for the sessions it cut off to go.
const sessionsEndWait = 2 * time.Second

// Drain stops taking mail at once: new clients get 421 4.3.2 and idle
// sessions are ended; sessions in DATA go on. The listener stays open,
// answering 421, until Shutdown or Close. To stop several servers together,
// Drain each, then WaitDrained each, then Close each: none refuses
// connections while another still drains.
func (s *Server) Drain() { s.gate.drain() }

// WaitDrained drains, lets sessions in DATA finish until ctx ends, then ends
// any still open (their clients get no reply and retry). It returns within
// sessionsEndWait of ctx's end whatever clients do, and once every session
// has ended (its last log line written) unless one outlives that too. The
// listener stays open, answering 421, until Close.
func (s *Server) WaitDrained(ctx context.Context) error {
	s.gate.drain()
	// go-smtp's Shutdown returns when every connection's goroutine has
	// finished; it is given no deadline of its own, so that the wait goes
	// on after the sessions are cut off below. It does not close the real
	// listener: the gate keeps answering 421 on it.
	done := make(chan error, 1)
	go func() { done <- s.smtp.Shutdown(context.Background()) }()
	var err error
	finished := false
	select {
	case err = <-done:
		finished = true
	case <-ctx.Done():
		err = ctx.Err()
		s.gate.end()
	}
	t := time.NewTimer(sessionsEndWait)
	defer t.Stop()
	if !finished {
		select {
		case <-done:
		case <-t.C:
			s.log.Warn("sessions still open after shutdown", slog.String("stage", "gateway"),
				slog.String("listener", s.cfg.Listener), slog.Int("sessions", s.gate.sessions()))
			return err
		}
	}
	// go-smtp runs a BDAT session's Data in a goroutine it does not wait
	// for: wait for the uploads too, so nothing feeds the ingester after.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.uploads.Load() > 0 {
		select {
		case <-tick.C:
		case <-t.C:
			s.log.Warn("uploads still running after shutdown", slog.String("stage", "gateway"),
				slog.String("listener", s.cfg.Listener), slog.Int64("uploads", s.uploads.Load()))
			return err
		}
	}
	return err
}

// Shutdown is WaitDrained, then closes the listener.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.WaitDrained(ctx)
	s.closeReal()
	return err
}

// Close stops at once: every session is ended, in DATA or not, and Close
// returns once they are gone (their last log line written), or after
// sessionsEndWait.
func (s *Server) Close() error {
	over, cancel := context.WithCancel(context.Background())
	cancel()
	s.WaitDrained(over)
	s.closeReal()
	return nil
}

func (s *Server) closeReal() {
	s.mu.Lock()
	s.stopped = true
	rl := s.real
	s.mu.Unlock()
	if rl != nil {
		rl.Close()
	}
}

// Accepting reports whether the listener takes connections: an error
// naming the listener when its accepts have been failing for more than a
// second (they are retried; see Serve).
func (s *Server) Accepting() error { return s.accept.err() }

// Sessions returns the number of open sessions.
func (s *Server) Sessions() int { return s.gate.sessions() }

// Uploads returns the number of messages being received right now (DATA
// sent, reply not yet given) and when the latest DATA began.
func (s *Server) Uploads() (int, time.Time) {
	return int(s.uploads.Load()), time.Unix(0, s.lastUpload.Load())
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	front, ok := c.Conn().(*frontConn)
	if !ok {
		return nil, reply(421, smtp.EnhancedCode{4, 3, 0}, "Internal error")
	}
	tc := front.tc
	ap, _ := netip.ParseAddrPort(tc.RemoteAddr().String())
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		srv:    s,
		conn:   c,
		front:  front,
		tc:     tc,
		ip:     tc.ip,
		port:   int(ap.Port()),
		ctx:    ctx,
		cancel: cancel,
		log:    s.log.With(slog.String("client_ip", tc.ip.String()), slog.String("listener", s.cfg.Listener)),
	}, nil
}

// networkIdentity is the identity a client is by its address alone: the
// first password-less identity whose networks contain ip.
func (s *Server) networkIdentity(ip netip.Addr) *Identity {
	for i := range s.identities {
		id := &s.identities[i]
		if id.Username == "" && containsIP(id.Networks, ip) {
			return id
		}
	}
	return nil
}

func (s *Server) identityByUser(user string) *Identity {
	var found *Identity
	for i := range s.identities {
		id := &s.identities[i]
		if id.Username != "" && equalUser(id.Username, user) && found == nil {
			found = id
		}
	}
	return found
}

// plaintextAllowed reports whether AUTH may be offered in clear to ip: some
// password identity that allows plaintext may log in from there (its
// networks contain ip, or it names none). Network identities do not count:
// they never AUTH.
func (s *Server) plaintextAllowed(ip netip.Addr) bool {
	for i := range s.identities {
		id := &s.identities[i]
		if id.Username != "" && id.AllowPlaintext && loginCovers(id, ip) {
			return true
		}
	}
	return false
}

// errorLog routes go-smtp's own messages to slog: accept errors and panics
// at error; a connection that ended with an error (go-smtp's "error
// handling" line) at debug when the peer just went away (a balancer's
// health probe, a client that hung up) and at info otherwise (a failed TLS
// handshake, say): the client's trouble, not the gateway's.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	level := slog.LevelError
	if strings.HasPrefix(format, "error handling ") && len(v) == 2 {
		level = slog.LevelInfo
		if err, ok := v[1].(error); ok && peerGone(err) {
			level = slog.LevelDebug
		}
	}
	e.log.Log(context.Background(), level, fmt.Sprintf(format, v...), slog.String("stage", "gateway"))
}

func (e errorLog) Println(v ...any) { e.log.Error(fmt.Sprint(v...), slog.String("stage", "gateway")) }

// peerGone reports whether err says the other end closed or reset the
// connection.
func peerGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}
