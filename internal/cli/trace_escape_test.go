package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Control characters a sender puts in MAIL FROM reach the operator's
// terminal escaped when they run gateway trace, never raw.
func TestTracePrintsSenderControlsEscaped(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts the gateway as a subprocess")
	}
	dir := t.TempDir()
	smtpAddr, adminAddr := freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "postern.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`hostname: gw.test
data_dir: %s
listeners: [{name: smtp, addr: %q}]
admin: {addr: %q}
routes:
  - name: files
    match: {recipients: ["*"]}
    directory: {path: outbox}
`, filepath.Join(dir, "data"), smtpAddr, adminAddr)), 0o600)
	startChild(t, cfgPath, smtpAddr)

	c, err := smtp.Dial(smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A raw ESC is refused at MAIL: no stored message can carry it there.
	if err := c.Mail("\"\x1b[2J\"@lan", nil); err == nil || !strings.Contains(err.Error(), "501") {
		t.Fatalf("MAIL FROM with ESC: %v, want 501", err)
	}
	// What the syntax lets through with SMTPUTF8: a C1 CSI (ESC [ to
	// terminals that take 8-bit controls) and a right-to-left override that
	// would show the rest of the line backwards.
	const evil = "\"\u009b2J\u009b31mok\u202eneila\"@lan"
	if err := c.Mail(evil, &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatalf("MAIL FROM: %v", err)
	}
	if err := c.Rcpt("ops@app.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: \x1b[5mblink\r\n\r\nx\r\n")
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(resp.StatusText, "2.0.0 OK ")

	var out, errb bytes.Buffer
	deadline := time.Now().Add(20 * time.Second)
	for {
		out.Reset()
		errb.Reset()
		code := Main(context.Background(), Env{Args: []string{"trace", "-config", cfgPath, id}, Getenv: func(string) string { return "" },
			Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
		if code == 0 && strings.Contains(out.String(), "received") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace: exit %d: %s%s", code, out.String(), errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := out.String()
	if strings.ContainsAny(got, "\x1b\u009b\u202e") {
		t.Errorf("trace printed a raw control character:\n%q", got)
	}
	if want := `\u009b2J\u009b31mok\u202eneila`; !strings.Contains(got, want) {
		t.Errorf("trace lacks the escaped sender %s:\n%s", want, got)
	}
}
