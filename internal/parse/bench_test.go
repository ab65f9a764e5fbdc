package parse

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/postern"
)

// benchText is a 10 KiB text message: the common case, a device's report.
func benchText() []byte {
	var m msgBuilder
	m.header("Scanner 3F <scanner-3f@devices.example>", "inbox@app.example", "=?utf-8?q?Scan_finished_=E2=80=93_job_4711?=").
		line("Received: from scanner.lan (192.0.2.10) by gw.example with ESMTP; Tue, 04 Mar 2025 09:15:00 +0100").
		line("X-Mailer: ScanToMail 2.1").
		line("Content-Type: text/plain; charset=utf-8").
		line("Content-Transfer-Encoding: quoted-printable").
		line("")
	var body bytes.Buffer
	for i := 0; body.Len() < 10<<10; i++ {
		fmt.Fprintf(&body, "Page %d scanned at 300 dpi, colour, duplex. Grüße vom Drucker.\r\n", i)
	}
	m.body(qp(body.Bytes()))
	return m.bytes()
}

// benchAttachments is a 1 MiB message: text and HTML alternatives, an
// inline logo, and three attachments (PDF, image, CSV).
func benchAttachments() []byte {
	filler := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7) ^ seed ^ byte(i>>8)
		}
		return b
	}
	var m msgBuilder
	m.header("ERP <erp@billing.example>", "invoices@app.example", "Invoices and scans for March").
		line(`Content-Type: multipart/mixed; boundary="mix"`).
		line("").
		line("--mix").
		line(`Content-Type: multipart/alternative; boundary="alt"`).
		line("").
		line("--alt").
		line("Content-Type: text/plain; charset=utf-8").
		line("").
		line(strings.Repeat("Invoice 2025-03 attached; totals below. ", 50)).
		line("--alt").
		line(`Content-Type: multipart/related; boundary="rel"`).
		line("").
		line("--rel").
		line("Content-Type: text/html; charset=utf-8").
		line("").
		line("<html><body>" + strings.Repeat("<p>Invoice 2025-03 attached.</p>", 60) + `<img src="cid:logo@erp"></body></html>`).
		line("--rel").
		line("Content-Type: image/png").
		line("Content-Transfer-Encoding: base64").
		line("Content-ID: <logo@erp>").
		line("Content-Disposition: inline").
		line("").
		body(b64(append([]byte("\x89PNG\r\n\x1a\n"), filler(8<<10, 1)...))).
		line("--rel--").
		line("--alt--")
	for _, a := range []struct {
		name, ctype string
		size        int
	}{{"invoice.pdf", "application/pdf", 520 << 10}, {"scan.jpg", "image/jpeg", 200 << 10}, {"items.csv", "text/csv", 20 << 10}} {
		m.line("--mix").
			line(`Content-Type: `, a.ctype, `; name="`, a.name, `"`).
			line("Content-Transfer-Encoding: base64").
			line(`Content-Disposition: attachment; filename="`, a.name, `"`).
			line("").
			body(b64(filler(a.size, byte(len(a.name)))))
	}
	m.line("--mix--")
	return m.bytes()
}

// benchPlain1MiB is a 1 MiB single-part us-ascii text message, as a
// billing system's report or a log mail.
func benchPlain1MiB() []byte { return benchPlain(1 << 20) }

// benchPlain is an ERP's report: one us-ascii part of n bytes of lines.
func benchPlain(n int) []byte {
	var m msgBuilder
	m.header("ERP <erp@billing.example>", "reports@app.example", "Nightly report").
		line("Content-Type: text/plain; charset=us-ascii").
		line("Content-Transfer-Encoding: 7bit").
		line("")
	var body bytes.Buffer
	for i := 0; body.Len() < n; i++ {
		fmt.Fprintf(&body, "%08d  invoice 2025-03-%04d  customer 4711  amount 1234.56 EUR  status posted\r\n", i, i%9999)
	}
	m.body(body.Bytes())
	return m.bytes()
}

// benchPDF1MiB is what a scanner sends: a line of text and a 1 MiB PDF.
func benchPDF1MiB() []byte { return benchPDF(1 << 20) }

// benchPDF is a scanner's message: a line of text and an n-byte PDF.
func benchPDF(n int) []byte {
	pdf := make([]byte, n)
	for i := range pdf {
		pdf[i] = byte(i*13) ^ byte(i>>9)
	}
	copy(pdf, "%PDF-1.4\n")
	var m msgBuilder
	m.header("Scanner 3F <scanner-3f@devices.example>", "scans@app.example", "Scan from 3F").
		line(`Content-Type: multipart/mixed; boundary="scan"`).
		line("").
		line("--scan").
		line("Content-Type: text/plain; charset=us-ascii").
		line("").
		line("Scanned document attached.").
		line("--scan").
		line(`Content-Type: application/pdf; name="scan0001.pdf"`).
		line("Content-Transfer-Encoding: base64").
		line(`Content-Disposition: attachment; filename="scan0001.pdf"`).
		line("").
		body(b64(pdf)).
		line("--scan--")
	return m.bytes()
}

// BenchmarkParse measures Parse alone; MB/s is of the raw message.
func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct {
		name string
		raw  []byte
	}{{"text-10KiB", benchText()}, {"attachments-1MiB", benchAttachments()}, {"text-1MiB", benchPlain1MiB()}, {"pdf-1MiB", benchPDF1MiB()}} {
		b.Run(bc.name, func(b *testing.B) {
			p := Parse(bc.raw, Config{})
			if len(p.Errors) != 0 || p.Text == "" {
				b.Fatalf("%s does not parse cleanly: %+v", bc.name, p.Errors)
			}
			b.SetBytes(int64(len(bc.raw)))
			b.ReportAllocs()
			for b.Loop() {
				Parse(bc.raw, Config{})
			}
		})
	}
}

// BenchmarkHandleLarge runs the stage on an 18 MiB message (text, HTML, a
// 12 MiB binary and a 1.5 MiB CSV attachment) stored in fsblob, both ways:
// whole (the message held, as below StreamAbove) and large (two streaming
// passes). B/op is what the parse costs in memory.
func BenchmarkHandleLarge(b *testing.B) {
	raw, _, _ := largeMessage(12 << 20)
	for _, bc := range []struct {
		name  string
		above int64
	}{{"whole", 1 << 30}, {"large", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			store, err := fsblob.New(b.TempDir(), fsblob.Options{})
			if err != nil {
				b.Fatal(err)
			}
			h, _, body := storedJob(b, Config{StreamAbove: bc.above}, store, raw, nil)
			ctx := context.Background()
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if err := h.Handle(ctx, postern.Job{Body: body, Attempt: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandle1MiB runs the stage on the 1 MiB messages devices send,
// stored in fsblob, parsed whole (as below StreamAbove) and through the
// large-message path, whose attachments are decoded with the standard
// library's base64 instead of enmime's byte-at-a-time readers.
func BenchmarkHandle1MiB(b *testing.B) {
	for _, m := range []struct {
		name string
		raw  []byte
	}{{"text", benchPlain1MiB()}, {"pdf", benchPDF1MiB()}, {"attachments", benchAttachments()}, {"pdf-100KiB", benchPDF(75 << 10)}, {"text-100KiB", benchPlain(100 << 10)}} {
		for _, bc := range []struct {
			name  string
			above int64
		}{{"whole", 1 << 30}, {"large", 1}} {
			b.Run(m.name+"/"+bc.name, func(b *testing.B) {
				store, err := fsblob.New(b.TempDir(), fsblob.Options{})
				if err != nil {
					b.Fatal(err)
				}
				h, _, body := storedJob(b, Config{StreamAbove: bc.above}, store, m.raw, nil)
				ctx := context.Background()
				b.SetBytes(int64(len(m.raw)))
				b.ReportAllocs()
				for b.Loop() {
					if err := h.Handle(ctx, postern.Job{Body: body, Attempt: 1}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
