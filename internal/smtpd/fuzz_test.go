package smtpd

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
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
// PROXY-looking lines) to a live server. The server must answer, stay up
// and never store a message it did not acknowledge.
func FuzzSession(f *testing.F) {
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@lan>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"))
	f.Add([]byte("EHLO x\r\nAUTH PLAIN AGEAYg==\r\nAUTH LOGIN\r\n*\r\nSTARTTLS\r\n"))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nHELO x\r\nRCPT TO:<>\r\nDATA\r\n"))
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@lan> SIZE=99999999999999999999 BODY=BINARYMIME\r\nBDAT 5 LAST\r\nhello"))
	// Logs go nowhere: the testing package forbids f.Log from the target.
	router := routerFunc(func(rcpt, _, _ string) bool { return true })
	srv := New(testConfig(), loopback(), router, &fakeIngest{}, slog.New(slog.DiscardHandler))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(l)
	f.Cleanup(func() { srv.Close() })
	addr := l.Addr().String()
	f.Fuzz(func(t *testing.T, input []byte) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("server down: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write(input)
		c.Write([]byte("\r\nQUIT\r\n"))
		io.Copy(io.Discard, c)
	})
}
