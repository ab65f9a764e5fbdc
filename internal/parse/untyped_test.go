package parse

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jhillyerd/enmime/v2"
	"github.com/postern/postern/internal/postern"
)

// untypedCase is a message with one part enmime has no place for, and where
// its body must end up.
type untypedCase struct {
	name    string
	raw     string
	body    []byte // the part's decoded bytes
	asText  bool   // in Text; otherwise an attachment holding exactly body
	errName string // the error that names the problem
	errHas  string // ...and holds this
}

func untypedCases() []untypedCase {
	bin := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0, 1, 2, 0xfe}, 40)...)
	b64bin := base64.StdEncoding.EncodeToString(bin)
	text := "Alarm zone 4: door open since 09:14.\r\nAcknowledge at the panel."
	mixed := func(ctype, cte, body string) string {
		h := "Content-Type: " + ctype + "\r\n"
		if cte != "" {
			h += "Content-Transfer-Encoding: " + cte + "\r\n"
		}
		return "From: panel@devices.example\r\nSubject: untyped\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n" +
			"--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nFirst part.\r\n" +
			"--outer\r\n" + h + "\r\n" + body + "\r\n--outer--\r\n"
	}
	root := func(ctype, cte, body string) string {
		h := "Content-Type: " + ctype + "\r\n"
		if cte != "" {
			h += "Content-Transfer-Encoding: " + cte + "\r\n"
		}
		return "From: panel@devices.example\r\nSubject: untyped\r\nMIME-Version: 1.0\r\n" + h + "\r\n" + body
	}
	noBoundary, badType := enmime.ErrorMissingBoundary, enmime.ErrorMalformedHeader
	return []untypedCase{
		{"nested multipart without boundary, text", mixed("multipart/alternative", "", text), []byte(text), true, noBoundary, "multipart/alternative"},
		{"nested multipart without boundary, binary", mixed("multipart/related", "base64", b64bin), bin, false, noBoundary, "multipart/related"},
		{"root multipart without boundary, text", root("multipart/mixed", "", text), []byte(text), true, noBoundary, "multipart/mixed"},
		{"root multipart without boundary, binary", root("multipart/mixed", "base64", b64bin), bin, false, noBoundary, "multipart/mixed"},
		{"nested type that does not parse, text", mixed("te(xt/pl)ain", "", text), []byte(text), true, badType, "te(xt/pl)ain"},
		{"nested type that does not parse, binary", mixed("(image)/png", "base64", b64bin), bin, false, badType, "(image)/png"},
		{"nested type without a media type", mixed("@@@", "", text), []byte(text), true, badType, "@@@"},
		{"nested type without a subtype", mixed("text", "base64", b64bin), bin, false, badType, `"text"`},
		{"root type that does not parse, text", root("te(xt/pl)ain", "", text), []byte(text), true, badType, "te(xt/pl)ain"},
		{"root type that does not parse, binary", root("(image)/png", "base64", b64bin), bin, false, badType, "(image)/png"},
	}
}

// checkUntyped checks that the part's body reached p as the case says, with
// an error naming the problem, and nothing else was lost.
func checkUntyped(t *testing.T, p *postern.Parsed, c untypedCase) {
	t.Helper()
	if !slices.ContainsFunc(p.Errors, func(e postern.ParseError) bool {
		return e.Name == c.errName && strings.Contains(e.Detail, c.errHas)
	}) {
		t.Errorf("no %q error holding %q: %+v", c.errName, c.errHas, p.Errors)
	}
	if strings.Contains(c.raw, "First part.") && !strings.Contains(p.Text, "First part.") {
		t.Errorf("Text = %q lost the first part", p.Text)
	}
	if c.asText {
		if !strings.Contains(p.Text, string(c.body)) {
			t.Errorf("Text = %q, want it to hold the part's body %q", p.Text, c.body)
		}
		for _, a := range p.Attachments {
			if bytes.Contains(a.Content, c.body) {
				t.Errorf("the text part is also an attachment: %+v", a)
			}
		}
		return
	}
	var found []postern.Attachment
	for _, a := range p.Attachments {
		if bytes.Equal(a.Content, c.body) {
			found = append(found, a)
		}
	}
	if len(found) != 1 {
		t.Errorf("%d attachments hold the part's %d bytes, want 1: %+v", len(found), len(c.body), p.Attachments)
		return
	}
	if a := found[0]; a.Size != int64(len(c.body)) || a.SHA256 != sha(c.body) {
		t.Errorf("attachment = %+v, want %d bytes", a, len(c.body))
	}
}

// A multipart part without a boundary, or a part whose Content-Type does
// not parse, is delivered with its body and an error naming the problem:
// by Parse (the whole message), and by the stage on both paths.
func TestUntypedPartsDelivered(t *testing.T) {
	t.Parallel()
	for _, c := range untypedCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			raw := []byte(c.raw)
			t.Run("parse", func(t *testing.T) {
				t.Parallel()
				checkUntyped(t, Parse(raw, Config{}), c)
			})
			t.Run("stage whole", func(t *testing.T) {
				t.Parallel()
				checkUntyped(t, handled(t, newHarnessCfg(t, Config{InlineAttachmentMax: testInlineMax}), raw), c)
			})
			t.Run("stage large", func(t *testing.T) {
				t.Parallel()
				hs := newHarnessCfg(t, largeCfg())
				checkUntyped(t, handled(t, hs, raw), c)
				if fellBack(hs) {
					t.Error("fell back to the whole parse")
				}
			})
		})
	}
}

// On the large path, an untyped text part larger than the skeleton keeps of
// a body is cut and flagged, like any body; an untyped binary part larger
// than that comes out whole.
func TestUntypedPartsLargePathCut(t *testing.T) {
	t.Parallel()
	line := "zone 4 open\r\n"
	text := strings.Repeat(line, 2000)
	bin := bytes.Repeat([]byte{0, 0xff, 7, 0x80}, 20000)
	raw := []byte("Subject: big untyped\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: multipart/alternative\r\n\r\n" + text +
		"\r\n--b\r\nContent-Type: (application)/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(bin) +
		"\r\n--b--\r\n")
	cfg := largeCfg()
	cfg.large.bodyMax = 4 << 10
	hs := newHarnessCfg(t, cfg)
	p := handled(t, hs, raw)
	if fellBack(hs) {
		t.Error("fell back to the whole parse")
	}
	if !p.TextTruncated || len(p.Text) == 0 || len(p.Text) > 4<<10 || !strings.HasPrefix(text, p.Text) {
		t.Errorf("text of %d bytes, truncated %v: want a cut prefix of the untyped part", len(p.Text), p.TextTruncated)
	}
	if len(p.Attachments) != 1 || !bytes.Equal(p.Attachments[0].Content, bin) {
		t.Errorf("attachments = %d, want the binary part whole", len(p.Attachments))
	}
}

// enmime reads a nested part that declares a boundary as a multipart
// whatever its type (unless text/plain or text/html); when no delimiter
// comes its body is taken for a preamble and lost. The loss is reported,
// and the part is neither an empty attachment nor text said to hold it.
func TestContainerWithoutDelimiterReported(t *testing.T) {
	t.Parallel()
	for _, ctype := range []string{"application/octet-stream; boundary=x", "00; boundary=x", "multipart/related; boundary=x"} {
		raw := []byte("Content-Type: multipart/mixed; boundary=outer\r\n\r\n" +
			"--outer\r\nContent-Type: text/plain\r\n\r\nFirst part.\r\n" +
			"--outer\r\nContent-Type: " + ctype + "\r\n\r\nsensor data 0417\r\n--outer--\r\n")
		for name, p := range map[string]*postern.Parsed{
			"parse":       Parse(raw, Config{}),
			"stage whole": handled(t, newHarnessCfg(t, Config{InlineAttachmentMax: testInlineMax}), raw),
			"stage large": handled(t, newHarnessCfg(t, largeCfg()), raw), // falls back: no delimiter
		} {
			if !slices.ContainsFunc(p.Errors, func(e postern.ParseError) bool {
				return e.Name == enmime.ErrorMissingBoundary && strings.Contains(e.Detail, `"--x"`) && strings.Contains(e.Detail, "not delivered")
			}) {
				t.Errorf("%s, %s: no Missing Boundary error saying the body is not delivered: %+v", ctype, name, p.Errors)
			}
			if len(p.Attachments) != 0 || p.Text != "First part." {
				t.Errorf("%s, %s: text %q, attachments %+v", ctype, name, p.Text, p.Attachments)
			}
		}
	}
}

// A message parses to the same result every time: enmime reports malformed
// Content-Type parameters in a map's order unless parseMediaType sorts them.
func TestMalformedParamsInMessageOrder(t *testing.T) {
	t.Parallel()
	raw := []byte("Content-Type: text/plain;1A010;0;29C88;zz;b\r\n\r\nx\r\n")
	first := Parse(raw, Config{})
	var details []string
	for _, e := range first.Errors {
		details = append(details, e.Detail)
	}
	joined := strings.Join(details, "\n")
	if i, j := strings.Index(joined, `"1a010"`), strings.Index(joined, `"29c88"`); i < 0 || j < i {
		t.Fatalf("malformed parameters not in message order:\n%s", joined)
	}
	for range 30 {
		if again := Parse(raw, Config{}); !reflect.DeepEqual(again, first) {
			t.Fatalf("parsed differently on another run:\n%+v\n%+v", again.Errors, first.Errors)
		}
	}
}
