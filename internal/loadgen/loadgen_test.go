package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// serveRef runs a reference server on a loopback port for the test.
func serveRef(t *testing.T, kind RefKind, dir string) string {
	t.Helper()
	s, err := NewRefServer(kind, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, s)
}

func serve(t *testing.T, s *smtp.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

func TestRunCountsEveryAcceptedMessage(t *testing.T) {
	t.Parallel()
	addr := serveRef(t, RefDiscard, "")
	res, err := Run(t.Context(), Config{Addr: addr, Sessions: 4, Size: 4 << 10, Messages: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 50 || res.Refused != 0 || res.Errors != 0 {
		t.Fatalf("accepted %d refused %d errors %d (%s), want 50/0/0", res.Accepted, res.Refused, res.Errors, res.FirstErr)
	}
	if len(res.Latencies) != 50 {
		t.Errorf("%d latencies for 50 messages", len(res.Latencies))
	}
	if per := res.Bytes / 50; per < 4<<10*9/10 || per > 4<<10*11/10 {
		t.Errorf("%d bytes per message, want about 4 KiB", per)
	}
	if res.Rate() <= 0 || res.MBps() <= 0 || res.Percentile(50) <= 0 || res.Percentile(99) < res.Percentile(50) {
		t.Errorf("rate %.1f, MB/s %.2f, p50 %s, p99 %s", res.Rate(), res.MBps(), res.Percentile(50), res.Percentile(99))
	}
}

func TestRunStopsAfterDuration(t *testing.T) {
	t.Parallel()
	addr := serveRef(t, RefDiscard, "")
	start := time.Now()
	res, err := Run(t.Context(), Config{Addr: addr, Sessions: 2, Size: 1 << 10, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a 200ms run took %s", took)
	}
	if res.Accepted == 0 {
		t.Error("nothing sent")
	}
}

func TestFsyncServerWritesEachMessageWhole(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := serveRef(t, RefFsync, dir)
	s, err := Dial(t.Context(), addr, "test.invalid", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tpl := NewTemplate(3000)
	for i := range 3 {
		hdr := tpl.Header("a@x.test", "b@y.test", "t"+string(rune('0'+i)), time.Now())
		rep, err := s.Send(t.Context(), "a@x.test", []string{"b@y.test"}, hdr, tpl.Body)
		if err != nil || rep.Code != 250 {
			t.Fatalf("Send = %v, %v", rep, err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "msg-"+string(rune('1'+i))+".eml"))
		if err != nil {
			t.Fatal(err)
		}
		if want := append(append([]byte{}, hdr...), tpl.Body...); !bytes.Equal(b, want) {
			t.Errorf("message %d stored as %d bytes, sent %d", i, len(b), len(want))
		}
	}
}

// refusing answers MAIL, RCPT or DATA with the reply in its fields.
type refusing struct{ mail, rcpt, data error }

func (r refusing) NewSession(*smtp.Conn) (smtp.Session, error) { return r, nil }
func (refusing) Reset()                                        {}
func (refusing) Logout() error                                 { return nil }
func (r refusing) Mail(string, *smtp.MailOptions) error        { return r.mail }
func (r refusing) Rcpt(string, *smtp.RcptOptions) error        { return r.rcpt }
func (r refusing) Data(rd io.Reader) error {
	io.Copy(io.Discard, rd)
	return r.data
}

func TestSendReportsRefusalsAndKeepsTheSession(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		srv  refusing
		code int
	}{
		"mail": {refusing{mail: &smtp.SMTPError{Code: 451, Message: "later"}}, 451},
		"rcpt": {refusing{rcpt: &smtp.SMTPError{Code: 550, Message: "no such user"}}, 550},
		"data": {refusing{data: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure 01ABC"}}, 451},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr := serve(t, smtp.NewServer(tc.srv))
			s, err := Dial(t.Context(), addr, "test.invalid", 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tpl := NewTemplate(1000)
			for range 2 { // the second proves the session is still usable
				rep, err := s.Send(t.Context(), "a@x.test", []string{"b@y.test"}, tpl.Header("a@x.test", "b@y.test", "x", time.Now()), tpl.Body)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Code != tc.code || rep.OK() {
					t.Fatalf("reply %v, want %d", rep, tc.code)
				}
			}
		})
	}
}

func TestRunFailsWhenNothingListens(t *testing.T) {
	t.Parallel()
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := Run(ctx, Config{Addr: addr, Size: 1000, Duration: 300 * time.Millisecond}); err == nil {
		t.Fatal("Run against a closed port succeeded")
	}
}

func TestSendEndsWhenContextDoes(t *testing.T) {
	t.Parallel()
	// A server that never answers DATA's end.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "220 hi\r\n")
		buf := make([]byte, 4096)
		for n := 0; n < 4; n++ { // EHLO, MAIL, RCPT, DATA
			c.Read(buf)
			io.WriteString(c, [...]string{"250 ok\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n"}[n])
		}
		io.Copy(io.Discard, c)
	}()
	s, err := Dial(t.Context(), l.Addr().String(), "test.invalid", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abort()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Send(ctx, "a@x.test", []string{"b@y.test"}, []byte("Subject: x\r\n\r\n"), []byte("body\r\n"))
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Send = %v after %s, want an error soon after the context ends", err, time.Since(start))
	}
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1 << 10, 10 << 10, 100 << 10, 1 << 20} {
		tpl := NewTemplate(size)
		hdr := tpl.Header("loadgen@bench.test", "sink@bench.test", "0-1234", time.Now())
		total := len(hdr) + len(tpl.Body)
		if total < size*9/10 || total > size*11/10+100 {
			t.Errorf("size %d: message is %d bytes", size, total)
		}
		for i, line := range strings.Split(string(tpl.Body), "\r\n") {
			if strings.HasPrefix(line, ".") || len(line) > 998 {
				t.Fatalf("size %d: body line %d %q needs stuffing or is too long", size, i, line)
			}
		}
		if !bytes.HasSuffix(tpl.Body, []byte("\r\n")) || !bytes.HasSuffix(hdr, []byte("\r\n\r\n")) {
			t.Errorf("size %d: header or body not CRLF-terminated", size)
		}
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	r := &Result{}
	if r.Percentile(50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
	for i := 1; i <= 100; i++ {
		r.Latencies = append(r.Latencies, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 1: time.Millisecond} {
		if got := r.Percentile(p); got != want {
			t.Errorf("p%v = %s, want %s", p, got, want)
		}
	}
}

func TestSizes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"1KiB": 1024, "100KiB": 100 << 10, "1MiB": 1 << 20, "25MiB": 25 << 20, "512": 512, "10K": 10 << 10} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1KiB", "lots", "1GiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	for _, n := range []int{1 << 10, 10 << 10, 1 << 20, 1500} {
		if got, _ := ParseSize(FormatSize(n)); got != n {
			t.Errorf("FormatSize(%d) = %q does not parse back", n, FormatSize(n))
		}
	}
}

func TestReplyLastWord(t *testing.T) {
	t.Parallel()
	r := Reply{Code: 250, Text: "2.0.0 OK 01JKZ8W5E3Q9V4T7B2N6M0XR1C"}
	if got := r.LastWord(); got != "01JKZ8W5E3Q9V4T7B2N6M0XR1C" {
		t.Errorf("LastWord = %q", got)
	}
	if !r.OK() || r.Temporary() || !(Reply{Code: 451}).Temporary() {
		t.Error("OK/Temporary misclassify")
	}
}

func TestErrorsAreUsable(t *testing.T) {
	t.Parallel()
	var re *ReplyError
	err := error(&ReplyError{Command: "EHLO x", Reply: Reply{Code: 421, Text: "busy"}})
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "421 busy") {
		t.Errorf("ReplyError = %v", err)
	}
}

func TestWALServerAppendsEveryMessage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := serveRef(t, RefWAL, dir)
	res, err := Run(t.Context(), Config{Addr: addr, Sessions: 4, Size: 3000, Messages: 20})
	if err != nil || res.Accepted != 20 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "spool.log"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != res.Bytes {
		t.Errorf("log holds %d bytes, %d were accepted", fi.Size(), res.Bytes)
	}
}
