// Package smtpd is Postern's SMTP front door on github.com/emersion/go-smtp:
// it decides who may send what, streams DATA into durable storage through an
// Ingester, and answers 250 only after the message is stored and queued.
package smtpd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/emersion/go-smtp"

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

// Identity is a client the gateway recognises.
type Identity struct {
	Name     string
	Networks []netip.Prefix
	// AllowSender and AllowRecipient check envelope addresses; nil allows any.
	AllowSender    func(addr string) bool
	AllowRecipient func(addr string) bool
}

// Config holds the server's settings; every limit is explicit.
type Config struct {
	Hostname        string
	Listener        string // listener name, recorded in the envelope
	MaxMessageBytes int64
	MaxRecipients   int
	MaxLineLength   int
	CommandTimeout  time.Duration
	DataTimeout     time.Duration
	StoreTimeout    time.Duration
}

// Server serves SMTP on one listener.
type Server struct {
	cfg        Config
	identities []Identity
	router     Router
	ingest     Ingester
	log        *slog.Logger
	smtp       *smtp.Server
	now        func() time.Time
}

// New returns a server; call Serve to run it.
func New(cfg Config, identities []Identity, router Router, ingest Ingester, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, identities: identities, router: router, ingest: ingest, log: log, now: time.Now}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = cfg.MaxLineLength
	// go-smtp applies ReadTimeout per command line, and to the whole DATA
	// upload; the larger of the two keeps a slow but progressing upload alive.
	srv.ReadTimeout = max(cfg.CommandTimeout, cfg.DataTimeout)
	srv.WriteTimeout = cfg.CommandTimeout
	srv.AllowInsecureAuth = false
	srv.ErrorLog = errorLog{log}
	s.smtp = srv
	return s
}

// Serve accepts connections on l until Close or Shutdown.
func (s *Server) Serve(l net.Listener) error { return s.smtp.Serve(l) }

// Shutdown stops accepting and waits for open sessions until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.smtp.Shutdown(ctx) }

// Close stops at once.
func (s *Server) Close() error { return s.smtp.Close() }

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	ap, _ := netip.ParseAddrPort(c.Conn().RemoteAddr().String())
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		srv:    s,
		conn:   c,
		ip:     ap.Addr().Unmap(),
		port:   int(ap.Port()),
		ctx:    ctx,
		cancel: cancel,
		log:    s.log.With(slog.String("client_ip", ap.Addr().Unmap().String())),
	}, nil
}

func (s *Server) identityFor(ip netip.Addr) *Identity {
	for i := range s.identities {
		for _, p := range s.identities[i].Networks {
			if p.Contains(ip) {
				return &s.identities[i]
			}
		}
	}
	return nil
}

// errorLog routes go-smtp's own messages (accept errors, panics) to slog.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Error(fmt.Sprintf(format, v...), slog.String("stage", "gateway"))
}
func (e errorLog) Println(v ...any) { e.log.Error(fmt.Sprint(v...), slog.String("stage", "gateway")) }
