package parse

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/postern/postern/internal/postern"
)

// extraCase is a message with a text or HTML part enmime does not take as a
// body, and where every part must end up.
type extraCase struct {
	name  string
	raw   string
	text  []string // substrings of Text, in this order
	html  []string // substrings of HTML, in this order
	notIn []string // in neither body
	atts  []extraAtt
}

// extraAtt is an attachment expected in this order among the attachments.
type extraAtt struct {
	ctype, disposition, filename string
	content                      []byte
}

func extraCases() []extraCase {
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0, 1, 2, 0xfe}, 40)...)
	b64png := base64.StdEncoding.EncodeToString(png)
	head := "From: Hanna <hanna@app.example>\r\nTo: ops@app.example\r\nSubject: pieces\r\nMIME-Version: 1.0\r\n"
	html1 := "<html><head></head><body><div>Pump 2 before the repair:</div></body></html>"
	html2 := "<html><head></head><body><div>and after. Signed off by Hanna.</div></body></html>"
	// Apple Mail, text then an image in the middle of the HTML: the HTML
	// alternative is a multipart/mixed of HTML, image, HTML.
	appleMail := head +
		"Content-Type: multipart/alternative; boundary=\"Apple-Mail=_A\"\r\n\r\n" +
		"--Apple-Mail=_A\r\nContent-Transfer-Encoding: 7bit\r\nContent-Type: text/plain;\r\n\tcharset=us-ascii\r\n\r\n" +
		"Pump 2 before the repair:\r\n\r\n[image: pump2.png]\r\n\r\nand after. Signed off by Hanna.\r\n" +
		"--Apple-Mail=_A\r\nContent-Type: multipart/mixed;\r\n\tboundary=\"Apple-Mail=_B\"\r\n\r\n" +
		"--Apple-Mail=_B\r\nContent-Transfer-Encoding: 7bit\r\nContent-Type: text/html;\r\n\tcharset=us-ascii\r\n\r\n" + html1 + "\r\n" +
		"--Apple-Mail=_B\r\nContent-Disposition: inline;\r\n\tfilename=pump2.png\r\nContent-Type: image/png;\r\n\tx-unix-mode=0644;\r\n\tname=\"pump2.png\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + b64png + "\r\n" +
		"--Apple-Mail=_B\r\nContent-Transfer-Encoding: 7bit\r\nContent-Type: text/html;\r\n\tcharset=us-ascii\r\n\r\n" + html2 + "\r\n" +
		"--Apple-Mail=_B--\r\n\r\n--Apple-Mail=_A--\r\n"
	// The same without the text alternative: Text is derived from all the
	// HTML pieces.
	htmlPieces := head +
		"Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n" +
		"--m\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n" + html1 + "\r\n" +
		"--m\r\nContent-Disposition: inline; filename=pump2.png\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64png + "\r\n" +
		"--m\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n" + html2 + "\r\n--m--\r\n"
	alt := func(parts ...string) string {
		s := head + "Content-Type: multipart/alternative; boundary=\"a\"\r\n\r\n"
		for _, p := range parts {
			s += "--a\r\n" + p + "\r\n"
		}
		return s + "--a--\r\n"
	}
	latin1 := []byte("Gr\xfc\xdfe aus Halle B.")
	return []extraCase{
		{
			name: "Apple Mail html, image, html", raw: appleMail,
			text: []string{"Pump 2 before the repair:", "and after."},
			html: []string{html1, html2},
			atts: []extraAtt{{"image/png", "inline", "pump2.png", png}},
		},
		{
			name: "html, image, html without text", raw: htmlPieces,
			text: []string{"Pump 2 before the repair:", "and after. Signed off by Hanna."},
			html: []string{html1, html2},
			atts: []extraAtt{{"image/png", "inline", "pump2.png", png}},
		},
		{
			name: "second text/plain alternative",
			raw: alt("Content-Type: text/plain; charset=us-ascii\r\n\r\nPump 2 serviced.",
				"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe aus Halle B."),
			text:  []string{"Pump 2 serviced."},
			notIn: []string{"Halle B"},
			atts:  []extraAtt{{"text/plain", "", "", []byte("Grüße aus Halle B.")}},
		},
		{
			name: "second text/html alternative",
			raw: alt("Content-Type: text/plain\r\n\r\nPump 2 serviced.",
				"Content-Type: text/html\r\n\r\n<p>Pump 2 serviced.</p>",
				"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Pump 2 <b>serviced</b>.</p>"),
			text:  []string{"Pump 2 serviced."},
			html:  []string{"<p>Pump 2 serviced.</p>"},
			notIn: []string{"<b>serviced</b>"},
			atts:  []extraAtt{{"text/html", "", "", []byte("<p>Pump 2 <b>serviced</b>.</p>")}},
		},
		{
			name: "second text/plain in a mixed alternative",
			raw: alt("Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n"+
				"--m\r\nContent-Type: text/plain\r\n\r\nPump 2 before:\r\n"+
				"--m\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=\"p.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+b64png+"\r\n"+
				"--m\r\nContent-Type: text/plain; name=\"after.txt\"\r\n\r\nand after.\r\n--m--",
				"Content-Type: text/html\r\n\r\n<p>Pump 2.</p>"),
			text:  []string{"Pump 2 before:"},
			html:  []string{"<p>Pump 2.</p>"},
			notIn: []string{"and after."},
			atts:  []extraAtt{{"image/png", "inline", "p.png", png}, {"text/plain", "", "after.txt", []byte("and after.")}},
		},
		{
			// A footer in the outer multipart/mixed is not a piece of the
			// HTML body (which sits in an alternative): an attachment.
			name: "html footer outside the body's multipart",
			raw: head + "Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n" +
				"--m\r\n" + strings.TrimSuffix(alt("Content-Type: text/plain\r\n\r\nPump 2.", "Content-Type: text/html\r\n\r\n<p>Pump 2.</p>")[len(head):], "\r\n") + "\r\n" +
				"--m\r\nContent-Type: text/html\r\n\r\n<p>List footer</p>\r\n--m--\r\n",
			text:  []string{"Pump 2."},
			html:  []string{"<p>Pump 2.</p>"},
			notIn: []string{"List footer"},
			atts:  []extraAtt{{"text/html", "", "", []byte("<p>List footer</p>")}},
		},
		{
			name: "part with an unknown disposition",
			raw: head + "Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n" +
				"--m\r\nContent-Type: text/plain\r\n\r\nPump 2.\r\n" +
				"--m\r\nContent-Type: image/png\r\nContent-Disposition: preview; filename=\"p.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64png + "\r\n--m--\r\n",
			text: []string{"Pump 2."},
			atts: []extraAtt{{"image/png", "preview", "p.png", png}},
		},
		{
			name: "latin-1 second alternative, whole bytes",
			raw: alt("Content-Type: text/plain\r\n\r\nPump 2.",
				"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n"+base64.StdEncoding.EncodeToString(latin1)),
			text: []string{"Pump 2."},
			atts: []extraAtt{{"text/plain", "", "", []byte("Grüße aus Halle B.")}},
		},
	}
}

// checkExtra checks that every part of c reached p where c says.
func checkExtra(t *testing.T, p *postern.Parsed, c extraCase) {
	t.Helper()
	inOrder := func(body, what string, subs []string) {
		t.Helper()
		rest := body
		for _, s := range subs {
			i := strings.Index(rest, s)
			if i < 0 {
				t.Errorf("%s = %q, want it to hold %q (after the ones before)", what, body, s)
				return
			}
			rest = rest[i+len(s):]
		}
	}
	inOrder(p.Text, "Text", c.text)
	inOrder(p.HTML, "HTML", c.html)
	for _, s := range c.notIn {
		if strings.Contains(p.Text, s) || strings.Contains(p.HTML, s) {
			t.Errorf("%q is in a body: Text %q, HTML %q", s, p.Text, p.HTML)
		}
	}
	if len(p.Attachments) != len(c.atts) {
		t.Fatalf("%d attachments, want %d: %+v", len(p.Attachments), len(c.atts), p.Attachments)
	}
	for i, w := range c.atts {
		a := p.Attachments[i]
		if a.ContentType != w.ctype || a.Disposition != w.disposition || a.Filename != w.filename || !bytes.Equal(a.Content, w.content) {
			t.Errorf("attachment %d = %s %q %q %q, want %s %q %q %q", i,
				a.ContentType, a.Disposition, a.Filename, a.Content, w.ctype, w.disposition, w.filename, w.content)
		}
		if a.Size != int64(len(a.Content)) || a.SHA256 != sha(a.Content) {
			t.Errorf("attachment %d: size %d, sha256 %s do not describe its bytes", i, a.Size, a.SHA256)
		}
	}
	if hasSevere(p.Errors) {
		t.Errorf("severe errors: %+v", p.Errors)
	}
}

// A text or HTML part enmime does not take as a body is not dropped: a
// piece of HTML beside the HTML body in a multipart/mixed continues it, any
// other such part is an attachment. Parse, and the stage on both paths,
// with the same result.
func TestExtraBodyPartsDelivered(t *testing.T) {
	t.Parallel()
	for _, c := range extraCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			raw := []byte(c.raw)
			t.Run("parse", func(t *testing.T) {
				t.Parallel()
				p := Parse(raw, Config{})
				checkExtra(t, p, c)
				checkLeavesReached(t, raw, p)
			})
			t.Run("stage", func(t *testing.T) {
				t.Parallel()
				whole := handled(t, newHarnessCfg(t, Config{InlineAttachmentMax: testInlineMax}), raw)
				checkExtra(t, whole, c)
				hs := newHarnessCfg(t, largeCfg())
				large := handled(t, hs, raw)
				checkExtra(t, large, c)
				if fellBack(hs) {
					t.Error("fell back to the whole parse")
				}
				a, _ := json.MarshalIndent(whole, "", " ")
				b, _ := json.MarshalIndent(large, "", " ")
				if !bytes.Equal(a, b) {
					t.Errorf("large path differs from the whole parse:\n%s", firstDiff(string(a), string(b)))
				}
			})
		})
	}
}

// On the large path, an HTML piece cut in the skeleton is cut in HTML and
// flagged like the body it continues; a second alternative too large for
// the skeleton comes out whole as an attachment.
func TestExtraBodyPartsLargePathCut(t *testing.T) {
	t.Parallel()
	piece := strings.Repeat("<div>Pump 2 log line</div>\r\n", 400)
	raw := []byte("Subject: big pieces\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n" +
		"--a\r\nContent-Type: text/plain\r\n\r\nfirst\r\n" +
		"--a\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("second alternative\r\n", 400) + "\r\n" +
		"--a\r\nContent-Type: multipart/mixed; boundary=h\r\n\r\n" +
		"--h\r\nContent-Type: text/html\r\n\r\n<p>first piece</p>\r\n" +
		"--h\r\nContent-Type: text/html\r\n\r\n" + piece + "\r\n--h--\r\n" +
		"\r\n--a--\r\n")
	cfg := largeCfg()
	cfg.large.bodyMax = 4 << 10
	hs := newHarnessCfg(t, cfg)
	p := handled(t, hs, raw)
	if fellBack(hs) {
		t.Error("fell back to the whole parse")
	}
	if !p.HTMLTruncated || !strings.HasPrefix(p.HTML, "<p>first piece</p>") || !strings.Contains(p.HTML, "<div>Pump 2 log line</div>") ||
		len(p.HTML) > 5<<10 {
		t.Errorf("HTML of %d bytes, truncated %v: want the first piece and a cut second", len(p.HTML), p.HTMLTruncated)
	}
	if p.TextTruncated || !strings.HasPrefix(p.Text, "first") {
		t.Errorf("Text = %.40q, truncated %v", p.Text, p.TextTruncated)
	}
	if want := strings.Repeat("second alternative\r\n", 400); len(p.Attachments) != 1 || string(p.Attachments[0].Content) != want {
		t.Errorf("attachments = %d, want the second alternative whole", len(p.Attachments))
	}
}
