package parse

import (
	"context"
	"testing"

	"github.com/postern/postern/internal/postern"
)

// OnParsed is told the parsed form once parsed.json holds it, with the
// envelope the stage routes; a With copy leaves the original handler alone.
func TestOnParsed(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testRules)
	id, env, body := hs.submit(t, buildMessage(t).raw, "archive@example.com")
	var got []string
	h := hs.h.With(OnParsed(func(e *postern.Envelope, p *postern.Parsed) {
		if _, ok := hs.store.Bytes(id.ParsedKey()); !ok {
			t.Error("OnParsed called before parsed.json was stored")
		}
		got = append(got, string(p.ID)+" "+e.Sender+" "+p.Subject)
	}))
	if err := h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if want := string(id) + " " + env.Sender + " Scan ready – Büro 3"; len(got) != 1 || got[0] != want {
		t.Errorf("OnParsed saw %q, want [%q]", got, want)
	}
	if err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 2}); err != nil || len(got) != 1 {
		t.Errorf("the original handler called OnParsed too (%d calls, %v)", len(got), err)
	}
}
