package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

// typicalParsed is a device message as Postern usually sees one: a dozen
// headers, a short text and HTML body, and optionally one inline-sized
// attachment (a scanned page).
func typicalParsed(id postern.MsgID, attachment int) postern.Parsed {
	date := time.Date(2025, 3, 4, 9, 58, 0, 0, time.UTC)
	p := postern.Parsed{
		V:  postern.ParsedVersion,
		ID: id,
		Headers: []postern.Header{
			{Name: "Received", Value: "from scanner.lan (192.0.2.10) by gw.example with ESMTPS id " + string(id) + "; Tue, 4 Mar 2025 09:58:00 +0000"},
			{Name: "From", Value: "Scanner 3F <scan@dev.example>"},
			{Name: "To", Value: "inbox@app.example"},
			{Name: "Subject", Value: "Scan from Scanner 3F – job 4711"},
			{Name: "Date", Value: "Tue, 04 Mar 2025 09:58:00 +0000"},
			{Name: "Message-ID", Value: "<4711.scan@dev.example>"},
			{Name: "MIME-Version", Value: "1.0"},
			{Name: "Content-Type", Value: `multipart/mixed; boundary="b1"`},
			{Name: "X-Mailer", Value: "ScanToMail 2.1"},
			{Name: "X-Device-Serial", Value: "SN-0042-7781"},
		},
		From:      []postern.Address{{Name: "Scanner 3F", Address: "scan@dev.example"}},
		To:        []postern.Address{{Address: "inbox@app.example"}},
		Subject:   "Scan from Scanner 3F – job 4711",
		Date:      &date,
		MessageID: "4711.scan@dev.example",
		Text:      strings.Repeat("Scan finished: 3 pages, 300 dpi, colour. Grüße vom Drucker.\n", 20),
		HTML:      "<html><body>" + strings.Repeat("<p>Scan finished: <b>3</b> pages, 300 dpi.</p>", 40) + "</body></html>",
		Errors:    []postern.ParseError{},
	}
	p.Attachments = []postern.Attachment{}
	if attachment > 0 {
		content := bytes.Repeat([]byte{0x25, 0x50, 0x44, 0x46, 0x00, 0xff, 0x10, 0x80}, attachment/8)
		p.Attachments = append(p.Attachments, postern.Attachment{
			Filename: "scan-4711.pdf", ContentType: "application/pdf", DetectedType: "application/pdf",
			Size: int64(len(content)), SHA256: strings.Repeat("ab", 32), Disposition: "attachment", Content: content,
		})
	}
	return p
}

// BenchmarkSignAndDeliver is one whole delivery attempt as the stage makes
// it: read the parsed JSON from the store, build and encode the payload,
// sign it with two secrets (a rotation), and POST it through the guarded
// client to a receiver on loopback that answers 204. Bytes/op is the
// payload size.
func BenchmarkSignAndDeliver(b *testing.B) {
	for _, bc := range []struct {
		attachment, text int
		whole, raw       bool
	}{{0, 0, false, false}, {64 << 10, 0, false, false}, {0, 1 << 20, false, false}, {0, 1 << 20, true, false}, {0, 1 << 20, false, true}} {
		name := fmt.Sprintf("attachment=%dKiB", bc.attachment>>10)
		if bc.text > 0 {
			// A 1 MiB report: parsed.json is read from the store, its
			// bodies located by the job's spans as parse sends them, or
			// (whole) decoded whole as for a replayed job, or (raw) its
			// text read from raw.eml, as one machine's parse names it.
			name = fmt.Sprintf("text=%dKiB", bc.text>>10)
			if bc.whole {
				name += "/whole"
			}
			if bc.raw {
				name += "/raw"
			}
		}
		b.Run(name, func(b *testing.B) {
			f := newFixture(b)
			f.parsed = typicalParsed(f.job.ID, bc.attachment)
			if bc.text > 0 {
				line := "00000042  invoice 2025-03-0042  customer 4711  amount 1234.56 EUR  <posted> & \"ok\"\r\n"
				f.parsed.Text = strings.Repeat(line, bc.text/len(line)+1)[:bc.text]
			}
			if bc.raw {
				const head = "Subject: report\r\n\r\n"
				f.put(b, f.job.ID.RawKey(), []byte(head+f.parsed.Text))
				f.parsed.TextRaw = &[2]int64{int64(len(head)), int64(len(head) + len(f.parsed.Text))}
				f.parsed.Text = ""
			}
			pj, err := json.Marshal(f.parsed)
			if err != nil {
				b.Fatal(err)
			}
			f.put(b, f.job.ID.ParsedKey(), pj)
			if bc.text > 0 && !bc.whole {
				f.job.Bodies = bodySpans(b, pj, f.parsed.Text, f.parsed.HTML)
			}

			var payload atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, _ := io.Copy(io.Discard, r.Body)
				payload.Store(n)
				w.WriteHeader(http.StatusNoContent)
			}))
			b.Cleanup(srv.Close)
			target := Target{URL: srv.URL, Secrets: [][]byte{testSecret, testSecret2}, AllowPrivate: true}
			h := New(f.store, func(string) (Target, bool) { return target, true }, nil, &fakeSender{},
				slog.New(slog.DiscardHandler), WithClock(func() time.Time { return testNow }))
			job := f.jobBody(b, 1)
			if err := h.Handle(b.Context(), job); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(payload.Load())
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := h.Handle(b.Context(), job); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSign is the signature alone, over a 16 KiB body.
func BenchmarkSign(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 16<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		Sign(testSecret, "01JKZ8W5E3Q9V4T7B2N6M0XR1C.scans", testNow, body)
	}
}
