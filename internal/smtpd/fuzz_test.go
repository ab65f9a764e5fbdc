package smtpd

import (
	"bytes"
	"errors"
	"io"
	"testing"
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
