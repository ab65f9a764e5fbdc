package webhook

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
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
		ev, err := buildReceived(t.Context(), job, &pb.Parsed, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeReceived(ev, pb.Text, pb.HTML)
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
	if _, err := encodeReceived(ev, json.RawMessage(`{"x":1}`), nil); err == nil {
		t.Error("an object as text was spliced in")
	}
}
