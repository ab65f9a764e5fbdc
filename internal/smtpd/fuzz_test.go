package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzHeaderScanner: whatever the client sends, the scanner passes bytes
// through unchanged or stops with one of its own errors, and never panics.
func FuzzHeaderScanner(f *testing.F) {
	f.Add([]byte("Received: a\r\nReceived: b\r\nSubject: x\r\n\r\nbody"), int64(64), 1)
	f.Add([]byte("\r\n"), int64(1024), 0)
	f.Add([]byte("received:\nreceived:\n\n"), int64(10), 1)
	f.Fuzz(func(t *testing.T, data []byte, maxHeader int64, maxReceived int) {
		h := &headerScanner{r: bytes.NewReader(data), maxHeader: maxHeader, maxReceived: maxReceived}
		out, err := io.ReadAll(h)
		if err != nil {
			if !errors.Is(err, errHeaderTooBig) && !errors.Is(err, errLoop) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !bytes.Equal(out, data) {
			t.Fatal("bytes changed in transit")
		}
	})
}

// FuzzLoginServer: AUTH LOGIN exchanges with arbitrary payloads end in at
// most three steps and never call the authenticator with more than it was
// given.
func FuzzLoginServer(f *testing.F) {
	f.Add([]byte("user"), []byte("pass"), true)
	f.Add([]byte{}, []byte{0}, false)
	f.Fuzz(func(t *testing.T, user, pass []byte, initial bool) {
		var gotUser, gotPass string
		calls := 0
		l := &loginServer{auth: func(u, p string) error { calls++; gotUser, gotPass = u, p; return nil }}
		var resp []byte
		if initial {
			resp = user
		}
		steps := 0
		for {
			steps++
			ch, done, err := l.Next(resp)
			if err != nil || done {
				break
			}
			switch string(ch) {
			case "Username:":
				resp = user
			case "Password:":
				resp = pass
			default:
				t.Fatalf("unexpected challenge %q", ch)
			}
			if steps > 3 {
				t.Fatal("LOGIN exchange does not end")
			}
		}
		if calls != 1 || gotUser != string(user) || gotPass != string(pass) {
			t.Fatalf("auth called %d times with %q/%q", calls, gotUser, gotPass)
		}
	})
}

// FuzzSession feeds arbitrary client bytes (commands, AUTH payloads, DATA,
// BDAT, PROXY-looking lines) to a live server, then closes its side and
// reads every reply until the server hangs up. The server must greet, end
// the session once the client has gone, never panic (go-smtp recovers a
// panic, logs "panic serving" and answers 421 4.3.0 Internal error), and
// store only messages it acknowledged: every stored message's id is in a
// "250 2.0.0 OK <id>" reply the client read, once.
func FuzzSession(f *testing.F) {
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@lan>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"))
	f.Add([]byte("EHLO x\r\nAUTH PLAIN AGEAYg==\r\nAUTH LOGIN\r\n*\r\nSTARTTLS\r\n"))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nHELO x\r\nRCPT TO:<>\r\nDATA\r\n"))
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@lan> SIZE=99999999999999999999 BODY=BINARYMIME\r\nBDAT 5 LAST\r\nhello"))
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@lan> BODY=BINARYMIME\r\nRCPT TO:<b@example.com>\r\nBDAT 4\r\nabcdBDAT 3 LAST\r\nefg"))
	f.Add([]byte("HELO x\r\nMAIL FROM:<a@lan>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nx\r\n.\r\nMAIL FROM:<a@lan>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n.\r\n"))
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@lan>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nReceived: a\r\nReceived: b\r\nReceived: c\r\n\r\n.\r\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		cfg := testConfig()
		cfg.AuthTarpit = time.Millisecond // AUTH lines must not make an input slow
		cfg.MaxHeaderBytes, cfg.MaxReceived = 4<<10, 2
		ing := &fakeIngest{}
		fs := startFuzzServer(t, cfg, loopback(), ing)
		replies := converse(t, fs.addr, input)
		logs := fs.stop(t)
		checkServerHealthy(t, replies, logs)
		if !strings.HasPrefix(replies, "220 ") {
			t.Fatalf("no greeting: %q", replies)
		}

		acked := map[string]int{}
		for line := range strings.Lines(replies) {
			if id, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "250 2.0.0 OK "); ok {
				acked[id]++
			}
		}
		for _, env := range ing.Envs() {
			id := string(env.ID)
			if acked[id] != 1 {
				t.Fatalf("stored message %s was acknowledged %d times; replies:\n%s", id, acked[id], replies)
			}
			delete(acked, id)
		}
		for id := range acked {
			t.Fatalf("acknowledged message %s was not stored; replies:\n%s", id, replies)
		}
	})
}

// fuzzServer is one server for one fuzz input, with what it logs kept.
type fuzzServer struct {
	srv  *Server
	addr string
	logs *recordHandler
}

// startFuzzServer serves on a loopback port; stop ends it. A server per
// input keeps inputs apart: after stop nothing of this input's sessions
// still runs or logs.
func startFuzzServer(t *testing.T, cfg Config, ids []Identity, ing Ingester) *fuzzServer {
	t.Helper()
	logs := &recordHandler{}
	router := routerFunc(func(string, string, string) bool { return true })
	srv := New(cfg, ids, router, ing, slog.New(logs))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	return &fuzzServer{srv: srv, addr: l.Addr().String(), logs: logs}
}

// stop shuts the server down, waiting for every session (and go-smtp's
// logging of how it ended), and returns the records logged.
func (fs *fuzzServer) stop(t *testing.T) []slog.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fs.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v (a session did not end)", err)
	}
	return fs.logs.all()
}

// converse sends input as a client would, closes the sending side and
// returns every byte the server sent until it closed the connection. A
// server that does not close within the deadline after the client's end
// fails the test.
func converse(t *testing.T, addr string, input []byte) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	// The server may stop reading (too many errors, a 421) before taking
	// all of input: writing fails then, which is fine.
	written := make(chan struct{})
	go func() {
		defer close(written)
		c.Write(input)
		c.Write([]byte("\r\nQUIT\r\n"))
		c.(*net.TCPConn).CloseWrite()
	}()
	var out bytes.Buffer
	_, err = io.Copy(&out, c)
	<-written
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not end the session within 15s of the client's end; it sent:\n%s", out.String())
	}
	// A reset (the server closed with input unread) ends the reading too;
	// what arrived before it is all there is.
	return out.String()
}

// checkServerHealthy fails on any sign of a recovered panic: go-smtp's
// "panic serving" log line, the 421 4.3.0 the front sends in its place, or
// any other record at ERROR.
func checkServerHealthy(t *testing.T, replies string, logs []slog.Record) {
	t.Helper()
	for _, r := range logs {
		if r.Level >= slog.LevelError || strings.Contains(r.Message, "panic") {
			t.Fatalf("server logged at %s: %s", r.Level, r.Message)
		}
	}
	if strings.Contains(replies, "Internal error") || strings.Contains(replies, "Internal server error") {
		t.Fatalf("server answered with an internal error:\n%s", replies)
	}
}

// recordHandler keeps every record logged at info and above.
type recordHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordHandler) all() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.recs)
}
