package smtpd

import (
	"io"
	"strings"
	"testing"
)

// SMTP smuggling: only <CRLF>.<CRLF> ends DATA. Bare LF and bare CR are
// kept as data (policy: accept and store as sent, never treat as a line end
// for the end-of-data marker), so no payload can split one DATA into two
// messages for this gateway or for anything behind it.
func TestSmugglingPayloadsYieldOneMessage(t *testing.T) {
	t.Parallel()
	for name, sep := range map[string]string{
		"bare LF":     "\n.\n",
		"bare CR":     "\r.\r",
		"CR dot CRLF": "\r.\r\n",
		"LF dot CRLF": "\n.\r\n",
		"CRLF dot LF": "\r\n.\n",
		"CRLF dot CR": "\r\n.\r",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ing := &fakeIngest{}
			d := dial(t, start(t, loopback(), ing))
			d.must("EHLO x", "250")
			d.must("MAIL FROM:<a@lan>", "250")
			d.must("RCPT TO:<app@example.com>", "250")
			d.must("DATA", "354")
			smuggled := "Subject: one\r\n\r\nfirst" + sep + "MAIL FROM:<evil@x>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: two\r\n\r\nsmuggled"
			if _, err := io.WriteString(d.c, smuggled+"\r\n.\r\n"); err != nil {
				t.Fatal(err)
			}
			d.expect("250 2.0.0 OK")
			d.must("QUIT", "221")
			if len(ing.Envs()) != 1 {
				t.Fatalf("%d messages stored, want exactly 1", len(ing.Envs()))
			}
			// The dot at a line start is transparency (RFC 5321 4.5.2), so the
			// bytes kept may differ by it; what matters is that the would-be
			// second transaction stayed inside the first message.
			if !strings.Contains(string(ing.Raws()[0]), "MAIL FROM:<evil@x>\r\nRCPT TO:<victim@example.com>") {
				t.Fatalf("smuggled bytes not kept as data: %q", ing.Raws()[0])
			}
		})
	}
}

func TestVRFYAndEXPN(t *testing.T) {
	t.Parallel()
	d := dial(t, start(t, loopback(), &fakeIngest{}))
	d.must("EHLO x", "250")
	d.must("VRFY postmaster", "252")
	d.must("EXPN staff", "502")
}
