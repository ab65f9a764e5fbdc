package ingest

import (
	"bytes"
	"log/slog"
	"testing"
	"testing/iotest"
)

func TestHasBareLF(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prev byte
		b    string
		want bool
	}{
		{0, "a\r\nb\r\n", false},
		{0, "a\nb\r\n", true},
		{0, "\n", true},
		{'\r', "\nx", false},
		{'x', "\nx", true},
		{0, "no line end", false},
		{0, "a\r\n\r\n\n", true},
		{0, "\r\r\n", false},
	} {
		if got := hasBareLF(tc.prev, []byte(tc.b)); got != tc.want {
			t.Errorf("hasBareLF(%q, %q) = %v, want %v", tc.prev, tc.b, got, tc.want)
		}
	}
}

// The envelope says whether the message had a line ended by LF alone,
// whatever the reads' boundaries (a CR at the end of one read, its LF at
// the start of the next, is a proper line end). Spooled seals the same way.
func TestAcceptNotesBareLF(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		want bool
	}{
		{"Subject: x\r\n\r\nline\r\nline\r\n", false},
		{"Subject: x\r\n\r\nline\nline\r\n", true},
		{"Subject: x\n\nline\n", true},
	} {
		st, q := setup(t)
		env := newEnv()
		// One byte per read: every CR and LF meets a read boundary.
		body := iotest.OneByteReader(bytes.NewReader([]byte(tc.body)))
		if err := New(st, q, slog.New(slog.DiscardHandler)).Accept(t.Context(), env, body); err != nil {
			t.Fatal(err)
		}
		if env.BareLF != tc.want {
			t.Errorf("%q: BareLF = %v, want %v", tc.body, env.BareLF, tc.want)
		}
		if job := receiveJob(t, q); job.Envelope.BareLF != tc.want {
			t.Errorf("%q: the job's envelope has BareLF %v, want %v", tc.body, job.Envelope.BareLF, tc.want)
		}
	}
}
