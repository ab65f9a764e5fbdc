package parse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/route"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// builtMessage is a message with text, HTML, an inline image and two
// attachments, one of them larger than testInlineMax.
type builtMessage struct {
	raw       []byte
	text      string
	html      string
	csv       []byte
	pdf       []byte
	png       []byte
	date      time.Time
	messageID string
}

const testInlineMax = 1024

func buildMessage(t *testing.T) builtMessage {
	t.Helper()
	m := builtMessage{
		text:      "Scan finished: 3 pages.\nGrüße vom Drucker.",
		html:      `<p>Scan finished: <b>3</b> pages.</p><img src="cid:logo@printer">`,
		csv:       []byte("page,dpi\n1,300\n2,300\n3,300\n"),
		png:       append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0}, 40)...),
		date:      time.Date(2025, 2, 4, 9, 15, 0, 0, time.UTC),
		messageID: "scan.42@printer.example.com",
	}
	pdf := []byte("%PDF-1.4\n")
	for i := 0; len(pdf) < 4*testInlineMax; i++ {
		pdf = append(pdf, byte(i*7), byte(i>>3)) // binary, not text
	}
	m.pdf = pdf
	root, err := enmime.Builder().
		From("Printer 3F", "printer@example.com").
		To("Ops", "ops@example.com").
		CC("", "archive@example.com").
		ReplyTo("Helpdesk", "help@example.com").
		Subject("Scan ready – Büro 3").
		Date(m.date).
		Header("Message-ID", "<"+m.messageID+">").
		Header("X-Device", "printer-3f").
		Text([]byte(m.text)).
		HTML([]byte(m.html)).
		AddInline(m.png, "image/png", "logo.png", "logo@printer").
		AddAttachment(m.csv, "text/csv", "pages.csv").
		AddAttachment(m.pdf, "application/pdf", "scan.pdf").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := root.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	m.raw = buf.Bytes()
	return m
}

func TestParseBuiltMessage(t *testing.T) {
	t.Parallel()
	m := buildMessage(t)
	p := Parse(m.raw, Config{InlineAttachmentMax: testInlineMax})

	if p.V != postern.ParsedVersion {
		t.Errorf("V = %d", p.V)
	}
	if p.Subject != "Scan ready – Büro 3" {
		t.Errorf("Subject = %q", p.Subject)
	}
	wantAddr := func(field string, got []postern.Address, want ...postern.Address) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %+v, want %+v", field, got, want)
		}
	}
	wantAddr("From", p.From, postern.Address{Name: "Printer 3F", Address: "printer@example.com"})
	wantAddr("To", p.To, postern.Address{Name: "Ops", Address: "ops@example.com"})
	wantAddr("Cc", p.Cc, postern.Address{Address: "archive@example.com"})
	wantAddr("ReplyTo", p.ReplyTo, postern.Address{Name: "Helpdesk", Address: "help@example.com"})
	wantAddr("Sender", p.Sender)
	if p.Date == nil || !p.Date.Equal(m.date) {
		t.Errorf("Date = %v, want %v", p.Date, m.date)
	}
	if p.MessageID != m.messageID {
		t.Errorf("MessageID = %q", p.MessageID)
	}
	if got := route.FieldLookup(p.Headers)("x-device"); !slices.Equal(got, []string{"printer-3f"}) {
		t.Errorf("X-Device = %q", got)
	}
	// The builder sends text quoted-printable with CRLF line ends.
	if wantText := strings.ReplaceAll(m.text, "\n", "\r\n"); p.Text != wantText || p.TextDerived || p.TextTruncated {
		t.Errorf("Text = %q derived=%v truncated=%v", p.Text, p.TextDerived, p.TextTruncated)
	}
	if p.HTML != m.html || p.HTMLTruncated {
		t.Errorf("HTML = %q truncated=%v", p.HTML, p.HTMLTruncated)
	}
	if len(p.Errors) != 0 {
		t.Errorf("Errors = %+v", p.Errors)
	}

	want := []postern.Attachment{
		{
			Filename: "logo.png", ContentType: "image/png", DetectedType: "image/png",
			Size: int64(len(m.png)), SHA256: sha(m.png), ContentID: "logo@printer",
			Disposition: "inline", Content: m.png,
		},
		{
			Filename: "pages.csv", ContentType: "text/csv", DetectedType: "text/plain; charset=utf-8",
			Size: int64(len(m.csv)), SHA256: sha(m.csv), Disposition: "attachment", Content: m.csv,
		},
		{
			Filename: "scan.pdf", ContentType: "application/pdf", DetectedType: "application/pdf",
			Size: int64(len(m.pdf)), SHA256: sha(m.pdf), Disposition: "attachment", Content: m.pdf,
		},
	}
	if len(p.Attachments) != len(want) {
		t.Fatalf("got %d attachments, want %d: %+v", len(p.Attachments), len(want), p.Attachments)
	}
	for i, w := range want {
		g := p.Attachments[i]
		if !bytes.Equal(g.Content, w.Content) {
			t.Errorf("attachment %d content differs (%d bytes, want %d)", i, len(g.Content), len(w.Content))
		}
		g.Content, w.Content = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("attachment %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	if sha(m.pdf) == sha(m.csv) || len(m.pdf) <= testInlineMax {
		t.Fatal("test message is not what the test needs")
	}
}

func TestParseHeadersInOrderAndDecoded(t *testing.T) {
	t.Parallel()
	raw := "Received: from a\r\n\tby b\r\n" +
		"X-Tag: one\r\n" +
		"Subject: =?UTF-8?B?w5xiZXI=?= =?UTF-8?Q?_alles?=\r\n" +
		"x-tag: two\r\n" +
		"Bad Name: dropped\r\n" +
		"no colon continues X-Tag\r\n" +
		"To: undisclosed-recipients:;\r\n" +
		"From: \"Last, First\" <first.last@example.com>, other@example.com\r\n" +
		"In-Reply-To: <a@x> <b@x>\r\n" +
		"References: bare-id@x\r\n" +
		"\r\n" +
		"body\r\n"
	p := Parse([]byte(raw), Config{})
	want := []postern.Header{
		{Name: "Received", Value: "from a\tby b"},
		{Name: "X-Tag", Value: "one"},
		{Name: "Subject", Value: "Über alles"},
		{Name: "x-tag", Value: "two no colon continues X-Tag"},
		{Name: "To", Value: "undisclosed-recipients:;"},
		{Name: "From", Value: `"Last, First" <first.last@example.com>, other@example.com`},
		{Name: "In-Reply-To", Value: "<a@x> <b@x>"},
		{Name: "References", Value: "bare-id@x"},
	}
	if !slices.Equal(p.Headers, want) {
		t.Errorf("Headers =\n%+v\nwant\n%+v", p.Headers, want)
	}
	if got := route.FieldLookup(p.Headers)("X-TAG"); !slices.Equal(got, []string{"one", "two no colon continues X-Tag"}) {
		t.Errorf("lookup X-TAG = %q", got)
	}
	if len(p.To) != 0 {
		t.Errorf("To = %+v, want none", p.To)
	}
	if want := []postern.Address{{Name: "Last, First", Address: "first.last@example.com"}, {Address: "other@example.com"}}; !slices.Equal(p.From, want) {
		t.Errorf("From = %+v", p.From)
	}
	if !slices.Equal(p.InReplyTo, []string{"a@x", "b@x"}) || !slices.Equal(p.References, []string{"bare-id@x"}) {
		t.Errorf("InReplyTo = %q References = %q", p.InReplyTo, p.References)
	}
	if p.Text != "body\r\n" && p.Text != "body\n" {
		t.Errorf("Text = %q", p.Text)
	}
}

func TestParseLatin1QuotedPrintable(t *testing.T) {
	t.Parallel()
	p := Parse(fixture(t, "latin1-qp.eml"), Config{})
	if p.Subject != "Café crème à la réception" {
		t.Errorf("Subject = %q", p.Subject)
	}
	if want := "Bonjour, le café est prêt.\nGrüße aus Köln, = fin.\n"; p.Text != want {
		t.Errorf("Text = %q, want %q", p.Text, want)
	}
	if len(p.From) != 1 || p.From[0].Name != "René Lefèvre" || p.From[0].Address != "rene@example.com" {
		t.Errorf("From = %+v", p.From)
	}
	if len(p.To) != 2 || p.To[1].Name != "Service" {
		t.Errorf("To = %+v", p.To)
	}
	if p.Date == nil || p.Date.UTC() != time.Date(2025, 2, 4, 9, 0, 0, 0, time.UTC) {
		t.Errorf("Date = %v", p.Date)
	}
	if len(p.Attachments) != 0 || len(p.Errors) != 0 {
		t.Errorf("Attachments = %+v Errors = %+v", p.Attachments, p.Errors)
	}
}

func TestParseMessageRFC822Attachment(t *testing.T) {
	t.Parallel()
	p := Parse(fixture(t, "rfc822-attachment.eml"), Config{})
	if p.Text != "See the forwarded message." {
		t.Errorf("Text = %q", p.Text)
	}
	if !slices.Equal(p.InReplyTo, []string{"orig.1@example.com"}) ||
		!slices.Equal(p.References, []string{"thread.0@example.com", "orig.1@example.com"}) {
		t.Errorf("InReplyTo = %q References = %q", p.InReplyTo, p.References)
	}
	if len(p.Attachments) != 1 {
		t.Fatalf("Attachments = %+v", p.Attachments)
	}
	a := p.Attachments[0]
	inner := "From: Original <orig@example.com>\nTo: fwd@example.com\nSubject: original\n" +
		"Message-ID: <orig.1@example.com>\nContent-Type: text/plain\n\nThe original body."
	if a.Filename != "original.eml" || a.ContentType != "message/rfc822" || a.Disposition != "attachment" ||
		string(a.Content) != inner || a.Size != int64(len(inner)) || a.SHA256 != sha([]byte(inner)) {
		t.Errorf("attachment = %+v (content %q)", a, a.Content)
	}
}

func TestParseMalformedIsDelivered(t *testing.T) {
	t.Parallel()
	p := Parse(fixture(t, "malformed.eml"), Config{})
	if p.Subject != "broken boundary and base64" || len(p.From) != 1 {
		t.Errorf("headers lost: Subject = %q From = %+v", p.Subject, p.From)
	}
	if !strings.HasPrefix(p.Text, "The readable part survives.") {
		t.Errorf("Text = %q", p.Text)
	}
	if p.Date != nil {
		t.Errorf("Date = %v, want none for %q", p.Date, "not a date")
	}
	names := map[string]bool{}
	severeB64 := false
	for _, e := range p.Errors {
		names[e.Name] = true
		if e.Name == enmime.ErrorMalformedBase64 && e.Severe {
			severeB64 = true
		}
	}
	for _, n := range []string{enmime.ErrorMalformedHeader, enmime.ErrorMissingBoundary, enmime.ErrorMalformedBase64} {
		if !names[n] {
			t.Errorf("no %q error in %+v", n, p.Errors)
		}
	}
	if !severeB64 {
		t.Errorf("bad base64 attachment not reported as severe: %+v", p.Errors)
	}
	if len(p.Attachments) != 1 || p.Attachments[0].Filename != "data.bin" {
		t.Errorf("Attachments = %+v", p.Attachments)
	}
}

func TestParseTextDerivedFromHTML(t *testing.T) {
	t.Parallel()
	raw := "From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Door <b>open</b></p>\r\n"
	p := Parse([]byte(raw), Config{})
	if !p.TextDerived || !strings.Contains(p.Text, "Door") || !strings.Contains(p.Text, "open") {
		t.Errorf("Text = %q derived = %v", p.Text, p.TextDerived)
	}
	if !strings.Contains(p.HTML, "<b>open</b>") {
		t.Errorf("HTML = %q", p.HTML)
	}
}

func TestParseBodyCap(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("é", 10) // 20 bytes
	raw := "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
	p := Parse([]byte(raw), Config{BodyInlineMax: 7})
	if !p.TextTruncated || p.Text != "ééé" {
		t.Errorf("Text = %q truncated = %v, want cut on a rune boundary", p.Text, p.TextTruncated)
	}
	p = Parse([]byte(raw), Config{BodyInlineMax: 20})
	if p.TextTruncated || p.Text != body {
		t.Errorf("Text = %q truncated = %v, want all of it", p.Text, p.TextTruncated)
	}
}

func TestParseTooLargeIsHeadersOnly(t *testing.T) {
	t.Parallel()
	raw := "Subject: big\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("x", 200)
	p := Parse([]byte(raw), Config{MaxMessageBytes: 100})
	if p.Subject != "big" || p.Text != "" {
		t.Errorf("Subject = %q Text = %q", p.Subject, p.Text)
	}
	if len(p.Errors) != 1 || !p.Errors[0].Severe || p.Errors[0].Name != ErrNameLimit ||
		!strings.Contains(p.Errors[0].Detail, "max_message_bytes") {
		t.Errorf("Errors = %+v", p.Errors)
	}
}

func TestParseUnparseableKeepsHeaders(t *testing.T) {
	t.Parallel()
	// enmime gives up on a message whose first line is not a header field.
	raw := "this is not a header\r\nSubject: still here\r\nFrom: a@example.com\r\n\r\nbody\r\n"
	p := Parse([]byte(raw), Config{})
	if p.Subject != "still here" || len(p.From) != 1 {
		t.Errorf("Subject = %q From = %+v", p.Subject, p.From)
	}
	if len(p.Errors) != 1 || !p.Errors[0].Severe || p.Errors[0].Name != ErrNameUnparseable {
		t.Errorf("Errors = %+v, want one severe %q", p.Errors, ErrNameUnparseable)
	}
}

func TestCapErrorsKeepsSevere(t *testing.T) {
	t.Parallel()
	p := &postern.Parsed{}
	for i := 0; i < 3*maxErrors; i++ {
		p.Errors = append(p.Errors, warning("w", "x"))
	}
	p.Errors = append(p.Errors, severe(ErrNameLimit, "late"))
	capErrors(p)
	if len(p.Errors) != maxErrors+1 {
		t.Fatalf("len = %d", len(p.Errors))
	}
	if !slices.ContainsFunc(p.Errors, func(e postern.ParseError) bool { return e.Severe && e.Detail == "late" }) {
		t.Errorf("severe error dropped")
	}
	last := p.Errors[len(p.Errors)-1]
	if last.Name != ErrNameTooMany || last.Detail != "201 more not listed" {
		t.Errorf("last = %+v", last)
	}
}
