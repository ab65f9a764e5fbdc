package filerelay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/relaytest"
)

func TestSendWritesOnceAtomically(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "outbox")
	tr, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	const body = "From: MAILER-DAEMON@gw.example.net\r\nSubject: x\r\n\r\nbody\r\n"
	send := func(to string) *relay.Result {
		m := &relay.Message{ID: "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q", From: "", To: []relay.Rcpt{{Addr: to}}, Body: strings.NewReader(body)}
		res, err := tr.Send(t.Context(), m)
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		return res
	}
	res := send("scanner@lan.example")
	if r := res.Rcpts[0].Reply; !r.Accepted() || !strings.Contains(r.Text, ".eml") {
		t.Fatalf("reply %+v", r)
	}
	send("scanner@lan.example") // a retry rewrites the same file
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 {
		t.Fatalf("files %v, want one", files)
	}
	got, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	want := "X-Postern-Envelope-From: <>\r\nX-Postern-Envelope-To: <scanner@lan.example>\r\n" + body
	if string(got) != want {
		t.Errorf("file:\n%q\nwant\n%q", got, want)
	}
	send("ops@example.net")
	if files, _ := filepath.Glob(filepath.Join(dir, "*.eml")); len(files) != 2 {
		t.Errorf("files %v, want two", files)
	}
}

// The .eml file has CRLF line ends only, as an SMTP peer would get them, so
// it can be replayed as it is.
func TestSendWritesCRLFOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tr, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	const body = "Subject: x\nX-A: 1\r\r\n\r\none\rtwo\n\r.\rthree\r"
	m := &relay.Message{ID: "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q", From: "a@lan.example", To: []relay.Rcpt{{Addr: "b@example.com"}},
		Body: iotest.OneByteReader(strings.NewReader(body))}
	if _, err := tr.Send(t.Context(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("files %v, want one", files)
	}
	got, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	want := "X-Postern-Envelope-From: <a@lan.example>\r\nX-Postern-Envelope-To: <b@example.com>\r\n" +
		"Subject: x\r\nX-A: 1\r\n\r\none\r\ntwo\r\n\r\n.\r\nthree\r\n"
	if string(got) != want || relaytest.HasBareLineEnd(got) {
		t.Errorf("file:\n%q\nwant\n%q", got, want)
	}
}
