package app

import (
	"net"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/signedurl"
)

func TestSafeFilename(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"scan.pdf":                "scan.pdf",
		"../../etc/passwd":        "passwd",
		`C:\Users\x\invoice.pdf`:  "invoice.pdf",
		"scan\u202efdp.exe":       "scanfdp.exe", // a right-to-left override would show "exe.pdf"
		"a\r\nContent-Type: x":    "aContent-Type: x",
		" .hidden. ":              "hidden",
		"":                        "fallback",
		"...":                     "fallback",
		"dir/":                    "fallback",
		"Rechnung März.pdf":       "Rechnung März.pdf",
		string([]byte{0xff, 'a'}): "a",
	} {
		if got := safeFilename(in, "fallback"); got != want {
			t.Errorf("safeFilename(%q) = %q, want %q", in, got, want)
		}
	}
	if long := safeFilename(strings.Repeat("ü", 300)+".pdf", "f"); len(long) > 200 || !utf8.ValidString(long) {
		t.Errorf("a long name is kept at %d bytes, valid UTF-8 %v", len(long), utf8.ValidString(long))
	}
}

func TestAttachmentDisposition(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"scan.pdf":          `attachment; filename=scan.pdf`,
		`say "hi".txt`:      `attachment; filename="say \"hi\".txt"`,
		"Rechnung März.pdf": `attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf`,
	} {
		if got := attachmentDisposition(in); got != want {
			t.Errorf("attachmentDisposition(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestServedType(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"application/pdf":                     "application/pdf",
		"text/plain; charset=ISO-8859-1":      "text/plain; charset=ISO-8859-1",
		"text/html; charset=utf-8; name=x.js": "text/html; charset=utf-8",
		"":                                    "application/octet-stream",
		"pdf":                                 "application/octet-stream",
		"text/plain; charset=\"unclosed":      "application/octet-stream",
	} {
		if got := servedType(in); got != want {
			t.Errorf("servedType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLinkObject(t *testing.T) {
	t.Parallel()
	id := postern.NewMsgID()
	for key, want := range map[string]*signedurl.Object{
		id.RawKey():                        {ID: id.String(), Kind: signedurl.KindRaw},
		id.AttachmentKey(0):                {ID: id.String(), Kind: signedurl.KindAttachment},
		id.AttachmentKey(12):               {ID: id.String(), Kind: signedurl.KindAttachment, Part: 12},
		id.ParsedKey():                     nil,
		id.EnvelopeKey():                   nil,
		id.Prefix() + "att/1":              nil, // not how AttachmentKey writes 1
		"m/xx/" + id.String() + "/raw.eml": nil,
		"health/readyz":                    nil,
	} {
		got, ok := linkObject(key)
		if want == nil {
			if ok {
				t.Errorf("linkObject(%s) = %+v, want none", key, got)
			}
			continue
		}
		if !ok || got != *want {
			t.Errorf("linkObject(%s) = %+v %v, want %+v", key, got, ok, *want)
		}
	}
}

func TestPublicLinkBase(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Hostname = "gw.example"
	for _, c := range []struct {
		public, bound, want string
		allows, refuses     []string
	}{
		{"", "127.0.0.1:8025", "http://127.0.0.1:8025", []string{"127.0.0.1:8025"}, []string{"127.0.0.1", "127.0.0.1:80"}},
		{"", "0.0.0.0:8025", "http://gw.example:8025", []string{"gw.example:8025", "GW.example:8025"}, []string{"gw.example"}},
		{"", "[::]:8025", "http://gw.example:8025", nil, nil},
		{"", "[::1]:8025", "http://[::1]:8025", []string{"[::1]:8025"}, nil},
		{"https://files.example.com/postern/", "127.0.0.1:8025", "https://files.example.com/postern",
			[]string{"files.example.com", "files.example.com:443"}, []string{"files.example.com:80", "files.example.com:8025", "evil.example"}},
		{"http://10.0.0.5:8025", "0.0.0.0:8025", "http://10.0.0.5:8025", []string{"10.0.0.5:8025"}, []string{"10.0.0.5"}},
	} {
		cfg := *cfg
		cfg.Delivery.PublicURL = c.public
		bound, err := net.ResolveTCPAddr("tcp", c.bound)
		if err != nil {
			t.Fatal(err)
		}
		b, err := publicLinkBase(&cfg, bound)
		if err != nil || b.url.String() != c.want {
			t.Errorf("public %q bound %s: %v %v, want %s", c.public, c.bound, b.url, err, c.want)
			continue
		}
		for _, h := range c.allows {
			if !b.allows(h) {
				t.Errorf("base %s refuses Host %s", c.want, h)
			}
		}
		for _, h := range c.refuses {
			if b.allows(h) {
				t.Errorf("base %s allows Host %s", c.want, h)
			}
		}
	}
}
