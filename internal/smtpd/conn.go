package smtpd

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// trackedConn sits under go-smtp (and under TLS) for one client. It turns
// go-smtp's read timeout into a per-read one, so a slow but progressing DATA
// upload is never cut off by a whole-transfer deadline, while an idle or
// stalled client still is; and it lets the server end idle sessions when it
// drains.
type trackedConn struct {
	net.Conn
	ip       netip.Addr
	cmdIdle  time.Duration
	dataIdle time.Duration
	inData   atomic.Bool
	killed   atomic.Bool
	release  func()
	once     sync.Once
}

var errKilled = &timeoutError{}

// timeoutError makes go-smtp answer 421 and close, as for an idle client.
type timeoutError struct{}

func (*timeoutError) Error() string   { return "session ended by the server" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return false }

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.killed.Load() {
		return 0, errKilled
	}
	idle := c.cmdIdle
	if c.inData.Load() {
		idle = c.dataIdle
	}
	c.Conn.SetReadDeadline(time.Now().Add(idle))
	n, err := c.Conn.Read(p)
	if err != nil && c.killed.Load() {
		return n, errKilled
	}
	return n, err
}

// SetReadDeadline is ignored: Read sets a fresh deadline before every read.
func (c *trackedConn) SetReadDeadline(time.Time) error { return nil }

func (c *trackedConn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

// kill ends the session at its next (or current) read.
func (c *trackedConn) kill() {
	c.killed.Store(true)
	c.Conn.SetReadDeadline(time.Now())
}

func (c *trackedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// underlying finds our trackedConn below a go-smtp connection (which may be
// a TLS connection after STARTTLS or on an implicit-TLS listener).
func underlying(c net.Conn) *trackedConn {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, _ := c.(*trackedConn)
	return tc
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
}

func (g *gate) listen(l net.Listener, implicitTLS bool) *gateListener {
	gl := &gateListener{Listener: l, g: g, implicit: implicitTLS, accepted: make(chan net.Conn), done: make(chan struct{}), errc: make(chan error, 1)}
	go gl.loop()
	return gl
}

func (gl *gateListener) loop() {
	for {
		c, err := gl.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
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
	select {
	case gl.accepted <- tc:
	case <-gl.done:
		tc.Close()
		gl.refuse(c, "421 4.3.2 Service shutting down, try again later")
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

// Close is go-smtp's Shutdown/Close: stop handing connections over; the
// loop goes on refusing them until the real listener is closed.
func (gl *gateListener) Close() error {
	gl.closed.Do(func() { close(gl.done) })
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
	tc := &trackedConn{Conn: c, ip: ip, cmdIdle: cfg.CommandTimeout, dataIdle: cfg.DataTimeout}
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
