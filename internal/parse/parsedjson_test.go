package parse

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

// marshalParsed writes what json.Marshal writes, and its spans hold the
// bodies' JSON strings, for bodies of every kind of character JSON escapes.
func TestMarshalParsedMatchesMarshal(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", " ", "\r\n", "\"", "\\", "<", ">", "&", "\t", "\x00", "\x1f", "é", "\u2028", "\u2029", "\xff", "\xc3", "😀", "\"text\":\"\",\"html\":\"\""}
	body := func() string {
		var b strings.Builder
		for range rng.IntN(300) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	date := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	for i := range 300 {
		p := &postern.Parsed{
			V: 1, ID: "01JEXAMPLE0000000000000000",
			Headers:     []postern.Header{{Name: "Subject", Value: body()}},
			Subject:     body(),
			Text:        body(),
			HTML:        body(),
			Date:        &date,
			TextDerived: i%2 == 0,
			Attachments: []postern.Attachment{{Filename: body(), ContentType: "text/plain", Size: 3}},
		}
		if i%7 == 0 {
			p.Text = ""
		}
		if i%5 == 0 {
			p.HTML = ""
		}
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		got, text, html, err := marshalParsed(p, new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: marshalParsed differs from json.Marshal:\n got %q\nwant %q", i, got, want)
		}
		var full postern.Parsed // what readers of json.Marshal's bytes see
		if err := json.Unmarshal(want, &full); err != nil {
			t.Fatal(err)
		}
		var gotText, gotHTML string
		if err := json.Unmarshal(got[text[0]:text[1]], &gotText); err != nil || gotText != full.Text {
			t.Fatalf("case %d: text span %v holds %q (%v), want the text", i, text, got[text[0]:text[1]], err)
		}
		if err := json.Unmarshal(got[html[0]:html[1]], &gotHTML); err != nil || gotHTML != full.HTML {
			t.Fatalf("case %d: html span %v holds %q (%v), want the HTML", i, html, got[html[0]:html[1]], err)
		}

		// The spans cut it back into a document with empty bodies and the
		// two strings; any change to the bytes, or spans for other bytes,
		// and they do not.
		spans := postern.SpansFor(got, text, html)
		rest, ct, ch, ok := spans.Cut(got)
		if !ok || !bytes.Equal(ct, got[text[0]:text[1]]) || !bytes.Equal(ch, got[html[0]:html[1]]) {
			t.Fatalf("case %d: Cut = %v", i, ok)
		}
		var back postern.Parsed
		if err := json.Unmarshal(rest, &back); err != nil || back.Text != "" || back.HTML != "" || back.Subject != full.Subject {
			t.Fatalf("case %d: the rest does not decode to the document without bodies: %v %q", i, err, rest)
		}
		changed := bytes.Clone(got)
		changed[len(changed)/2] ^= 1
		if _, _, _, ok := spans.Cut(changed); ok {
			t.Fatalf("case %d: Cut accepted changed bytes", i)
		}
		if _, _, _, ok := spans.Cut(append(bytes.Clone(got), ' ')); ok {
			t.Fatalf("case %d: Cut accepted a longer document", i)
		}
		off := *spans
		off.Text[0]++
		if _, _, _, ok := off.Cut(got); ok {
			t.Fatalf("case %d: Cut accepted a span off by one", i)
		}
	}
}

func BenchmarkMarshalParsed1MiB(b *testing.B) {
	p := Parse(benchPlain1MiB(), Config{})
	b.SetBytes(int64(len(p.Text)))
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("marshalParsed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf := getBuf()
			if _, _, _, err := marshalParsed(p, buf); err != nil {
				b.Fatal(err)
			}
			putBuf(buf)
		}
	})
}
