package app_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"
	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/logbuf"
	"github.com/postern/postern/internal/msgindex"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

func listMessages(t *testing.T, admin string, q url.Values) app.MessageList {
	t.Helper()
	code, body := get(t, admin+"/v1/messages?"+q.Encode())
	if code != http.StatusOK {
		t.Fatalf("GET /v1/messages?%s: %d %s", q.Encode(), code, body)
	}
	var l app.MessageList
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// findOne polls the list for q until it holds one message with status.
func findOne(t *testing.T, admin string, q url.Values, status string) msgindex.Message {
	t.Helper()
	var l app.MessageList
	eventually(t, q.Encode()+" "+status, func() bool {
		l = listMessages(t, admin, q)
		return len(l.Messages) == 1 && l.Messages[0].Status == status
	})
	return l.Messages[0]
}

func scanMessage(t *testing.T, subject string) []byte {
	t.Helper()
	p, err := enmime.Builder().From("", "scanner@lan.example").To("", "ann@app.test").Subject(subject).
		Text([]byte("Your scan is attached.\r\n")).AddAttachment([]byte("%PDF-1.4 fake"), "application/pdf", "scan.pdf").Build()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestMessagesAPI sends mail over SMTP and finds it through /v1/messages:
// by recipient, delivered; a webhook that refuses for good, failed. The
// index survives a restart, and gateway reindex rebuilds the same rows.
func TestMessagesAPI(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	gone, goneSrv := newHook(t)
	gone.status = http.StatusGone
	cfg := testConfig(t, hs.URL)
	cfg.Routes = append(cfg.Routes, config.Route{Name: "broken", Match: config.Match{Recipients: []string{"*@broken.test"}},
		Webhook: &config.Webhook{URL: goneSrv.URL, Secrets: []string{testSecret}, AllowPrivate: true}})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, stop := start(t, cfg)
	admin := "http://" + a.AdminAddr().String()
	smtpAddr := a.SMTPAddrs()[0].String()
	reply, err := send(t, smtpAddr, "scanner@lan.example", []string{"ann@app.test"}, scanMessage(t, "Scan 0001"))
	if err != nil {
		t.Fatal(err)
	}
	delivered := postern.MsgID(strings.TrimPrefix(reply, "OK "))
	reply, err = send(t, smtpAddr, "alarm@lan.example", []string{"gone@broken.test"},
		[]byte("From: alarm@lan.example\r\nSubject: zone 4 open\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	failed := postern.MsgID(strings.TrimPrefix(reply, "OK "))

	m := findOne(t, admin, url.Values{"rcpt": {"ann@app.test"}}, msgindex.StatusDelivered)
	if m.ID != delivered || m.Subject != "Scan 0001" || m.Attachments != 1 || m.Sender != "scanner@lan.example" ||
		m.Identity == "" || m.Listener == "" || m.ClientIP != "127.0.0.1" || m.Size == 0 || m.ReceivedAt.IsZero() {
		t.Errorf("delivered message: %+v", m)
	}
	if len(m.Routes) != 1 || m.Routes[0].Name != "app" || m.Routes[0].Status != msgindex.StatusDelivered || m.Routes[0].Code != 200 {
		t.Errorf("delivered message's routes: %+v", m.Routes)
	}
	f := findOne(t, admin, url.Values{"rcpt": {"gone@broken.test"}}, msgindex.StatusFailed)
	if f.ID != failed || len(f.Routes) != 1 || f.Routes[0].Name != "broken" || f.Routes[0].Status != msgindex.StatusFailed || f.Routes[0].Code != http.StatusGone {
		t.Errorf("failed message: %+v", f)
	}
	for q, want := range map[string][]postern.MsgID{
		"status=failed":              {failed},
		"status=delivered":           {delivered},
		"q=SCAN":                     {delivered},
		"from=%40lan.example":        {failed, delivered},
		"route=broken":               {failed},
		"subject=zone":               {failed},
		"limit=1":                    {failed},
		"until=2000-01-01T00:00:00Z": nil,
	} {
		v, _ := url.ParseQuery(q)
		var got []postern.MsgID
		for _, m := range listMessages(t, admin, v).Messages {
			got = append(got, m.ID)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}
	if l := listMessages(t, admin, url.Values{"limit": {"1"}}); l.NextCursor == "" || !l.Index.Complete {
		t.Errorf("page of 1: next %q, index %+v", l.NextCursor, l.Index)
	}
	for path, want := range map[string]int{
		"/v1/messages?status=done":             http.StatusBadRequest,
		"/v1/messages?since=yesterday":         http.StatusBadRequest,
		"/v1/messages/not-an-id":               http.StatusBadRequest,
		"/v1/messages/" + ulid.Make().String(): http.StatusNotFound,
	} {
		if code, body := get(t, admin+path); code != want {
			t.Errorf("%s: %d %s, want %d", path, code, body, want)
		}
	}

	// One message: the row, its envelope and its timeline.
	code, body := get(t, admin+"/v1/messages/"+string(failed))
	if code != http.StatusOK {
		t.Fatalf("GET message: %d %s", code, body)
	}
	var d app.MessageDetail
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, ev := range d.Timeline {
		events = append(events, ev.Stage+":"+ev.Event)
	}
	if !d.Indexed || d.Message.Status != msgindex.StatusFailed || d.Envelope == nil || d.Envelope.HELO != "scanner.lan" ||
		len(events) == 0 || events[0] != "gateway:received" || !inOrder(events, "parse:done", "parse:"+trace.EventRouted, "webhook:failed", "webhook:"+trace.EventDSNQueued) {
		t.Errorf("detail: indexed %v status %s envelope %+v timeline %v", d.Indexed, d.Message.Status, d.Envelope, events)
	}

	// A restart keeps the index; gateway reindex rebuilds the same rows.
	live := listMessages(t, admin, nil)
	stop()
	a, stop = start(t, cfg)
	admin = "http://" + a.AdminAddr().String()
	if after := listMessages(t, admin, nil); !reflect.DeepEqual(after.Messages, live.Messages) || !after.Index.Complete {
		t.Errorf("after a restart:\n%+v\nwant\n%+v", after, live)
	}
	stop()
	rep, err := app.Reindex(t.Context(), cfg, quietLogger())
	if err != nil || rep.Messages != 2 {
		t.Fatalf("reindex: %+v %v", rep, err)
	}
	a, _ = start(t, cfg)
	admin = "http://" + a.AdminAddr().String()
	rebuilt := listMessages(t, admin, nil)
	jl, _ := json.MarshalIndent(live.Messages, "", " ")
	jr, _ := json.MarshalIndent(rebuilt.Messages, "", " ")
	if !bytes.Equal(jl, jr) || !rebuilt.Index.Complete {
		t.Errorf("live:\n%s\nrebuilt (index %+v):\n%s", jl, rebuilt.Index, jr)
	}
}

// inOrder reports whether want are among got in this order: other events
// (the dsn stage's, whose job may end first) may come between.
func inOrder(got []string, want ...string) bool {
	for _, g := range got {
		if len(want) > 0 && g == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}

// TestReindexRefusedWhileRunning: the running gateway holds the index.
func TestReindexRefusedWhileRunning(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "http://127.0.0.1:9/")
	start(t, cfg)
	if _, err := app.Reindex(t.Context(), cfg, quietLogger()); err == nil || !strings.Contains(err.Error(), "stop the gateway") {
		t.Errorf("reindex beside a running gateway: %v", err)
	}
}

// TestRetentionForgetsIndexed: a message retention purges leaves the index.
func TestRetentionForgetsIndexed(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "http://127.0.0.1:9/")
	u := ulid.MustNew(ulid.Timestamp(time.Now().Add(-40*24*time.Hour)), rand.Reader)
	env := postern.Envelope{V: postern.EnvelopeVersion, ID: postern.MsgID(u.String()), Sender: "old@lan.example",
		Recipients: []postern.Recipient{{Addr: "x@files.test"}}, ReceivedAt: ulid.Time(u.Time()), Size: 1}
	store, err := fsblob.New(cfg.Path("store"), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(env)
	if err := store.Put(t.Context(), env.ID.EnvelopeKey(), bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
	if err := trace.Append(t.Context(), store, env.ID, trace.Event{Time: env.ReceivedAt, Stage: "webhook", Event: trace.EventDelivered, Route: "files"}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	if rep, err := app.Reindex(t.Context(), cfg, quietLogger()); err != nil || rep.Messages != 1 {
		t.Fatalf("reindex: %+v %v", rep, err)
	}
	a, _ := start(t, cfg)
	admin := "http://" + a.AdminAddr().String()
	eventually(t, "the purge at start to reach the index", func() bool {
		return len(listMessages(t, admin, nil).Messages) == 0
	})
	eventually(t, "the filter keys too", func() bool {
		return len(listMessages(t, admin, url.Values{"rcpt": {"x@files.test"}}).Messages) == 0
	})
}

// TestIndexRepairedAfterUncleanStop: a gateway killed with updates still
// queued for the index (here: a row lost, and the file left open) repairs
// the index from the store as it starts, and the index is complete.
func TestIndexRepairedAfterUncleanStop(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	a, stop := start(t, cfg)
	reply, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan.example", []string{"ann@app.test"}, scanMessage(t, "Scan 0042"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(reply, "OK ")
	findOne(t, "http://"+a.AdminAddr().String(), url.Values{"rcpt": {"ann@app.test"}}, msgindex.StatusDelivered)
	stop()

	db, err := bolt.Open(cfg.Path(app.IndexFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("msgs")).Delete([]byte(id)); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("open"), []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	var logs logbuf.Buffer
	a, _ = startLogged(t, cfg, &logs)
	l := listMessages(t, "http://"+a.AdminAddr().String(), url.Values{"rcpt": {"ann@app.test"}})
	if len(l.Messages) != 1 || string(l.Messages[0].ID) != id || l.Messages[0].Status != msgindex.StatusDelivered || !l.Index.Complete {
		t.Errorf("after an unclean stop: %+v", l)
	}
	if !strings.Contains(logs.String(), "message index repaired after an unclean stop") {
		t.Error("the repair was not logged")
	}
}
