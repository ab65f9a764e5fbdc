package smtpd

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"
)

// proxyHeaderTimeout bounds how long a trusted balancer may take to send
// its PROXY header. Balancers send it at once; a connection that waits this
// long is not speaking the protocol.
const proxyHeaderTimeout = 10 * time.Second

// proxyListener is a listener whose connections come through load
// balancers speaking the PROXY protocol (v1 or v2).
//
//   - A connection from an address that is no trusted balancer is refused at
//     once with 421 4.7.0 (just closed on an implicit-TLS listener), never
//     served: on such a listener a direct client is a misconfiguration or a
//     probe around the balancer, and waiting for a header it will never send
//     would leave it unanswered for proxyHeaderTimeout. Postfix's postscreen
//     with postscreen_upstream_proxy_protocol drops such connections too;
//     the 421 also tells a misrouted device's log why.
//   - A trusted balancer's connection must open with a header. It is read
//     in a goroutine of its own, never in the accept loop, before the
//     connection reaches the gate, so the gate and go-smtp only ever see the
//     real client. A connection that closes without sending anything is a
//     health probe and is logged at debug; one that sends something else,
//     or nothing for proxyHeaderTimeout, is a misconfigured balancer and is
//     logged as a warning. A v2 LOCAL header (a health check, which the
//     specification says to serve as the balancer itself) is logged at debug
//     and served.
type proxyListener struct {
	net.Listener // the real listener
	srv          *Server
	conns        chan net.Conn // connections with their header read
	errc         chan error    // the real listener's failure, kept for every Accept
	done         chan struct{} // closed when the accept loop ends
}

func (s *Server) proxyListen(l net.Listener) *proxyListener {
	pl := &proxyListener{Listener: l, srv: s, conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	go pl.loop()
	return pl
}

func (pl *proxyListener) loop() {
	defer close(pl.done)
	for {
		// The listener below is Serve's retryListener: it fails only once
		// closed.
		c, err := pl.Listener.Accept()
		if err != nil {
			pl.errc <- err
			return
		}
		if pl.srv.proxyPolicy(c.RemoteAddr()) != proxyproto.REQUIRE {
			go pl.refuse(c)
			continue
		}
		go pl.readHeader(c)
	}
}

// Accept returns the next connection whose header has been read.
func (pl *proxyListener) Accept() (net.Conn, error) {
	select {
	case c := <-pl.conns:
		return c, nil
	case err := <-pl.errc:
		pl.errc <- err
		return nil, err
	}
}

func (pl *proxyListener) refuse(c net.Conn) {
	srv := pl.srv
	srv.cfg.Observer.Connection(srv.cfg.Listener, "proxy_untrusted")
	srv.log.Debug("connection refused: not from a trusted PROXY balancer", slog.String("stage", "gateway"),
		slog.String("listener", srv.cfg.Listener), slog.String("peer", c.RemoteAddr().String()))
	if srv.cfg.Mode != ModeSMTPS {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(c, "421 4.7.0 Service not available, closing transmission channel\r\n")
	}
	c.Close()
}

func (pl *proxyListener) readHeader(raw net.Conn) {
	srv := pl.srv
	sc := &sniffConn{Conn: raw}
	pc := proxyproto.NewConn(sc, proxyproto.WithPolicy(proxyproto.REQUIRE), proxyproto.SetReadHeaderTimeout(proxyHeaderTimeout))
	log := srv.log.With(slog.String("stage", "gateway"), slog.String("listener", srv.cfg.Listener),
		slog.String("peer", raw.RemoteAddr().String()))
	h := pc.ProxyHeader()
	if h == nil {
		// Read returns the error reading the header met.
		_, err := pc.Read(nil)
		if sc.n == 0 && (errors.Is(sc.err, io.EOF) || errors.Is(sc.err, syscall.ECONNRESET)) {
			srv.cfg.Observer.Connection(srv.cfg.Listener, "proxy_probe")
			log.Debug("balancer connection closed without a PROXY header (health probe)")
		} else {
			srv.cfg.Observer.Connection(srv.cfg.Listener, "proxy_no_header")
			log.Warn("balancer connection without a valid PROXY header, closed", slog.Any("error", err))
		}
		raw.Close()
		return
	}
	if h.Command.IsLocal() {
		log.Debug("PROXY LOCAL header (health check), served as the balancer itself")
	}
	select {
	case pl.conns <- pc:
	case <-pl.done:
		raw.Close()
	}
}

// proxyPolicy says how a connection on a PROXY listener is treated: one
// from a trusted balancer must carry a header; any other is refused
// (proxyListener), so no client can claim another's address and none waits
// for a header it will never send.
func (s *Server) proxyPolicy(upstream net.Addr) proxyproto.Policy {
	ap, err := netip.ParseAddrPort(upstream.String())
	if err == nil && containsIP(s.cfg.ProxyTrusted, ap.Addr().Unmap()) {
		return proxyproto.REQUIRE
	}
	return proxyproto.REJECT
}

// sniffConn notes what reading a PROXY header met on the raw connection:
// how many bytes, and the last error.
type sniffConn struct {
	net.Conn
	n   int64
	err error
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n += int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}
