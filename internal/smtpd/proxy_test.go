package smtpd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/postern/postern/internal/logbuf"
)

func TestProxyProtocolFromTrustedBalancer(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	ids := []Identity{{Name: "branch-office", Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, AllowPlaintext: true}}
	addr, _ := startWith(t, ids, ing, func(c *Config) { c.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "PROXY TCP4 192.0.2.10 203.0.113.5 40000 25\r\n")
	d := &dialog{t: t, c: c, r: bufio.NewReader(c)}
	d.expect("220")
	d.must("EHLO x", "250")
	d.must("MAIL FROM:<a@branch>", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	d.must("x\r\n.", "250")
	if got := ing.Envs()[0].ClientIP; got != "192.0.2.10" {
		t.Fatalf("client IP %s, want the one from the PROXY header", got)
	}

	// A trusted balancer's connection without a header is closed unserved:
	// the gateway must never mistake the balancer for the client.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(15 * time.Second))
	io.WriteString(c2, "EHLO x\r\n")
	all, err := io.ReadAll(c2)
	if len(all) > 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("headerless connection from a trusted balancer: read %q, %v; want it closed unanswered", all, err)
	}
}

// A direct client on a PROXY listener is refused at once: it is not left
// waiting for the header timeout, and a header it sends is never believed.
func TestProxyListenerRefusesUntrustedClientsAtOnce(t *testing.T) {
	t.Parallel()
	ing := &fakeIngest{}
	ids := append(loopback(), Identity{Name: "spoofed", Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, AllowPlaintext: true})
	addr, _ := startWith(t, ids, ing, func(c *Config) { c.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })

	// An SMTP client waits for the greeting: it hears 421 and the close
	// within a second.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("direct client not answered and closed within 1s: read %q, %v", all, err)
	}
	if !strings.HasPrefix(string(all), "421 4.7.0 ") || strings.Count(string(all), "\r\n") != 1 {
		t.Fatalf("direct client got %q, want one 421 4.7.0 line", all)
	}

	// A spoofed header is not read at all. (The gateway closes with the
	// client's bytes unread, so the client may see a reset instead of 421.)
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(time.Second))
	io.WriteString(c2, "PROXY TCP4 192.0.2.10 203.0.113.5 40000 25\r\nEHLO x\r\nMAIL FROM:<a@b>\r\n")
	all, err = io.ReadAll(c2)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("spoofing client not closed within 1s: read %q, %v", all, err)
	}
	if len(all) > 0 && !strings.HasPrefix(string(all), "421 4.7.0 ") || strings.Contains(string(all), "250") {
		t.Fatalf("spoofed PROXY header served:\n%s", all)
	}
	if len(ing.Envs()) != 0 {
		t.Fatal("a message was accepted")
	}
}

// watchHandler writes records as JSON into a buffer and reports their
// messages on a channel, so a test can wait for the event it expects.
type watchHandler struct {
	slog.Handler
	seen chan<- string
}

func (h watchHandler) Handle(ctx context.Context, r slog.Record) error {
	select {
	case h.seen <- r.Message:
	default:
	}
	return h.Handler.Handle(ctx, r)
}

func (h watchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return watchHandler{h.Handler.WithAttrs(as), h.seen}
}

func (h watchHandler) WithGroup(name string) slog.Handler {
	return watchHandler{h.Handler.WithGroup(name), h.seen}
}

func waitLog(t *testing.T, seen <-chan string, part string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-seen:
			if strings.Contains(m, part) {
				return
			}
		case <-timeout:
			t.Fatalf("no log message containing %q", part)
		}
	}
}

// logLevels returns the levels of the JSON log lines in buf.
func logLevels(t *testing.T, buf *logbuf.Buffer) []string {
	t.Helper()
	var levels []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		levels = append(levels, rec.Level)
	}
	return levels
}

// rst closes c with a reset, as many balancers end their probes.
func rst(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// An AWS NLB probes every few seconds: its probes (a connect and close
// without a header, or a PROXY v2 LOCAL header) are logged at debug only.
func TestProxyHealthProbesAreNotErrors(t *testing.T) {
	t.Parallel()
	var buf logbuf.Buffer
	seen := make(chan string, 256)
	log := slog.New(watchHandler{slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), seen})
	cfg := testConfig()
	cfg.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	srv := New(cfg, loopback(), routerFunc(func(string, string, string) bool { return true }), &fakeIngest{}, log)
	addr := serve(t, srv)
	dialProbe := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}

	// Connect and close, with a FIN and with a reset.
	dialProbe().Close()
	waitLog(t, seen, "health probe")
	rst(t, dialProbe())
	waitLog(t, seen, "health probe")

	// A v2 LOCAL header: served as the balancer itself (here a plaintext
	// network identity, as a probe expecting a banner would want), then
	// dropped with a reset, or closed at once.
	local, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	if err != nil {
		t.Fatal(err)
	}
	c := dialProbe()
	c.Write(local)
	d := &dialog{t: t, c: c, r: bufio.NewReader(c)}
	d.expect("220")
	d.must("EHLO probe", "250")
	waitLog(t, seen, "PROXY LOCAL")
	rst(t, c)
	c = dialProbe()
	c.Write(local)
	c.Close()
	waitLog(t, seen, "PROXY LOCAL")

	// Shutdown returns once every session, and go-smtp's logging of how it
	// ended, is done.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, level := range logLevels(t, &buf) {
		if level != "DEBUG" && level != "INFO" {
			t.Fatalf("health probes logged at %s:\n%s", level, buf.String())
		}
	}
}

func TestErrorLogLevels(t *testing.T) {
	t.Parallel()
	var buf logbuf.Buffer
	e := errorLog{slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	peer := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	e.Printf("error handling %v: %s", peer, reset)
	e.Printf("error handling %v: %s", peer, io.EOF)
	e.Printf("error handling %v: %s", peer, errors.New("tls: first record does not look like a TLS handshake"))
	e.Printf("accept error: %s; retrying in %s", errors.New("too many open files"), time.Second)
	e.Printf("panic serving %v: %v\n%s", peer, "boom", "stack")
	got := strings.Join(logLevels(t, &buf), " ")
	if want := "DEBUG DEBUG INFO ERROR ERROR"; got != want {
		t.Fatalf("levels %s, want %s:\n%s", got, want, buf.String())
	}
}
