package msgindex

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// What the parse stage hands over (Parsed) makes the row, with no parsed.json
// to read: here there is none in the store at all.
func TestParsedFactsNeedNoStoreRead(t *testing.T) {
	t.Parallel()
	st := newStore(t) // empty: a read of parsed.json would find nothing
	x := open(t, filepath.Join(t.TempDir(), "index.db"), Options{Store: st, Router: byDomain})
	env := envelope(t0, "scan@printer.lan", "scanner", "ann@app.test", "x@files.test")
	x.Accepted(env)
	x.Parsed(env, &postern.Parsed{ID: env.ID, Subject: "Scan 0042",
		Attachments: []postern.Attachment{{Filename: "a.pdf"}, {Filename: "b.pdf"}}})
	x.Events(env.ID, []trace.Event{ev(t0.Add(time.Second), "parse", trace.EventDone, "", 1, 0)})
	flush(t, x)
	m, ok, err := x.Get(env.ID)
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if m.Subject != "Scan 0042" || m.Attachments != 2 || len(m.Routes) != 2 {
		t.Errorf("row = subject %q, %d attachments, routes %+v; want the stage's facts and two routes", m.Subject, m.Attachments, m.Routes)
	}
	if got := len(x.facts); got != 0 {
		t.Errorf("%d facts kept after their done event, want none", got)
	}
	if s := x.State(); !s.Complete {
		t.Errorf("index incomplete: %+v", s)
	}
}

// Facts are bounded: past maxFacts waiting, more are not kept (the writer
// then reads parsed.json as before).
func TestParsedFactsBounded(t *testing.T) {
	t.Parallel()
	x := open(t, filepath.Join(t.TempDir(), "index.db"), Options{})
	for i := range maxFacts + 10 {
		env := envelope(t0.Add(time.Duration(i)*time.Millisecond), "a@b", "id", "c@d")
		x.Parsed(env, &postern.Parsed{ID: env.ID})
	}
	if got := len(x.facts); got != maxFacts {
		t.Errorf("%d facts kept, want at most %d", got, maxFacts)
	}
}
