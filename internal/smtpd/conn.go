package smtpd

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// trackedConn is one client's TCP connection, under TLS and the front
// (frontConn, which sets its read deadlines). It lets the server end idle
// sessions when it drains, and gives the session slot back on Close.
type trackedConn struct {
	net.Conn
	ip      netip.Addr
	inData  atomic.Bool // a message is being received: draining waits for it
	killed  atomic.Bool
	release func()
	once    sync.Once
}

var errKilled = &timeoutError{}

// timeoutError ends the session as a timeout would.
type timeoutError struct{}

func (*timeoutError) Error() string   { return "session ended by the server" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return false }

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.killed.Load() {
		return 0, errKilled
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.killed.Load() {
		return n, errKilled
	}
	return n, err
}

// SetReadDeadline keeps a killed connection's deadline in the past, so a
// deadline set after kill cannot revive it.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	err := c.Conn.SetReadDeadline(t)
	if c.killed.Load() {
		return c.Conn.SetReadDeadline(time.Now())
	}
	return err
}

// kill ends the session at its next (or current) read.
func (c *trackedConn) kill() {
	c.killed.Store(true)
	c.Conn.SetReadDeadline(time.Now())
}

func (c *trackedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// gate admits connections: it bounds sessions in total and per IP and
// answers 421 while draining. (An address locked out of AUTH may still
// connect: see AuthFailures.) It keeps the real listener open while
// draining, so new clients hear "shutting down" rather than a refused
// connection.
type gate struct {
	srv      *Server
	mu       sync.Mutex
	perIP    map[netip.Addr]int
	total    int
	conns    map[*trackedConn]struct{}
	draining bool
}

func newGate(srv *Server) *gate {
	return &gate{srv: srv, perIP: map[netip.Addr]int{}, conns: map[*trackedConn]struct{}{}}
}

// listener wraps l for go-smtp. Close stops handing connections to go-smtp
// but not the real listener, which keeps answering 421 until stop.
type gateListener struct {
	net.Listener
	g        *gate
	implicit bool // TLS starts at once: no plaintext 421 can be written
	accepted chan net.Conn
	done     chan struct{}
	closed   sync.Once
	errc     chan error

	// go-smtp counts a connection (WaitGroup.Add) after Accept returns it,
	// and its Shutdown waits on that count once Close returns: a handover
	// in between races the wait. mu guards the two flags below; handover
	// is broadcast when either clears. Close sets shut, after which Accept
	// hands nothing over, and returns once neither flag is set.
	mu       sync.Mutex
	handover *sync.Cond
	shut     bool
	// inAccept: an Accept is running and may yet return a connection.
	// handed: Accept returned one and go-smtp has not called Accept
	// again, which it does only after counting it.
	inAccept, handed bool
}

func (g *gate) listen(l net.Listener, implicitTLS bool) *gateListener {
	gl := &gateListener{Listener: l, g: g, implicit: implicitTLS, accepted: make(chan net.Conn), done: make(chan struct{}), errc: make(chan error, 1)}
	gl.handover = sync.NewCond(&gl.mu)
	go gl.loop()
	return gl
}

// loop takes connections from the listener below, a retryListener (or a
// proxyListener over one), which retries every failure itself: an error
// here means the listener is closed, and it is handed to every Accept.
func (gl *gateListener) loop() {
	for {
		c, err := gl.Listener.Accept()
		if err != nil {
			gl.errc <- err
			return
		}
		// Admission may read a PROXY protocol header, which a slow peer could
		// hold up: never in the accept loop.
		go gl.admit(c)
	}
}

func (gl *gateListener) admit(c net.Conn) {
	tc, outcome, reason := gl.g.admit(c)
	gl.g.srv.cfg.Observer.Connection(gl.g.srv.cfg.Listener, outcome)
	if tc == nil {
		gl.refuse(c, reason)
		return
	}
	srv := gl.g.srv
	log := srv.log.With(slog.String("client_ip", tc.ip.String()), slog.String("listener", srv.cfg.Listener))
	var conn net.Conn = tc
	if gl.implicit {
		// Implicit TLS (port 465 style): the handshake comes first, bounded
		// like a command.
		t := tls.Server(tc, srv.cfg.TLS)
		tc.SetDeadline(time.Now().Add(srv.cfg.CommandTimeout))
		if err := t.Handshake(); err != nil {
			log.Info("TLS handshake failed", slog.String("stage", "gateway"), slog.String("error", err.Error()))
			tc.Close()
			return
		}
		tc.SetDeadline(time.Time{})
		conn = t
	}
	front := newFront(tc, conn, srv.front, log)
	select {
	case gl.accepted <- front:
	case <-gl.done:
		if !gl.implicit {
			gl.refuse(c, "421 4.3.2 Service shutting down, try again later")
		}
		front.Close()
	}
}

func (gl *gateListener) refuse(c net.Conn, reply string) {
	if !gl.implicit {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte(reply + "\r\n"))
	}
	c.Close()
}

// Accept hands admitted connections to go-smtp.
func (gl *gateListener) Accept() (net.Conn, error) {
	gl.mu.Lock()
	gl.handed = false // go-smtp is back: it has counted the last one
	if gl.shut {
		gl.handover.Broadcast()
		gl.mu.Unlock()
		return nil, net.ErrClosed
	}
	gl.inAccept = true
	gl.mu.Unlock()
	c, err := gl.next()
	gl.mu.Lock()
	gl.inAccept = false
	late := c != nil && gl.shut
	gl.handed = c != nil && !late
	gl.handover.Broadcast()
	gl.mu.Unlock()
	if late {
		// Closed meanwhile: go-smtp may be waiting on its count already.
		if !gl.implicit {
			gl.refuse(c, "421 4.3.2 Service shutting down, try again later")
		}
		c.Close()
		return nil, net.ErrClosed
	}
	return c, err
}

func (gl *gateListener) next() (net.Conn, error) {
	select {
	case c := <-gl.accepted:
		return c, nil
	case <-gl.done:
		return nil, net.ErrClosed
	case err := <-gl.errc:
		gl.errc <- err
		return nil, err
	}
}

// handoverWait bounds how long Close waits for go-smtp to count a
// connection it was handed; it takes microseconds unless go-smtp's accept
// loop has stopped.
const handoverWait = time.Second

// Close is go-smtp's Shutdown/Close: stop handing connections over; the
// loop goes on refusing them until the real listener is closed. It
// returns once no handover is under way (see gateListener.mu).
func (gl *gateListener) Close() error {
	gl.closed.Do(func() { close(gl.done) })
	gl.mu.Lock()
	defer gl.mu.Unlock()
	gl.shut = true
	expired := false
	t := time.AfterFunc(handoverWait, func() {
		gl.mu.Lock()
		expired = true
		gl.handover.Broadcast()
		gl.mu.Unlock()
	})
	defer t.Stop()
	for (gl.inAccept || gl.handed) && !expired {
		gl.handover.Wait()
	}
	return nil
}

// admit decides on a new connection: the tracked connection, or nil and
// the outcome label and reply for refusing it.
func (g *gate) admit(c net.Conn) (*trackedConn, string, string) {
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	ip := ap.Addr().Unmap()
	cfg := g.srv.cfg
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.draining:
		return nil, "draining", "421 4.3.2 Service shutting down, try again later"
	case cfg.MaxSessions > 0 && g.total >= cfg.MaxSessions:
		return nil, "max_sessions", "421 4.7.0 Too many connections, try again later"
	case cfg.MaxSessionsPerIP > 0 && g.perIP[ip] >= cfg.MaxSessionsPerIP:
		return nil, "max_sessions_per_ip", "421 4.7.0 Too many connections from your address, try again later"
	}
	g.total++
	g.perIP[ip]++
	tc := &trackedConn{Conn: c, ip: ip}
	g.conns[tc] = struct{}{}
	tc.release = func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.total--
		if g.perIP[ip]--; g.perIP[ip] <= 0 {
			delete(g.perIP, ip)
		}
		delete(g.conns, tc)
	}
	return tc, "accepted", ""
}

// drain refuses new sessions and ends idle ones; sessions in DATA finish.
func (g *gate) drain() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.draining = true
	for tc := range g.conns {
		if !tc.inData.Load() {
			tc.kill()
		}
	}
}

// end ends every session, in DATA or not, when the drain's time is up:
// reads fail at once and the connections are closed.
func (g *gate) end() {
	g.mu.Lock()
	conns := make([]*trackedConn, 0, len(g.conns))
	for tc := range g.conns {
		conns = append(conns, tc)
	}
	g.mu.Unlock()
	for _, tc := range conns {
		tc.kill()
		tc.Conn.Close() // not tc.Close: the session's own Close releases the slot
	}
}

func (g *gate) sessions() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

func (g *gate) isDraining() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.draining
}
