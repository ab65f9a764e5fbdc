package msgindex

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func newStore(t testing.TB) *fsblob.Store {
	t.Helper()
	st, err := fsblob.New(filepath.Join(t.TempDir(), "store"), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func open(t *testing.T, path string, opts Options) *Index {
	t.Helper()
	x, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func flush(t *testing.T, x *Index) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := x.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func idAtTime(at time.Time) postern.MsgID {
	return postern.MsgID(ulid.MustNew(ulid.Timestamp(at), rand.Reader).String())
}

func envelope(at time.Time, sender, identity string, rcpts ...string) *postern.Envelope {
	env := &postern.Envelope{V: postern.EnvelopeVersion, ID: idAtTime(at), Sender: sender, Identity: identity,
		ClientIP: "192.0.2.7", Listener: "default", ReceivedAt: at, Size: 1234}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, postern.Recipient{Addr: r})
	}
	return env
}

// byDomain routes every recipient to the route named after its domain's
// first label, rejecting those of "reject.test".
func byDomain(env *postern.Envelope, _ *Parsed) []Assignment {
	var out []Assignment
	for _, r := range env.RecipientAddrs() {
		d := strings.ToLower(r[strings.LastIndexByte(r, '@')+1:])
		out = append(out, Assignment{Recipient: r, Route: strings.Split(d, ".")[0], Reject: d == "reject.test"})
	}
	return out
}

// stored writes what the gateway and the parse stage store of a message:
// envelope.json and parsed.json.
func stored(t testing.TB, st blob.Store, env *postern.Envelope, subject string, attachments int) {
	t.Helper()
	storedText(t, st, env, subject, attachments, strings.Repeat("body ", 100))
}

func storedText(t testing.TB, st blob.Store, env *postern.Envelope, subject string, attachments int, text string) {
	t.Helper()
	ctx := context.Background()
	b, _ := json.Marshal(env)
	if err := st.Put(ctx, env.ID.EnvelopeKey(), bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
	p := postern.Parsed{V: postern.ParsedVersion, ID: env.ID, Envelope: env, Subject: subject, Text: text}
	for i := range attachments {
		p.Attachments = append(p.Attachments, postern.Attachment{Filename: fmt.Sprintf("scan%d.pdf", i), Content: []byte("%PDF")})
	}
	b, _ = json.Marshal(p)
	if err := st.Put(ctx, env.ID.ParsedKey(), bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
}

func ev(at time.Time, stage, event, route string, attempt, status int) trace.Event {
	return trace.Event{Time: at, Stage: stage, Event: event, Route: route, Attempt: attempt, Status: status}
}

func ids(p Page) []postern.MsgID {
	var out []postern.MsgID
	for _, m := range p.Messages {
		out = append(out, m.ID)
	}
	return out
}

func list(t *testing.T, x *Index, q Query) []postern.MsgID {
	t.Helper()
	p, err := x.List(q)
	if err != nil {
		t.Fatal(err)
	}
	return ids(p)
}

// fixture indexes five messages a minute apart:
//
//	0 scanner  <scan@printer.lan>  to ann@app.test               delivered  "Scan 0001"
//	1 scanner  <scan@printer.lan>  to bob@app.test, x@files.test pending    "Scan 0002"
//	2 alarm    <>                  to ops@app.test               failed     "ALARM zone 4"
//	3 alarm    <panel@alarm.lan>   to ops@app.test               dead-lettered (parse)
//	4 scanner  <scan@printer.lan>  to no@reject.test             failed (rejected)
func fixture(t *testing.T) (*Index, *fsblob.Store, []*postern.Envelope) {
	t.Helper()
	st := newStore(t)
	x := open(t, filepath.Join(t.TempDir(), "index.db"), Options{Store: st, Router: byDomain})
	envs := []*postern.Envelope{
		envelope(t0, "scan@printer.lan", "scanner", "ann@app.test"),
		envelope(t0.Add(time.Minute), "scan@printer.lan", "scanner", "Bob@App.test", "x@files.test"),
		envelope(t0.Add(2*time.Minute), "", "alarm", "ops@app.test"),
		envelope(t0.Add(3*time.Minute), "panel@alarm.lan", "alarm", "ops@app.test"),
		envelope(t0.Add(4*time.Minute), "scan@printer.lan", "scanner", "no@reject.test"),
	}
	subjects := []string{"Scan 0001", "Scan 0002", "ALARM zone 4", "", "Scan 0003"}
	for i, env := range envs {
		stored(t, st, env, subjects[i], i%3)
		x.Accepted(env)
	}
	at := func(i int, s int) time.Time { return envs[i].ReceivedAt.Add(time.Duration(s) * time.Second) }
	x.Events(envs[0].ID, []trace.Event{ev(at(0, 1), "parse", trace.EventDone, "", 1, 0)})
	x.Events(envs[0].ID, []trace.Event{ev(at(0, 2), "webhook", trace.EventDelivered, "app", 1, 200)})
	x.Events(envs[1].ID, []trace.Event{ev(at(1, 1), "parse", trace.EventDone, "", 1, 0)})
	x.Events(envs[1].ID, []trace.Event{ev(at(1, 2), "webhook", trace.EventRetry, "app", 1, 503)})
	x.Events(envs[1].ID, []trace.Event{ev(at(1, 3), "webhook", trace.EventDelivered, "files", 1, 0)})
	x.Events(envs[2].ID, []trace.Event{ev(at(2, 1), "parse", trace.EventDone, "", 1, 0)})
	x.Events(envs[2].ID, []trace.Event{ev(at(2, 2), "webhook", trace.EventFailed, "app", 1, 410),
		ev(at(2, 2), "webhook", trace.EventDSNQueued, "app", 1, 0)})
	dead := ev(at(3, 1), "parse", trace.EventFailed, "", 1, 0)
	dead.DeadLettered = true
	x.Events(envs[3].ID, []trace.Event{dead})
	x.Events(envs[4].ID, []trace.Event{ev(at(4, 1), "parse", trace.EventDone, "", 1, 0)})
	flush(t, x)
	return x, st, envs
}

func TestRowsAndStatuses(t *testing.T) {
	t.Parallel()
	x, _, envs := fixture(t)
	want := []struct {
		status, subject string
		attachments     int
		routes          map[string]string
	}{
		{StatusDelivered, "Scan 0001", 0, map[string]string{"app": StatusDelivered}},
		{StatusPending, "Scan 0002", 1, map[string]string{"app": StatusPending, "files": StatusDelivered}},
		{StatusFailed, "ALARM zone 4", 2, map[string]string{"app": StatusFailed}},
		{StatusDeadLettered, "", 0, map[string]string{}},
		{StatusFailed, "Scan 0003", 1, map[string]string{"reject": StatusFailed}},
	}
	for i, w := range want {
		m, ok, err := x.Get(envs[i].ID)
		if err != nil || !ok {
			t.Fatalf("message %d: %v %v", i, ok, err)
		}
		got := map[string]string{}
		for _, r := range m.Routes {
			got[r.Name] = r.Status
		}
		if m.Status != w.status || m.Subject != w.subject || m.Attachments != w.attachments || !reflect.DeepEqual(got, w.routes) {
			t.Errorf("message %d: status %s subject %q attachments %d routes %v; want %s %q %d %v", i, m.Status, m.Subject, m.Attachments, got, w.status, w.subject, w.attachments, w.routes)
		}
	}
	m, _, _ := x.Get(envs[2].ID)
	if r := m.Routes[0]; r.Code != 410 || r.Attempts != 1 || m.Sender != "" || m.Identity != "alarm" || m.ClientIP != "192.0.2.7" || m.Size != 1234 {
		t.Errorf("message 2: %+v", m)
	}
	if m, _, _ := x.Get(envs[1].ID); !reflect.DeepEqual(m.Routes[0].Recipients, []string{"Bob@App.test"}) {
		t.Errorf("message 1's app route: recipients %v", m.Routes[0].Recipients)
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	x, _, envs := fixture(t)
	id := func(is ...int) []postern.MsgID {
		var out []postern.MsgID
		for _, i := range is {
			out = append(out, envs[i].ID)
		}
		return out
	}
	for _, c := range []struct {
		name string
		q    Query
		want []postern.MsgID
	}{
		{"all, newest first", Query{}, id(4, 3, 2, 1, 0)},
		{"rcpt exact, any case", Query{Rcpt: "<BOB@app.test>"}, id(1)},
		{"rcpt domain", Query{Rcpt: "@app.test"}, id(3, 2, 1, 0)},
		{"rcpt unknown", Query{Rcpt: "nobody@app.test"}, nil},
		{"from", Query{From: "scan@printer.lan"}, id(4, 1, 0)},
		{"from null sender", Query{From: "<>"}, id(2)},
		{"identity", Query{Identity: "alarm"}, id(3, 2)},
		{"route", Query{Route: "files"}, id(1)},
		{"status", Query{Status: StatusFailed}, id(4, 2)},
		{"status dead-lettered", Query{Status: StatusDeadLettered}, id(3)},
		{"subject", Query{Subject: "scan 000"}, id(4, 1, 0)},
		{"text in subject", Query{Text: "zone"}, id(2)},
		{"text in recipient", Query{Text: "files.test"}, id(1)},
		{"text is the id", Query{Text: string(envs[3].ID)}, id(3)},
		{"since", Query{Since: t0.Add(3 * time.Minute)}, id(4, 3)},
		{"until", Query{Until: t0.Add(2 * time.Minute)}, id(1, 0)},
		{"since and until", Query{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, id(2, 1)},
		{"filters together", Query{Rcpt: "@app.test", Identity: "scanner", Status: StatusDelivered}, id(0)},
		{"index and range", Query{From: "scan@printer.lan", Until: t0.Add(4 * time.Minute)}, id(1, 0)},
	} {
		if got := list(t, x, c.q); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	for _, q := range []Query{{Status: "done"}, {Cursor: "nope"}, {Limit: MaxLimit + 1}, {Since: t0, Until: t0}} {
		if _, err := x.List(q); err == nil {
			t.Errorf("%+v: no error", q)
		}
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	x := open(t, filepath.Join(t.TempDir(), "index.db"), Options{Store: st, MaxScan: 7})
	var want []postern.MsgID
	for i := range 23 {
		rcpt := "a@app.test"
		if i%2 == 1 {
			rcpt = "b@app.test"
		}
		env := envelope(t0.Add(time.Duration(i)*time.Millisecond), "s@x.test", "dev", rcpt)
		x.Accepted(env)
		want = append([]postern.MsgID{env.ID}, want...)
	}
	flush(t, x)
	collect := func(q Query) (all []postern.MsgID, pages int) {
		for {
			p, err := x.List(q)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, ids(p)...)
			pages++
			if p.Next == "" || pages > 50 {
				return all, pages
			}
			q.Cursor = p.Next
		}
	}
	if got, pages := collect(Query{Limit: 5}); !reflect.DeepEqual(got, want) || pages != 5 {
		t.Errorf("limit 5: %d pages, got %v, want %v", pages, got, want)
	}
	// An indexed filter walks its own keys.
	var evens []postern.MsgID
	for i := 0; i < len(want); i++ {
		if (len(want)-1-i)%2 == 0 {
			evens = append(evens, want[i])
		}
	}
	if got, _ := collect(Query{Rcpt: "a@app.test", Limit: 4}); !reflect.DeepEqual(got, evens) {
		t.Errorf("rcpt: got %v, want %v", got, evens)
	}
	// A text search looks at MaxScan rows per page: short pages, nothing
	// lost or repeated.
	got, pages := collect(Query{Text: "b@app", Limit: 100})
	var odds []postern.MsgID
	for i := 0; i < len(want); i++ {
		if (len(want)-1-i)%2 == 1 {
			odds = append(odds, want[i])
		}
	}
	if !reflect.DeepEqual(got, odds) || pages < 4 {
		t.Errorf("text: %d pages, got %v, want %v", pages, got, odds)
	}
}

func TestForgetRemovesRowAndKeys(t *testing.T) {
	t.Parallel()
	x, st, envs := fixture(t)
	for _, env := range envs {
		// As retention does: the objects go, then the row.
		for _, k := range []string{env.ID.EnvelopeKey(), env.ID.ParsedKey()} {
			if err := st.Delete(context.Background(), k); err != nil {
				t.Fatal(err)
			}
		}
		x.Forget(env.ID)
	}
	flush(t, x)
	if got := list(t, x, Query{}); len(got) != 0 {
		t.Errorf("rows left: %v", got)
	}
	if got := list(t, x, Query{Rcpt: "@app.test"}); len(got) != 0 {
		t.Errorf("rcpt finds %v", got)
	}
	x.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketKeys).Stats().KeyN; n != 0 {
			t.Errorf("%d filter keys left", n)
		}
		return nil
	})
	// A late event for a message whose objects are gone adds nothing.
	x.Events(envs[0].ID, []trace.Event{ev(time.Now(), "webhook", trace.EventDelivered, "app", 2, 200)})
	flush(t, x)
	if _, ok, _ := x.Get(envs[0].ID); !ok {
		return
	}
	t.Error("a forgotten message came back")
}

func TestRestart(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	path := filepath.Join(t.TempDir(), "index.db")
	x, err := Open(path, Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if !x.Created() {
		t.Error("a new file is not Created")
	}
	env := envelope(t0, "s@x.test", "dev", "a@app.test")
	x.Accepted(env)
	if err := x.Close(); err != nil { // Close writes what is queued
		t.Fatal(err)
	}
	x = open(t, path, Options{Store: st})
	if x.Created() || !x.State().Complete {
		t.Errorf("reopened: created %v, state %+v", x.Created(), x.State())
	}
	if got := list(t, x, Query{Rcpt: "a@app.test"}); !reflect.DeepEqual(got, []postern.MsgID{env.ID}) {
		t.Errorf("after restart: %v", got)
	}
	// A process that never closed the file (killed): the index says it
	// may miss updates, and keeps saying so.
	x.cancel()
	x.mu.Lock()
	x.closed = true
	x.mu.Unlock()
	x.signal()
	<-x.done
	x.db.Close()
	for range 2 {
		y, err := Open(path, Options{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		if s := y.State(); s.Complete || !strings.Contains(s.Reason, "reindex") {
			t.Errorf("after an unclean stop: %+v", s)
		}
		y.Close()
	}
}

func TestBacklogFullDropsAndSaysIncomplete(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	path := filepath.Join(t.TempDir(), "index.db")
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	x, err := Open(path, Options{Store: st, Backlog: 2, Hold: func(ctx context.Context, _ time.Time) {
		select {
		case held <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	first := envelope(t0, "s@x.test", "dev", "a@app.test")
	x.Accepted(first)
	<-held // the writer holds the first update (still queued); one more fills the backlog
	for i := range 5 {
		x.Accepted(envelope(t0.Add(time.Duration(i+1)*time.Second), "s@x.test", "dev", "a@app.test"))
	}
	s := x.State()
	if s.Complete || s.Dropped != 4 || s.Backlog != 2 || !strings.Contains(s.Reason, "fell behind") {
		t.Errorf("state %+v", s)
	}
	close(release)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	y := open(t, path, Options{Store: st})
	if s := y.State(); s.Complete || !strings.Contains(s.Reason, "fell behind") {
		t.Errorf("after restart: %+v", s)
	}
	if got := list(t, y, Query{}); len(got) != 2 {
		t.Errorf("%d rows, want the 2 that were not dropped", len(got))
	}
}

// TestRebuildEqualsLive feeds an index as the gateway does (the trace
// events through trace.WrapTee, which also writes them to the store), then
// rebuilds another from the store alone: the rows must be the same.
func TestRebuildEqualsLive(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	live := open(t, filepath.Join(t.TempDir(), "live.db"), Options{Store: st, Router: byDomain})
	ctx := context.Background()
	// Handlers that note what a stage would, per job.
	outcome := map[string]func(ctx context.Context) error{
		"delivered": func(ctx context.Context) error {
			trace.NoteOutcome(ctx, trace.EventDelivered, 200, "")
			return nil
		},
		"retry": func(ctx context.Context) error { trace.NoteStatus(ctx, 503); return errors.New("503 from the app") },
		"failed": func(ctx context.Context) error {
			trace.NoteOutcome(ctx, trace.EventFailed, 410, "gone")
			trace.NoteEvent(ctx, trace.EventDSNQueued, 0, "5.0.0")
			return nil
		},
		"expired": func(ctx context.Context) error { trace.NoteOutcome(ctx, trace.EventExpired, 500, ""); return nil },
		"dead":    func(ctx context.Context) error { return postern.Permanent(errors.New("bad job")) },
		"done":    func(ctx context.Context) error { return nil },
	}
	run := func(stage string, env *postern.Envelope, route, what string, attempt int) {
		h := trace.WrapTee(stage, postern.HandlerFunc(func(ctx context.Context, _ postern.Job) error { return outcome[what](ctx) }), st, nil, live.Events)
		body, _ := json.Marshal(map[string]any{"id": env.ID, "route": route})
		h.Handle(ctx, postern.Job{Body: body, Attempt: attempt})
	}
	var envs []*postern.Envelope
	for i, plan := range [][]string{
		{"app:delivered", "files:delivered"},
		{"app:retry", "app:retry", "app:delivered", "files:failed"},
		{"app:retry", "app:expired"},
		{"app:dead"},
		{"parse-dead"},
		{},
	} {
		env := envelope(time.Now().Add(time.Duration(i)*time.Millisecond), "s@x.test", "dev", "a@app.test", "b@files.test")
		envs = append(envs, env)
		stored(t, st, env, fmt.Sprintf("message %d", i), i)
		live.Accepted(env)
		if len(plan) == 1 && plan[0] == "parse-dead" {
			run("parse", env, "", "dead", 1)
			continue
		}
		run("parse", env, "", "done", 1)
		for n, step := range plan {
			r, what, _ := strings.Cut(step, ":")
			stage := "webhook"
			if r == "files" {
				stage = "relay"
			}
			run(stage, env, r, what, n+1)
		}
	}
	flush(t, live)

	rebuilt := open(t, filepath.Join(t.TempDir(), "rebuilt.db"), Options{Store: st, Router: byDomain})
	rep, err := rebuilt.Rebuild(ctx, st, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Messages != len(envs) || !rebuilt.State().Complete {
		t.Errorf("rebuild: %+v, state %+v", rep, rebuilt.State())
	}
	a, err := live.List(Query{Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	b, err := rebuilt.List(Query{Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := json.MarshalIndent(a, "", " ")
	jb, _ := json.MarshalIndent(b, "", " ")
	if !bytes.Equal(ja, jb) {
		t.Errorf("live index:\n%s\nrebuilt:\n%s", ja, jb)
	}
	statuses := map[string]int{}
	for _, m := range a.Messages {
		statuses[m.Status]++
	}
	if want := map[string]int{StatusDelivered: 1, StatusFailed: 1, StatusExpired: 1, StatusDeadLettered: 2, StatusPending: 1}; !reflect.DeepEqual(statuses, want) {
		t.Errorf("statuses %v, want %v", statuses, want)
	}
	// The filter keys too.
	keys := func(x *Index) (out []string) {
		x.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketKeys).ForEach(func(k, _ []byte) error { out = append(out, string(k)); return nil })
		})
		return out
	}
	if ka, kb := keys(live), keys(rebuilt); !reflect.DeepEqual(ka, kb) || len(ka) == 0 {
		t.Errorf("filter keys differ:\n%q\n%q", ka, kb)
	}
}

// crash stops x as a killed process would: the file is left open.
func crash(x *Index) {
	x.cancel()
	x.mu.Lock()
	x.closed = true
	x.mu.Unlock()
	x.signal()
	<-x.done
	x.db.Close()
}

// TestRepairAfterUncleanStop: after a crash, Repair rebuilds the rows the
// lost updates can have touched (recent and pending messages) from the
// store, and the index is complete again.
func TestRepairAfterUncleanStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newStore(t)
	path := filepath.Join(t.TempDir(), "index.db")
	x, err := Open(path, Options{Store: st, Router: byDomain})
	if err != nil {
		t.Fatal(err)
	}
	// happened records an event in the store, and tells the index when
	// it still can.
	happened := func(x *Index, env *postern.Envelope, e trace.Event) {
		t.Helper()
		if err := trace.Append(ctx, st, env.ID, e); err != nil {
			t.Fatal(err)
		}
		if x != nil {
			x.Events(env.ID, []trace.Event{e})
		}
	}
	now := time.Now().UTC()
	retried := envelope(now, "s@x.test", "dev", "a@app.test")
	removed := envelope(now.Add(time.Millisecond), "s@x.test", "dev", "b@app.test")
	for _, env := range []*postern.Envelope{retried, removed} {
		stored(t, st, env, "known", 0)
		x.Accepted(env)
		happened(x, env, ev(now.Add(time.Second), "parse", trace.EventDone, "", 1, 0))
		happened(x, env, ev(now.Add(2*time.Second), "webhook", trace.EventRetry, "app", 1, 503))
	}
	flush(t, x)
	crash(x)
	// What the index was never told: a delivery, a new message, and a
	// message's objects removed.
	happened(nil, retried, ev(now.Add(3*time.Second), "webhook", trace.EventDelivered, "app", 2, 200))
	unseen := envelope(now.Add(2*time.Millisecond), "s@x.test", "dev", "c@app.test")
	stored(t, st, unseen, "unseen", 1)
	happened(nil, unseen, ev(now.Add(time.Second), "parse", trace.EventDone, "", 1, 0))
	for _, k := range []string{removed.ID.EnvelopeKey(), removed.ID.ParsedKey()} {
		if err := st.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}

	y := open(t, path, Options{Store: st, Router: byDomain})
	if !y.Unclean() || y.State().Complete {
		t.Fatalf("after a crash: unclean %v, state %+v", y.Unclean(), y.State())
	}
	n, err := y.Repair(ctx, st, []string{"app"}, 100)
	if err != nil || n != 3 {
		t.Fatalf("repair: %d %v", n, err)
	}
	if s := y.State(); !s.Complete || y.Unclean() {
		t.Errorf("after repair: %+v", s)
	}
	if m, ok, _ := y.Get(retried.ID); !ok || m.Status != StatusDelivered {
		t.Errorf("retried message: %+v", m)
	}
	if m, ok, _ := y.Get(unseen.ID); !ok || m.Subject != "unseen" || m.Status != StatusPending {
		t.Errorf("unseen message: %+v", m)
	}
	if _, ok, _ := y.Get(removed.ID); ok {
		t.Error("a removed message kept its row")
	}
	if got := list(t, y, Query{Status: StatusPending}); !reflect.DeepEqual(got, []postern.MsgID{unseen.ID}) {
		t.Errorf("pending after repair: %v (stale keys?)", got)
	}

	// Too much to repair: nothing changes, the index stays incomplete.
	crash(y)
	z := open(t, path, Options{Store: st, Router: byDomain})
	if _, err := z.Repair(ctx, st, nil, 1); err == nil || z.State().Complete {
		t.Errorf("repair over the limit: %v, state %+v", err, z.State())
	}
}
