package webhook

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/postern/postern/internal/postern"
)

// The payload built around the stored bodies is byte for byte what
// json.Marshal gives for the whole event, whatever the bodies hold.
func TestEncodeReceivedMatchesMarshal(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"a", "Grüße", "<b>&amp;</b>", "\"", "\\", "\u2028", "\u2029", "\x01", "\t\r\n", "😀", `"text":"","html":"",`, "\ufffd", " "}
	random := func() string {
		var b strings.Builder
		for range rng.IntN(30) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	for i := range 500 {
		f := newFixture(t)
		job := &f.job
		p := &f.parsed
		p.Text, p.HTML, p.Subject = random(), random(), random()
		// Inline content of every length base64 pads differently, and
		// none; the stored attachment keeps none.
		p.Attachments[0].Content = []byte(random())
		if i%3 == 0 {
			p.Attachments[0].Content = nil
		}
		if i%7 == 0 {
			p.Text = ""
		}
		if i%5 == 0 {
			p.HTML = ""
		}
		stored, err := json.Marshal(p) // as parse writes parsed.json
		if err != nil {
			t.Fatal(err)
		}
		var pb parsedBodies
		if err := json.Unmarshal(stored, &pb); err != nil {
			t.Fatal(err)
		}
		if pb.Parsed.Text != "" || pb.Parsed.HTML != "" {
			t.Fatal("the bodies were decoded into Parsed: the outer fields must take them")
		}
		if len(pb.Parsed.Attachments) != 0 {
			t.Fatal("the attachments were decoded into Parsed: the outer field must take them")
		}
		contents := pb.inParsed()
		ev, err := buildReceived(t.Context(), job, &pb.Parsed, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeReceived(ev, pb.Text, pb.HTML, contents)
		if err != nil {
			t.Fatal(err)
		}
		full, err := buildReceived(t.Context(), job, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(full)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// A stored body that is not a JSON string is refused, not spliced in.
func TestEncodeReceivedRefusesNonStrings(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ev, err := buildReceived(t.Context(), &f.job, &f.parsed, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev.Data.Text, ev.Data.HTML = "", ""
	for i := range ev.Data.Attachments {
		ev.Data.Attachments[i].Content = []byte{}
	}
	if _, err := encodeReceived(ev, json.RawMessage(`{"x":1}`), nil, nil); err == nil {
		t.Error("an object as text was spliced in")
	}
	if _, err := encodeReceived(ev, nil, nil, []json.RawMessage{json.RawMessage(`[1]`), nil}); err == nil {
		t.Error("an array as attachment content was spliced in")
	}
	if _, err := encodeReceived(ev, nil, nil, []json.RawMessage{json.RawMessage(`"YWJj"`)}); err == nil {
		t.Error("contents for fewer attachments than the payload has were spliced in")
	}
}

// bodySpans is what parse puts in a job for parsed.json stored as pj, whose
// text and html are text and html: the first `"text":` is the key (in a
// JSON string its quotes would be escaped), and the strings follow it.
func bodySpans(t testing.TB, pj []byte, text, html string) *postern.BodySpans {
	t.Helper()
	tj, _ := json.Marshal(text)
	hj, _ := json.Marshal(html)
	i := bytes.Index(pj, []byte(`"text":`))
	if i < 0 {
		t.Fatal("no text key")
	}
	ts := int64(i + len(`"text":`))
	te := ts + int64(len(tj))
	hs := te + int64(len(`,"html":`))
	return postern.SpansFor(pj, [2]int64{ts, te}, [2]int64{hs, hs + int64(len(hj))})
}

// A job that says where the bodies are delivers the bytes a job without
// it does; spans that were for another parsed.json (a retried parse wrote
// a new one) are ignored, and the new one is delivered whole.
func TestBodySpansDeliverTheSamePayload(t *testing.T) {
	t.Parallel()
	deliver := func(f *fixture) []byte {
		rec := &recorder{}
		srv := serve(t, rec)
		h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}}, &fakeSender{}, testNow, WithURLs(fakeURLs{}))
		if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		reqs := rec.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests", len(reqs))
		}
		return reqs[0].body
	}
	store := func(f *fixture) []byte {
		pj, err := json.Marshal(f.parsed)
		if err != nil {
			t.Fatal(err)
		}
		f.put(t, f.job.ID.ParsedKey(), pj)
		return pj
	}
	f := newFixture(t)
	f.parsed.Text = strings.Repeat("line <1> & \"two\"\r\n", 10000)
	f.parsed.HTML = "<p>" + strings.Repeat("é\u2028", 5000) + "</p>"
	pj := store(f)
	want := deliver(f)
	if !bytes.Contains(want, []byte(`line \u003c1\u003e \u0026 \"two\"\r\n`)) {
		t.Fatal("the payload does not hold the text")
	}

	f.job.Bodies = bodySpans(t, pj, f.parsed.Text, f.parsed.HTML)
	if got := deliver(f); !bytes.Equal(got, want) {
		t.Fatalf("with spans the payload differs (%d bytes, want %d)", len(got), len(want))
	}
	f.job.Parsed = pj // the copy a job carries, with the same spans
	if got := deliver(f); !bytes.Equal(got, want) {
		t.Fatalf("with spans into the job's copy the payload differs (%d bytes, want %d)", len(got), len(want))
	}
	f.job.Parsed = nil

	// A retried parse stored another parsed.json (a longer subject moves
	// the bodies); the job still has the first one's spans.
	f.parsed.Subject += " (again)"
	f.parsed.Text = strings.Replace(f.parsed.Text, "two", "TWO", 1)
	store(f)
	stale := f.job.Bodies
	f.job.Bodies = nil
	want = deliver(f)
	f.job.Bodies = stale
	if got := deliver(f); !bytes.Equal(got, want) {
		t.Fatal("with spans for an earlier parsed.json the payload differs")
	}
	if !bytes.Contains(want, []byte(`\"TWO\"`)) || !bytes.Contains(want, []byte(`(again)`)) {
		t.Fatal("the payload is not the new parsed.json's")
	}
}

// A text parsed.json names in raw.eml (TextRaw) is delivered as the same
// payload bytes as a text parsed.json holds; a span raw.eml does not reach
// is a permanent error, never a payload without its text.
func TestTextRawDeliversTheSamePayload(t *testing.T) {
	t.Parallel()
	text := strings.Repeat("00000042 invoice <ok> & \"paid\"\r\n", 3000)
	raw := []byte("Subject: report\r\n\r\n" + text)
	deliver := func(f *fixture) ([]byte, error) {
		rec := &recorder{}
		srv := serve(t, rec)
		h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}}, &fakeSender{}, testNow, WithURLs(fakeURLs{}))
		err := h.Handle(t.Context(), f.jobBody(t, 1))
		if reqs := rec.requests(); len(reqs) == 1 {
			return reqs[0].body, err
		}
		return nil, err
	}
	f := newFixture(t)
	f.put(t, f.job.ID.RawKey(), raw)
	f.parsed.Text = text
	pj, _ := json.Marshal(f.parsed)
	f.put(t, f.job.ID.ParsedKey(), pj)
	want, err := deliver(f)
	if err != nil || want == nil {
		t.Fatalf("held text: %v", err)
	}

	at := int64(len("Subject: report\r\n\r\n"))
	f.parsed.Text = ""
	f.parsed.TextRaw = &[2]int64{at, at + int64(len(text))}
	pj, _ = json.Marshal(f.parsed)
	f.put(t, f.job.ID.ParsedKey(), pj)
	f.job.Bodies = bodySpans(t, pj, "", f.parsed.HTML)
	got, err := deliver(f)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("named text: %v; payload %d bytes, want the %d of the held text", err, len(got), len(want))
	}

	f.parsed.TextRaw = &[2]int64{at, int64(len(raw)) + 10}
	pj, _ = json.Marshal(f.parsed)
	f.put(t, f.job.ID.ParsedKey(), pj)
	f.job.Bodies = nil
	got, err = deliver(f)
	if got != nil || err == nil || !postern.IsPermanent(err) {
		t.Fatalf("a span past raw.eml's end: payload %d bytes, error %v; want no payload and a permanent error", len(got), err)
	}
}
