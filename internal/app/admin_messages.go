package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/msgindex"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// MessageList is the answer to GET /v1/messages.
type MessageList struct {
	Messages []msgindex.Message `json:"messages"`
	// NextCursor, when set, is the cursor of the next (older) page.
	NextCursor string `json:"next_cursor,omitempty"`
	// Index says whether the index holds every message and update; when it
	// does not, Reason says why and what to do.
	Index msgindex.State `json:"index"`
}

// MessageDetail is the answer to GET /v1/messages/{id}.
type MessageDetail struct {
	Message msgindex.Message `json:"message"`
	// Indexed is false when the row was built from the store for this
	// answer: on AWS, or a message the local index misses.
	Indexed  bool              `json:"indexed"`
	Envelope *postern.Envelope `json:"envelope"`
	Timeline []trace.Event     `json:"timeline"`
	// TimelineIncomplete says why the timeline may lack events (on AWS,
	// when the functions' log groups cannot be read).
	TimelineIncomplete string `json:"timeline_incomplete,omitempty"`
}

// apiError is the JSON body of the messages API's errors. Needs names
// what would make the request work ("local mode").
type apiError struct {
	Error string `json:"error"`
	Needs string `json:"needs,omitempty"`
}

// mountMessages adds the message index's search API to the admin mux:
//
//	GET /v1/messages?q=&from=&rcpt=&subject=&identity=&route=&status=&since=&until=&limit=&cursor=
//	GET /v1/messages/{id}
//
// The list needs local mode's index: on AWS it answers 501 with "needs":
// "local mode" (there is no database to search without adding one). A
// message by id works in both modes, built from the store and the trace.
func (a *App) mountMessages(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/messages", a.listMessages)
	mux.HandleFunc("GET /v1/messages/{id}", a.getMessage)
}

func writeAPIError(w http.ResponseWriter, status int, e apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	writeJSON(w, e)
}

func (a *App) listMessages(w http.ResponseWriter, r *http.Request) {
	if a.index == nil {
		a.noIndex(w)
		return
	}
	q, err := messageQuery(r.URL.Query())
	if err == nil {
		err = q.Validate()
	}
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, apiError{Error: err.Error()})
		return
	}
	page, err := a.index.List(q)
	if err != nil {
		a.log.Error("message index: list failed", slog.String("stage", "admin"), slog.String("error", err.Error()))
		writeAPIError(w, http.StatusInternalServerError, apiError{Error: "the message index could not be read"})
		return
	}
	writeJSON(w, MessageList{Messages: page.Messages, NextCursor: page.Next, Index: a.index.State()})
}

// noIndex answers a list without an index: on AWS, 501 and what it needs;
// locally, 503 and why the index did not open.
func (a *App) noIndex(w http.ResponseWriter) {
	if !a.be.local {
		writeAPIError(w, http.StatusNotImplemented, apiError{
			Error: "searching messages needs the message index, which only local mode keeps; on AWS ask for a message by id (GET /v1/messages/{id}), or use the dead-letter queues and the functions' logs",
			Needs: "local mode",
		})
		return
	}
	msg := "the message index is not available"
	if a.indexErr != nil {
		msg += ": " + a.indexErr.Error()
	}
	writeAPIError(w, http.StatusServiceUnavailable, apiError{Error: msg})
}

// messageQuery reads GET /v1/messages's parameters.
func messageQuery(v url.Values) (msgindex.Query, error) {
	q := msgindex.Query{Text: v.Get("q"), From: v.Get("from"), Rcpt: v.Get("rcpt"), Subject: v.Get("subject"),
		Identity: v.Get("identity"), Route: v.Get("route"), Status: v.Get("status"), Cursor: v.Get("cursor")}
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		s := v.Get(t.name)
		if s == "" {
			continue
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-12-05T09:00:00Z", t.name, s)
		}
		*t.to = tm
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, fmt.Errorf("limit %q: want 1 to %d", s, msgindex.MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}

func (a *App) getMessage(w http.ResponseWriter, r *http.Request) {
	id, err := postern.ParseMsgID(r.PathValue("id"))
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, apiError{Error: err.Error()})
		return
	}
	ctx := r.Context()
	var (
		d      MessageDetail
		row    *msgindex.Message
		routes = a.routes.Names()
	)
	if a.index != nil {
		m, ok, err := a.index.Get(id)
		if err != nil {
			a.log.Error("message index: get failed", slog.String("stage", "admin"), slog.String("msg_id", string(id)), slog.String("error", err.Error()))
		}
		if ok {
			row, d.Indexed = m, true
			for _, rt := range m.Routes {
				if !slices.Contains(routes, rt.Name) {
					routes = append(routes, rt.Name)
				}
			}
		}
	}
	if d.Envelope, err = trace.LoadEnvelope(ctx, a.store, id); err != nil {
		a.storeError(w, id, err)
		return
	}
	if a.be.local {
		d.Timeline, err = trace.Read(ctx, a.store, id, routes)
	} else {
		// The functions keep no trace objects on AWS: the timeline's
		// later events are in their log groups (see Trace).
		d.Timeline, err = Trace(ctx, a.cfg, a.log, id)
		if err != nil && len(d.Timeline) > 0 {
			d.TimelineIncomplete, err = err.Error(), nil
		}
	}
	if err != nil {
		a.storeError(w, id, err)
		return
	}
	if row == nil {
		if row, err = msgindex.Build(ctx, a.store, d.Envelope, d.Timeline, indexRouter(a.routes)); err != nil {
			a.storeError(w, id, err)
			return
		}
	}
	d.Message = *row
	writeJSON(w, d)
}

// storeError answers a message the store does not have with 404, any
// other failure with 500 (logged; the text stays generic).
func (a *App) storeError(w http.ResponseWriter, id postern.MsgID, err error) {
	if errors.Is(err, blob.ErrNotFound) {
		writeAPIError(w, http.StatusNotFound, apiError{Error: "no such message: " + string(id)})
		return
	}
	a.log.Error("message not read", slog.String("stage", "admin"), slog.String("msg_id", string(id)), slog.String("error", err.Error()))
	writeAPIError(w, http.StatusInternalServerError, apiError{Error: "the message could not be read: " + string(id)})
}
