package app

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/console"
	"github.com/postern/postern/internal/msgindex"
	"github.com/postern/postern/internal/postern"
)

// mountConsole adds the web console to the admin mux: the page and its
// assets (served without a session, see tokenOK), the login endpoints, and
// the API the page needs beyond what scripts already had: the overview, the
// device table as CSV, a message's parsed form and its HTML body made safe
// to show.
func (a *App) mountConsole(mux *http.ServeMux) {
	a.console = console.New()
	a.console.Mount(mux) // the page and its assets
	mux.HandleFunc("POST /v1/session", a.console.Login)
	mux.HandleFunc("GET /v1/session", a.console.Session)
	mux.HandleFunc("DELETE /v1/session", a.console.Logout)
	mux.HandleFunc("GET /v1/overview", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, a.overview(r.Context()))
	})
	mux.HandleFunc("GET /v1/devices.csv", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="postern-devices.csv"`)
		writeDevicesCSV(w, a.devices.list())
	})
	const notParsed = "not parsed (yet): no parsed form for this message"
	mux.HandleFunc("GET /v1/messages/{id}/parsed", withMsgID(func(w http.ResponseWriter, r *http.Request, id postern.MsgID) {
		rc, err := a.store.Get(r.Context(), id.ParsedKey())
		if storeFailed(w, err, notParsed) {
			return
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, 256<<20))
		if err != nil {
			http.Error(w, "reading the parsed form failed", http.StatusInternalServerError)
			return
		}
		if b, err = a.withTextRaw(r.Context(), id, b); err != nil {
			http.Error(w, "reading the text from the raw message failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	mux.HandleFunc("GET /v1/messages/{id}/links", withMsgID(func(w http.ResponseWriter, r *http.Request, id postern.MsgID) {
		links, err := a.messageLinks(r.Context(), id)
		if storeFailed(w, err, "no such message") {
			return
		}
		writeJSON(w, links)
	}))
	mux.HandleFunc("GET /v1/messages/{id}/html", withMsgID(func(w http.ResponseWriter, r *http.Request, id postern.MsgID) {
		p, err := a.loadParsed(r.Context(), id)
		if storeFailed(w, err, notParsed) {
			return
		}
		console.SecurityHeaders(w.Header(), console.MailCSP)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, console.SanitizeMailHTML(p.HTML))
	}))
}

// withMsgID answers 400 when the path's {id} is not a message id, and
// otherwise hands it to h.
func withMsgID(h func(w http.ResponseWriter, r *http.Request, id postern.MsgID)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := postern.ParseMsgID(r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h(w, r, id)
	}
}

// storeFailed answers a store error, if there is one: 404 with notFound
// for a missing object, 502 for the rest. It reports whether it answered.
func storeFailed(w http.ResponseWriter, err error, notFound string) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, blob.ErrNotFound):
		http.Error(w, notFound, http.StatusNotFound)
	default:
		http.Error(w, "store: "+err.Error(), http.StatusBadGateway)
	}
	return true
}

// MessageLinks is GET /v1/messages/{id}/links: signed, expiring download
// links (the same the webhook payloads carry, served under /v1/links/)
// to a message's raw form and its attachments stored on their own. Empty
// where the gateway makes no links (on AWS, or without a bound admin
// listener).
type MessageLinks struct {
	Raw string `json:"raw,omitempty"`
	// Attachments maps an attachment's index in parsed.json to its link;
	// attachments kept inline in parsed.json have none.
	Attachments map[string]string `json:"attachments"`
}

func (a *App) messageLinks(ctx context.Context, id postern.MsgID) (MessageLinks, error) {
	out := MessageLinks{Attachments: map[string]string{}}
	if _, err := a.store.Stat(ctx, id.RawKey()); err != nil {
		return out, err
	}
	if a.be.links == nil {
		return out, nil
	}
	var err error
	if out.Raw, err = a.be.links.URL(ctx, id.RawKey()); err != nil {
		return out, err
	}
	p, err := a.loadParsed(ctx, id)
	if errors.Is(err, blob.ErrNotFound) {
		return out, nil // not parsed yet: no attachments known
	}
	if err != nil {
		return out, err
	}
	for i, att := range p.Attachments {
		if att.Key == "" {
			continue
		}
		u, err := a.be.links.URL(ctx, att.Key)
		if err != nil {
			return out, err
		}
		if u != "" {
			out.Attachments[strconv.Itoa(i)] = u
		}
	}
	return out, nil
}

// withTextRaw returns parsed.json as readers of the API expect it: a text
// it names in raw.eml (postern.Parsed.TextRaw) in "text" again. Other
// parsed forms are returned as they are.
func (a *App) withTextRaw(ctx context.Context, id postern.MsgID, parsed []byte) ([]byte, error) {
	var doc map[string]json.RawMessage
	if json.Unmarshal(parsed, &doc) != nil || doc["text_raw"] == nil {
		return parsed, nil
	}
	var span [2]int64
	if err := json.Unmarshal(doc["text_raw"], &span); err != nil {
		return nil, err
	}
	rc, err := a.store.Get(ctx, id.RawKey())
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	text, err := postern.ReadTextRaw(rc, span)
	if err != nil {
		return nil, err
	}
	if doc["text"], err = json.Marshal(text); err != nil {
		return nil, err
	}
	delete(doc, "text_raw")
	return json.Marshal(doc)
}

func (a *App) loadParsed(ctx context.Context, id postern.MsgID) (*postern.Parsed, error) {
	rc, err := a.store.Get(ctx, id.ParsedKey())
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var p postern.Parsed
	if err := json.NewDecoder(io.LimitReader(rc, 256<<20)).Decode(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Overview is GET /v1/overview: the gateway at a glance.
type Overview struct {
	Time    time.Time    `json:"time"`
	Ready   bool         `json:"ready"`
	Reason  string       `json:"reason,omitempty"` // why not ready
	Queues  []QueueDepth `json:"queues"`           // local queues; empty on AWS (see CloudWatch)
	Spool   *SpoolDepth  `json:"spool,omitempty"`  // one machine only
	Devices int          `json:"devices"`
	// Messages counts the last hour's and day's messages by status, from
	// the message index; nil without one (on AWS).
	Messages *MessageCounts `json:"messages,omitempty"`
}

// QueueDepth is one stage's queue and its dead-letter queue.
type QueueDepth struct {
	Name          string  `json:"name"`
	Visible       int     `json:"visible"`
	InFlight      int     `json:"in_flight"`
	Delayed       int     `json:"delayed"`
	OldestSeconds float64 `json:"oldest_seconds"`
	DeadLetters   int     `json:"dead_letters"`
}

// SpoolDepth is mail acknowledged but not yet moved into the store.
type SpoolDepth struct {
	Messages      int     `json:"messages"`
	Bytes         int64   `json:"bytes"`
	OldestSeconds float64 `json:"oldest_seconds"`
}

// MessageCounts are the message counts of the last hour and day.
type MessageCounts struct {
	Hour StatusCounts `json:"hour"`
	Day  StatusCounts `json:"day"`
	// Complete is false when the day held more than overviewMaxCount
	// messages: the counts are of the newest ones.
	Complete bool `json:"complete"`
}

// overviewMaxCount bounds the index rows one overview reads (it refreshes
// every few seconds).
const overviewMaxCount = 5000

// StatusCounts counts messages by where they stand: Accepted all of them,
// then each in one of Delivered, Failed (failed, expired or dead-lettered)
// and Pending.
type StatusCounts struct {
	Accepted  int `json:"accepted"`
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
	Pending   int `json:"pending"`
}

func (c *StatusCounts) add(status string) {
	c.Accepted++
	switch status {
	case msgindex.StatusDelivered:
		c.Delivered++
	case msgindex.StatusPending:
		c.Pending++
	default:
		c.Failed++
	}
}

// messageCounts reads the last day's messages from the index, newest
// first, at most overviewMaxCount.
func (a *App) messageCounts(now time.Time) (*MessageCounts, error) {
	mc := &MessageCounts{Complete: true}
	hour := now.Add(-time.Hour)
	q := msgindex.Query{Since: now.Add(-24 * time.Hour), Limit: msgindex.MaxLimit}
	seen := 0
	for {
		page, err := a.index.List(q)
		if err != nil {
			return nil, err
		}
		for _, m := range page.Messages {
			if seen == overviewMaxCount {
				mc.Complete = false
				return mc, nil
			}
			seen++
			mc.Day.add(m.Status)
			if !m.ReceivedAt.Before(hour) {
				mc.Hour.add(m.Status)
			}
		}
		if page.Next == "" {
			return mc, nil
		}
		q.Cursor = page.Next
	}
}

func (a *App) overview(ctx context.Context) Overview {
	ov := Overview{Time: time.Now().UTC(), Ready: true, Queues: []QueueDepth{}}
	if err := a.ready(ctx); err != nil {
		ov.Ready, ov.Reason = false, err.Error()
	}
	if a.be.stats != nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		all, err := a.be.stats(sctx)
		cancel()
		if err == nil {
			for _, name := range []string{QueueInbound, QueueWebhook, QueueRelay, QueueDSN} {
				s, dlq := all[name], all[name+"-dlq"]
				ov.Queues = append(ov.Queues, QueueDepth{Name: name, Visible: s.Visible, InFlight: s.InFlight, Delayed: s.Delayed,
					OldestSeconds: s.OldestAge.Seconds(), DeadLetters: dlq.Visible + dlq.InFlight + dlq.Delayed})
			}
		}
	}
	if a.be.spool != nil {
		s := a.be.spool.stats()
		ov.Spool = &SpoolDepth{Messages: s.BacklogMessages, Bytes: s.BacklogBytes, OldestSeconds: s.OldestUnmoved.Seconds()}
	}
	ov.Devices = len(a.devices.list())
	if a.index != nil {
		if mc, err := a.messageCounts(ov.Time); err == nil {
			ov.Messages = mc
		}
	}
	return ov
}

// writeDevicesCSV writes the device table as CSV, one row per identity,
// with the legacy allowances each used: the migration list.
func writeDevicesCSV(w io.Writer, devs []Device) {
	cw := csv.NewWriter(w)
	cw.Write([]string{"identity", "last_seen", "last_client_ip", "addresses", "messages", "messages_today",
		"auth_failures", "rate_limited", "tls_versions", "auth_mechs", "legacy"})
	for _, d := range devs {
		var addrs []string
		for _, s := range d.Sources {
			addrs = append(addrs, s.Addr)
		}
		cw.Write(csvSafe([]string{d.Identity, d.LastSeen.UTC().Format(time.RFC3339), d.LastClientIP, strings.Join(addrs, " "),
			strconv.Itoa(d.Messages), strconv.Itoa(d.MessagesToday), strconv.Itoa(d.AuthFailures), strconv.Itoa(d.RateLimited),
			countsCell(d.TLSVersions), countsCell(d.AuthMechs), strings.Join(d.Legacy, " ")}))
	}
	cw.Flush()
}

// countsCell writes {"TLS 1.0": 3} as "TLS 1.0=3", keys sorted.
func countsCell(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = k + "=" + strconv.Itoa(m[k])
	}
	return strings.Join(keys, " ")
}

// csvSafe keeps a spreadsheet from reading a cell as a formula: identities
// and addresses come from configuration and clients.
func csvSafe(row []string) []string {
	for i, c := range row {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			row[i] = "'" + c
		}
	}
	return row
}
