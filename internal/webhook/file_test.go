package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/postern/postern/internal/apispec"
)

// A raw directory delivery writes the envelope beside the message: a Bcc
// copy's recipient is in no header, so without it an application could
// not tell whom the copy was for. It is what the webhook-postern-envelope
// header carries, as plain JSON.
func TestDirectoryRawEnvelope(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.job.Recipients = []string{"copy@app.example"} // Bcc: in no header of f.raw
	dir := t.TempDir()
	h := f.handler(t, Target{Dir: dir, Payload: PayloadRaw}, &fakeSender{}, testNow)
	for attempt := 1; attempt <= 2; attempt++ { // a redelivery rewrites the same files
		if err := h.Handle(t.Context(), f.jobBody(t, attempt)); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	base := string(f.job.ID) + ".scans"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", e.Name(), fi.Mode(), err)
		}
	}
	if want := []string{base + ".eml", base + ".envelope.json"}; !slices.Equal(names, want) {
		t.Fatalf("dir holds %v, want %v", names, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, base+".eml")); err != nil || !bytes.Equal(b, f.raw) {
		t.Errorf("raw file = %q, %v", b, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, base+".envelope.json"))
	if err != nil {
		t.Fatal(err)
	}
	var env RawEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("envelope does not parse: %v", err)
	}
	e := f.job.Envelope
	if env.V != PayloadVersion || env.ID != f.job.ID || env.Route != "scans" || env.Sender != e.Sender ||
		!slices.Equal(env.Recipients, []string{"copy@app.example"}) || env.Identity != e.Identity ||
		env.ClientIP != e.ClientIP || env.HELO != e.HELO || env.Listener != e.Listener || !env.ReceivedAt.Equal(e.ReceivedAt) {
		t.Errorf("envelope %+v, from job %+v", env, e)
	}
	// The same JSON as the header of a POSTed raw payload, so one decoder
	// (and one schema) serves both.
	header, err := rawEnvelope(&f.job)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := base64.RawURLEncoding.DecodeString(header); !bytes.Equal(bytes.TrimSuffix(b, []byte("\n")), want) {
		t.Errorf("envelope file %s, header %s", b, want)
	}
	if err := apispec.ValidateEnvelopeHeader(base64.RawURLEncoding.EncodeToString(bytes.TrimSpace(b))); err != nil {
		t.Errorf("envelope file breaks the envelope schema: %v", err)
	}
}

// The envelope is in place before the message appears: when it cannot be
// written, neither is the message, and the attempt is retried.
func TestDirectoryRawEnvelopeFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	base := string(f.job.ID) + ".scans"
	// A directory where the envelope goes makes its rename fail.
	if err := os.Mkdir(filepath.Join(dir, base+EnvelopeFileExt), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, base+EnvelopeFileExt, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h := f.handler(t, Target{Dir: dir, Payload: PayloadRaw}, &fakeSender{}, testNow)
	mustTemporary(t, h.Handle(t.Context(), f.jobBody(t, 1)))
	if _, err := os.Stat(filepath.Join(dir, base+".eml")); !os.IsNotExist(err) {
		t.Errorf("the message was written without its envelope: %v", err)
	}
}
