package parse

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// The corpus in testdata/corpus is generated here, deterministically, so
// every byte of it is explained by the code below; `go test -run Corpus
// -update` rewrites it and the goldens. Each message comes with the facts a
// reader can check without the golden: decoded subject, sender name, body
// text and attachment names.

// corpusMessage is one generated message and what Parse must make of it.
type corpusMessage struct {
	name string // file name without .eml
	raw  []byte
	want corpusWant
}

// corpusWant holds facts about the parsed message. Empty fields are not
// checked; files, when not nil, lists every attachment's filename in order.
type corpusWant struct {
	subject  string
	fromName string
	text     string // a substring of Text
	html     string // a substring of HTML
	derived  bool   // Text derived from HTML
	files    []string
	types    []string // content types, in order, when not nil
	severe   bool     // a severe parse error is listed
	errName  string   // an error of this name is listed
	headers  int      // number of header fields, when not 0
	cids     []string // Content-IDs of the attachments, when not nil
}

// msgBuilder builds a message with CRLF line ends.
type msgBuilder struct{ b bytes.Buffer }

// line writes one line; parts are concatenated.
func (m *msgBuilder) line(parts ...string) *msgBuilder {
	for _, p := range parts {
		m.b.WriteString(p)
	}
	m.b.WriteString("\r\n")
	return m
}

// body writes bytes as they are; the caller has put CRLFs in.
func (m *msgBuilder) body(b []byte) *msgBuilder {
	m.b.Write(b)
	return m
}

// header writes the usual header of a corpus message: the date and id are
// fixed so the goldens are.
func (m *msgBuilder) header(from, to, subject string) *msgBuilder {
	return m.line("From: ", from).
		line("To: ", to).
		line("Subject: ", subject).
		line("Date: Tue, 04 Mar 2025 09:15:00 +0100").
		line("Message-ID: <", strings.ToLower(strings.NewReplacer(" ", "-", ":", "").Replace(asciiOnly(subject))), "@corpus.postern.test>").
		line("MIME-Version: 1.0")
}

func (m *msgBuilder) bytes() []byte { return bytes.Clone(m.b.Bytes()) }

// asciiOnly keeps letters and digits of s, for ids.
func asciiOnly(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ') {
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}

// crlf turns \n line ends into \r\n.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// b64 is base64 in 76-column lines, each ended by CRLF.
func b64(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	for len(enc) > 76 {
		out.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	out.WriteString(enc + "\r\n")
	return out.Bytes()
}

// qp is quoted-printable of b (which uses CRLF line ends), ended by CRLF.
func qp(b []byte) []byte {
	var out bytes.Buffer
	w := quotedprintable.NewWriter(&out)
	w.Write(b)
	w.Close()
	return append(out.Bytes(), '\r', '\n')
}

// encode turns UTF-8 text into a legacy charset; it fails the test if the
// text does not fit the charset, so a typo cannot go unseen.
func encode(t *testing.T, e encoding.Encoding, s string) []byte {
	t.Helper()
	b, err := e.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatalf("encode %q: %v", s, err)
	}
	return b
}

// bWord is an RFC 2047 B encoded word.
func bWord(charset string, b []byte) string {
	return "=?" + charset + "?B?" + base64.StdEncoding.EncodeToString(b) + "?="
}

// qWord is an RFC 2047 Q encoded word.
func qWord(charset string, b []byte) string {
	var out strings.Builder
	out.WriteString("=?" + charset + "?Q?")
	for _, c := range b {
		switch {
		case c == ' ':
			out.WriteByte('_')
		case c > ' ' && c < 127 && c != '=' && c != '?' && c != '_':
			out.WriteByte(c)
		default:
			fmt.Fprintf(&out, "=%02X", c)
		}
	}
	out.WriteString("?=")
	return out.String()
}

// Fixed binary payloads: real enough for content sniffing.
func samplePNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for i := range 16 {
		img.Set(i%4, i/4, color.RGBA{R: uint8(i * 16), G: 0x80, B: 0xff - uint8(i*16), A: 0xff})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func samplePDF() []byte {
	return []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" +
		"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
}

func sampleZIP(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "scan-001.txt", Method: zip.Deflate,
		Modified: time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(strings.Repeat("page 1 of 1\n", 20)))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sampleTNEF is a small TNEF stream (the winmail.dat Outlook sends): the
// signature, a key, and the version, code page and message class attributes,
// each with its checksum. Postern does not decode TNEF; it passes it on.
func sampleTNEF() []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write(le.AppendUint32(nil, 0x223e9f78)) // TNEF signature
	b.Write(le.AppendUint16(nil, 0x0001))     // legacy key
	attr := func(level byte, id uint32, data []byte) {
		b.WriteByte(level)
		b.Write(le.AppendUint32(nil, id))
		b.Write(le.AppendUint32(nil, uint32(len(data))))
		b.Write(data)
		var sum uint16
		for _, c := range data {
			sum += uint16(c)
		}
		b.Write(le.AppendUint16(nil, sum))
	}
	attr(0x01, 0x00089006, le.AppendUint32(nil, 0x00010000))                  // attTnefVersion
	attr(0x01, 0x00069007, append(le.AppendUint32(nil, 1252), 0, 0, 0, 0))    // attOemCodepage
	attr(0x01, 0x00078008, []byte("IPM.Microsoft Mail.Note\x00"))             // attMessageClass
	attr(0x02, 0x00018010, []byte("Quarterly figures.xlsx\x00"))              // attAttachTitle
	attr(0x02, 0x0006800f, append([]byte("PK\x03\x04"), make([]byte, 60)...)) // attAttachData
	return b.Bytes()
}

// corpus returns every corpus message, in a fixed order.
func corpus(t *testing.T) []corpusMessage {
	t.Helper()
	var out []corpusMessage
	add := func(name string, raw []byte, want corpusWant) {
		out = append(out, corpusMessage{name: name, raw: raw, want: want})
	}
	structure(t, add)
	charsets(t, add)
	filenames(t, add)
	malformed(t, add)
	return out
}

type addFunc func(name string, raw []byte, want corpusWant)

func structure(t *testing.T, add addFunc) {
	m := &msgBuilder{}
	m.header("Scanner 3F <scanner-3f@devices.example>", "inbox@app.example", "Scan finished").
		line("Content-Type: text/plain; charset=us-ascii").
		line("Content-Transfer-Encoding: 7bit").
		line("").
		body([]byte(crlf("Your scan is ready: 3 pages, 300 dpi.\nJob 42 on Scanner 3F.\n")))
	add("plain", m.bytes(), corpusWant{subject: "Scan finished", fromName: "Scanner 3F",
		text: "Your scan is ready: 3 pages, 300 dpi.", files: []string{}})

	// Raw UTF-8 in headers (RFC 6532), as a device that speaks SMTPUTF8 sends.
	m = &msgBuilder{}
	m.header("Jörg Müller <jörg@bücher.example>", "Zoë <zoë@app.example>", "Grüße aus der Buchhaltung ✓").
		line("Content-Type: text/plain; charset=utf-8").
		line("Content-Transfer-Encoding: 8bit").
		line("").
		body([]byte(crlf("Straße, Größe, naïve café — ✓\n")))
	add("plain-utf8-headers", m.bytes(), corpusWant{subject: "Grüße aus der Buchhaltung ✓", fromName: "Jörg Müller",
		text: "Straße, Größe, naïve café — ✓", files: []string{}})

	m = &msgBuilder{}
	m.header("Alarm Panel <panel@devices.example>", "ops@app.example", "=?utf-8?q?Alarm_=E2=80=93_zone_4?=").
		line(`Content-Type: multipart/alternative; boundary="alt-1"`).
		line("").
		line("This is a multi-part message in MIME format.").
		line("--alt-1").
		line("Content-Type: text/plain; charset=utf-8").
		line("Content-Transfer-Encoding: quoted-printable").
		line("").
		body(qp([]byte(crlf("Zone 4 – motion detected at 09:14.\nNo operator acknowledged it.")))).
		line("--alt-1").
		line("Content-Type: text/html; charset=utf-8").
		line("Content-Transfer-Encoding: quoted-printable").
		line("").
		body(qp([]byte("<html><body><p>Zone 4 &ndash; <b>motion detected</b> at 09:14.</p></body></html>"))).
		line("--alt-1--")
	add("alternative", m.bytes(), corpusWant{subject: "Alarm – zone 4", fromName: "Alarm Panel",
		text: "Zone 4 – motion detected at 09:14.\r\nNo operator", html: "<b>motion detected</b>", files: []string{}})

	m = &msgBuilder{}
	m.header("Camera 7 <cam7@devices.example>", "security@app.example", "Snapshot from camera 7").
		line(`Content-Type: multipart/alternative; boundary="alt-2"`).
		line("").
		line("--alt-2").
		line("Content-Type: text/plain; charset=utf-8").
		line("").
		line("Motion at the loading dock. Snapshot attached.").
		line("--alt-2").
		line(`Content-Type: multipart/related; type="text/html"; boundary="rel-2"`).
		line("").
		line("--rel-2").
		line("Content-Type: text/html; charset=utf-8").
		line("").
		line(`<p>Motion at the loading dock.</p><img src="cid:snap-0915@cam7.devices.example" alt="snapshot">`).
		line("--rel-2").
		line(`Content-Type: image/png; name="snap-0915.png"`).
		line("Content-Transfer-Encoding: base64").
		line("Content-ID: <snap-0915@cam7.devices.example>").
		line(`Content-Disposition: inline; filename="snap-0915.png"`).
		line("").
		body(b64(samplePNG(t))).
		line("--rel-2--").
		line("--alt-2--")
	add("related-inline-image", m.bytes(), corpusWant{subject: "Snapshot from camera 7", text: "Motion at the loading dock.",
		html: "cid:snap-0915@cam7.devices.example", files: []string{"snap-0915.png"}, types: []string{"image/png"},
		cids: []string{"snap-0915@cam7.devices.example"}})

	m = &msgBuilder{}
	m.header("ERP <erp@billing.example>", "invoices@app.example", "Invoices for March").
		line(`Content-Type: multipart/mixed; boundary="mix-3"`).
		line("").
		line("--mix-3").
		line("Content-Type: text/plain; charset=utf-8").
		line("").
		line("Three files attached: the invoice, the line items and the scans.").
		line("--mix-3").
		line(`Content-Type: application/pdf; name="invoice-2025-03.pdf"`).
		line("Content-Transfer-Encoding: base64").
		line(`Content-Disposition: attachment; filename="invoice-2025-03.pdf"`).
		line("").
		body(b64(samplePDF())).
		line("--mix-3").
		line(`Content-Type: text/csv; charset=utf-8; name="items.csv"`).
		line(`Content-Disposition: attachment; filename="items.csv"`).
		line("").
		line("sku,qty,price").
		line("A-1,2,9.90").
		line("B-7,1,120.00").
		line("--mix-3").
		line(`Content-Type: application/octet-stream; name="scans.zip"`).
		line("Content-Transfer-Encoding: base64").
		line(`Content-Disposition: attachment; filename="scans.zip"`).
		line("").
		body(b64(sampleZIP(t))).
		line("--mix-3--")
	add("mixed-attachments", m.bytes(), corpusWant{subject: "Invoices for March", text: "Three files attached",
		files: []string{"invoice-2025-03.pdf", "items.csv", "scans.zip"},
		types: []string{"application/pdf", "text/csv", "application/octet-stream"}})

	m = &msgBuilder{}
	m.header("Hanna <hanna@app.example>", "archive@app.example", "HTML only").
		line("Content-Type: text/html; charset=utf-8").
		line("").
		line("<html><body><h1>Report</h1><p>Temperature <b>21.5 °C</b>, humidity 40 %.</p></body></html>")
	add("html-only", m.bytes(), corpusWant{subject: "HTML only", html: "<h1>Report</h1>", text: "Temperature", derived: true, files: []string{}})

	inner := &msgBuilder{}
	inner.header("Plant PLC <plc@plant.example>", "maintenance@app.example", "Inner: pump 2 report").
		line(`Content-Type: multipart/mixed; boundary="inner-4"`).
		line("").
		line("--inner-4").
		line("Content-Type: text/plain; charset=utf-8").
		line("").
		line("Pump 2 ran 14 h; pressure in range.").
		line("--inner-4").
		line(`Content-Type: text/csv; name="pump2.csv"`).
		line(`Content-Disposition: attachment; filename="pump2.csv"`).
		line("").
		line("hour,bar").
		line("1,2.1").
		line("--inner-4--")
	m = &msgBuilder{}
	m.header("Maintenance <maintenance@app.example>", "archive@app.example", "Fwd: Inner: pump 2 report").
		line(`Content-Type: multipart/mixed; boundary="outer-4"`).
		line("").
		line("--outer-4").
		line("Content-Type: text/plain; charset=utf-8").
		line("").
		line("Forwarding the PLC report below.").
		line("--outer-4").
		line("Content-Type: message/rfc822").
		line(`Content-Disposition: attachment; filename="pump2-report.eml"`).
		line("").
		body(inner.bytes()).
		line("--outer-4--")
	add("nested-rfc822", m.bytes(), corpusWant{subject: "Fwd: Inner: pump 2 report", text: "Forwarding the PLC report below.",
		files: []string{"pump2-report.eml"}, types: []string{"message/rfc822"}})

	// An Outlook-style invitation: the calendar as an alternative body and
	// again as an .ics attachment.
	ics := crlf("BEGIN:VCALENDAR\nPRODID:-//Postern corpus//EN\nVERSION:2.0\nMETHOD:REQUEST\nBEGIN:VEVENT\n" +
		"UID:7f3c0e52-corpus@postern.test\nDTSTAMP:20250304T081500Z\nDTSTART:20250310T090000Z\nDTEND:20250310T093000Z\n" +
		"SUMMARY:Pump 2 inspection\nLOCATION:Hall B\nORGANIZER;CN=Hanna:mailto:hanna@app.example\n" +
		"ATTENDEE;CN=Maintenance;RSVP=TRUE:mailto:maintenance@app.example\nEND:VEVENT\nEND:VCALENDAR\n")
	m = &msgBuilder{}
	m.header("Hanna <hanna@app.example>", "Maintenance <maintenance@app.example>", "Invitation: Pump 2 inspection @ Mon 10 Mar 2025 10:00").
		line(`Content-Type: multipart/mixed; boundary="cal-mix"`).
		line("").
		line("--cal-mix").
		line(`Content-Type: multipart/alternative; boundary="cal-alt"`).
		line("").
		line("--cal-alt").
		line("Content-Type: text/plain; charset=utf-8").
		line("").
		line("Pump 2 inspection, Monday 10 March 10:00, Hall B.").
		line("--cal-alt").
		line("Content-Type: text/html; charset=utf-8").
		line("").
		line("<p>Pump 2 inspection, <b>Monday 10 March 10:00</b>, Hall B.</p>").
		line("--cal-alt").
		line(`Content-Type: text/calendar; charset="utf-8"; method=REQUEST`).
		line("Content-Transfer-Encoding: 7bit").
		line("").
		body([]byte(ics)).
		line("--cal-alt--").
		line("--cal-mix").
		line(`Content-Type: application/ics; name="invite.ics"`).
		line(`Content-Disposition: attachment; filename="invite.ics"`).
		line("Content-Transfer-Encoding: base64").
		line("").
		body(b64([]byte(ics))).
		line("--cal-mix--")
	add("calendar-invite", m.bytes(), corpusWant{subject: "Invitation: Pump 2 inspection @ Mon 10 Mar 2025 10:00",
		text: "Pump 2 inspection, Monday 10 March", html: "<b>Monday 10 March 10:00</b>",
		types: []string{"text/calendar", "application/ics"}})

	m = &msgBuilder{}
	m.header("Finance <finance@legacy.example>", "inbox@app.example", "Quarterly figures").
		line(`Content-Type: multipart/mixed; boundary="tnef-5"`).
		line("").
		line("--tnef-5").
		line("Content-Type: text/plain; charset=us-ascii").
		line("").
		line("See the attached figures.").
		line("--tnef-5").
		line(`Content-Type: application/ms-tnef; name="winmail.dat"`).
		line("Content-Transfer-Encoding: base64").
		line(`Content-Disposition: attachment; filename="winmail.dat"`).
		line("").
		body(b64(sampleTNEF())).
		line("--tnef-5--")
	add("tnef-winmail", m.bytes(), corpusWant{subject: "Quarterly figures", text: "See the attached figures.",
		files: []string{"winmail.dat"}, types: []string{"application/ms-tnef"}})
}

// charsets adds one message per legacy charset: the subject and sender
// name as encoded words in that charset, the body in it too.
func charsets(t *testing.T, add addFunc) {
	tests := []struct {
		name, label string
		enc         encoding.Encoding
		subject     string
		from        string
		text        string
		cte         string // 8bit, quoted-printable or base64
		word        func(string, []byte) string
	}{
		{"iso-8859-1", "iso-8859-1", charmap.ISO8859_1, "Lieferschein für Müller, Zürich", "Jürgen Weiß",
			"Grüße aus Köln: Lieferschein Nr. 4711, Preis 12,50 £, ½ Palette.", "quoted-printable", qWord},
		{"iso-8859-2", "ISO-8859-2", charmap.ISO8859_2, "Faktura nr 12/2025, Łódź", "Paweł Żółkiewski",
			"Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.", "quoted-printable", qWord},
		{"iso-8859-15", "iso-8859-15", charmap.ISO8859_15, "Facture : 25 € pour l'œuvre", "Šárka Œhlenschläger",
			"Prix : 25 €. Cœur d'œuvre, Šárka et Žofie.", "8bit", qWord},
		{"windows-1251", "windows-1251", charmap.Windows1251, "Счёт № 17 на оплату", "ООО «Ромашка»",
			"Счёт № 17 — оплатить до пятницы. Спасибо!", "base64", bWord},
		{"windows-1252", "Windows-1252", charmap.Windows1252, "Invoice “Q3” – 1 200 €", "Zoë O’Brien",
			"Invoice “Q3” – total 1 200 € … Straße 5.", "quoted-printable", qWord},
		{"shift_jis", "Shift_JIS", japanese.ShiftJIS, "スキャン完了のお知らせ", "複合機 3階",
			"スキャンが完了しました。3ページ。", "base64", bWord},
		{"gb2312", "gb2312", simplifiedchinese.GBK, "扫描完成通知", "复印机 三楼",
			"扫描完成：共3页。请查收附件。", "base64", bWord},
		// 镕 is in GBK but not in GB2312.
		{"gbk", "GBK", simplifiedchinese.GBK, "朱镕基文件扫描", "办公室",
			"文件扫描完成：朱镕基。", "8bit", bWord},
		{"big5", "big5", traditionalchinese.Big5, "掃描完成通知", "影印機 三樓",
			"掃描完成：共3頁。請查收附件。", "base64", bWord},
		{"koi8-r", "koi8-r", charmap.KOI8R, "Отчёт готов", "Сервер Москва",
			"Привет из Москвы! Отчёт готов.", "8bit", qWord},
	}
	for _, tt := range tests {
		body := encode(t, tt.enc, crlf(tt.text+"\n"))
		switch tt.cte {
		case "quoted-printable":
			body = qp(body)
		case "base64":
			body = b64(body)
		}
		m := &msgBuilder{}
		m.header(tt.word(tt.label, encode(t, tt.enc, tt.from))+" <sender@"+tt.name+".example>", "inbox@app.example",
			tt.word(tt.label, encode(t, tt.enc, tt.subject))).
			line("Content-Type: text/plain; charset=", tt.label).
			line("Content-Transfer-Encoding: ", tt.cte).
			line("").
			body(body)
		add("charset-"+tt.name, m.bytes(), corpusWant{subject: tt.subject, fromName: tt.from, text: tt.text, files: []string{}})
	}

	// A Windows-1251 HTML body declares its charset only in a meta tag, as
	// some mailers do; the MIME header says nothing.
	html := encode(t, charmap.Windows1251, `<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251"></head>`+
		`<body><p>Отчёт за март готов.</p></body></html>`)
	m := &msgBuilder{}
	m.header("Report <report@1251.example>", "inbox@app.example", "HTML charset from meta").
		line("Content-Type: text/html").
		line("Content-Transfer-Encoding: base64").
		line("").
		body(b64(html))
	add("charset-html-meta", m.bytes(), corpusWant{subject: "HTML charset from meta", html: "Отчёт за март готов.", text: "Отчёт за март готов.", derived: true, files: []string{}})
}

// filenames adds attachment names in every form mailers use: RFC 2231 with
// a charset and language, with continuations (encoded and not), on the
// Content-Type name parameter, and RFC 2047 words where 2231 belongs.
func filenames(t *testing.T, add addFunc) {
	att := func(m *msgBuilder, headers ...string) {
		m.line("--names")
		for _, h := range headers {
			m.line(h)
		}
		m.line("Content-Transfer-Encoding: base64").line("").body(b64([]byte("data for " + headers[0] + "\n")))
	}
	m := &msgBuilder{}
	m.header("Files <files@app.example>", "inbox@app.example", "=?UTF-8?Q?Dateinamen_=E2=80=93_RFC_2231?=").
		line(`Content-Type: multipart/mixed; boundary="names"`).
		line("").
		line("--names").
		line("Content-Type: text/plain; charset=utf-8").
		line("").
		line("Seven attachments with encoded names.")
	att(m, "Content-Type: application/pdf",
		"Content-Disposition: attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz%202025.pdf")
	att(m, "Content-Type: text/plain",
		"Content-Disposition: attachment; filename*=iso-8859-1'de'Stra%DFe.txt")
	att(m, "Content-Type: application/pdf",
		"Content-Disposition: attachment;",
		" filename*0*=UTF-8''%E6%89%AB%E6%8F%8F;",
		" filename*1*=%E6%96%87%E4%BB%B6;",
		` filename*2=".pdf"`)
	att(m, "Content-Type: text/plain",
		"Content-Disposition: attachment;",
		` filename*0="a-very-long-file-name-that-goes-";`,
		` filename*1="on-and-on-and-on.txt"`)
	att(m, `Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document; name="=?UTF-8?B?0J7RgtGH0ZHRgi5kb2N4?="`,
		"Content-Disposition: attachment")
	att(m, "Content-Type: application/octet-stream; name*=utf-8''%F0%9F%93%8E%20clip.txt")
	att(m, "Content-Type: application/vnd.ms-excel",
		"Content-Disposition: attachment; filename*=windows-1251''%D1%F7%E5%F2.xls")
	m.line("--names--")
	add("rfc2231-filenames", m.bytes(), corpusWant{subject: "Dateinamen – RFC 2231", text: "Seven attachments",
		files: []string{"Rechnung März 2025.pdf", "Straße.txt", "扫描文件.pdf", "a-very-long-file-name-that-goes-on-and-on-and-on.txt",
			"Отчёт.docx", "📎 clip.txt", "Счет.xls"}})
}

// malformed adds the messages a careless or hostile sender produces.
func malformed(t *testing.T, add addFunc) {
	m := &msgBuilder{}
	m.header("Old Copier <copier@devices.example>", "inbox@app.example", "Missing closing boundary").
		line(`Content-Type: multipart/mixed; boundary="cut"`).
		line("").
		line("--cut").
		line("Content-Type: text/plain; charset=us-ascii").
		line("").
		line("The closing boundary never comes.").
		line("--cut").
		line(`Content-Type: application/pdf; name="scan.pdf"`).
		line("Content-Transfer-Encoding: base64").
		line(`Content-Disposition: attachment; filename="scan.pdf"`).
		line("").
		body(b64(samplePDF()))
	add("malformed-missing-boundary", m.bytes(), corpusWant{subject: "Missing closing boundary", text: "The closing boundary never comes.",
		files: []string{"scan.pdf"}})

	m = &msgBuilder{}
	m.header("Old Copier <copier@devices.example>", "inbox@app.example", "Bad base64").
		line(`Content-Type: multipart/mixed; boundary="b64"`).
		line("").
		line("--b64").
		line("Content-Type: text/plain; charset=utf-8").
		line("Content-Transfer-Encoding: base64").
		line("").
		line("VGhlIGJvZHkgaXMg!!!bm90IHF1aXRlIGJh$$$c2U2NC4=").
		line("--b64").
		line(`Content-Type: application/octet-stream; name="blob.bin"`).
		line("Content-Transfer-Encoding: base64").
		line(`Content-Disposition: attachment; filename="blob.bin"`).
		line("").
		line("AAECAwQFBgcI@@@@CQoLDA0ODw==").
		line("--b64--")
	add("malformed-bad-base64", m.bytes(), corpusWant{subject: "Bad base64", files: []string{"blob.bin"}, errName: "Malformed Base64"})

	m = &msgBuilder{}
	m.header("Old Copier <copier@devices.example>", "inbox@app.example", "=?x-unknown-charset?Q?caf=E9?= menu").
		line("Content-Type: text/plain; charset=x-unknown-charset").
		line("Content-Transfer-Encoding: 8bit").
		line("").
		body([]byte("Caf\xe9 au lait, cr\xe8me br\xfbl\xe9e.\r\n"))
	add("malformed-unknown-charset", m.bytes(), corpusWant{subject: "=?x-unknown-charset?Q?caf=E9?= menu",
		text: "Caf", files: []string{}, errName: "Character Set Conversion"})

	m = &msgBuilder{}
	m.header("Fuzzer <fuzz@hostile.example>", "inbox@app.example", "100 levels deep")
	m.line(`Content-Type: multipart/mixed; boundary="d0"`).line("")
	for i := range 100 {
		m.line(fmt.Sprintf("--d%d", i))
		if i < 99 {
			m.line(fmt.Sprintf(`Content-Type: multipart/mixed; boundary="d%d"`, i+1)).line("")
		} else {
			m.line("Content-Type: text/plain").line("").line("bottom")
		}
	}
	for i := 99; i >= 0; i-- {
		m.line(fmt.Sprintf("--d%d--", i))
	}
	add("malformed-deep-nesting", m.bytes(), corpusWant{subject: "100 levels deep", fromName: "Fuzzer", severe: true,
		errName: ErrNameLimit, files: []string{}})

	m = &msgBuilder{}
	m.line("Return-Path: <loop@hostile.example>")
	for i := range 10000 {
		m.line(fmt.Sprintf("Received: by r%d.example", i))
	}
	m.header("Loop <loop@hostile.example>", "inbox@app.example", "Ten thousand header lines").
		line("Content-Type: text/plain").
		line("").
		line("Still a message.")
	add("malformed-many-headers", m.bytes(), corpusWant{subject: "Ten thousand header lines", fromName: "Loop",
		text: "Still a message.", headers: 10008, files: []string{}})

	m = &msgBuilder{}
	m.line("From: Nul <nul@hostile.example>").
		line("To: inbox@app.example").
		line("Subject: NUL\x00in the subject").
		line("X-Nul: a\x00b").
		line("Date: Tue, 04 Mar 2025 09:15:00 +0100").
		line("MIME-Version: 1.0").
		line(`Content-Type: multipart/mixed; boundary="nul"`).
		line("").
		line("--nul").
		line("Content-Type: text/plain; charset=utf-8").
		line("").
		line("before\x00after").
		line("--nul").
		line("Content-Type: application/octet-stream; name=\"nul\x00.bin\"").
		line("Content-Disposition: attachment").
		line("").
		line("\x00\x00\x00\x00").
		line("--nul--")
	add("malformed-nul-bytes", m.bytes(), corpusWant{subject: "NUL\uFFFDin the subject", fromName: "Nul", text: "before\uFFFDafter",
		files: []string{"nul\uFFFD.bin"}, errName: ErrNameNUL})
}
