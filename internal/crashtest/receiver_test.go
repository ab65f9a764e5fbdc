//go:build crash

package crashtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/internal/apispec"
	"github.com/postern/postern/internal/webhook"
)

// hookSecret signs the test webhooks.
const hookSecret = "crash-test-secret"

// Receiver modes: up, or down in one of two ways.
const (
	modeUp   int32 = iota
	modeDrop       // the connection is closed without a response
	mode503        // 503 Service Unavailable, no Retry-After
)

// receiver is the application behind the webhook: it checks each request's
// signature and payload and records what it was given.
type receiver struct {
	t    *testing.T
	srv  *httptest.Server
	mode atomic.Int32

	mu       sync.Mutex
	byID     map[string][]delivery // by webhook-id
	refused  int                   // attempts turned away while down
	problems []string
	firstAt  time.Time // first accepted delivery
}

// delivery is one accepted request.
type delivery struct {
	msgID string
	tag   string // from the Subject loadgen writes
	at    time.Time
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, byID: map[string][]delivery{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) URL() string { return r.srv.URL + "/hook" }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	switch r.mode.Load() {
	case modeDrop:
		r.count()
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case mode503:
		r.count()
		io.Copy(io.Discard, req.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := webhook.Verify([][]byte{[]byte(hookSecret)}, req.Header, body, 0, time.Now()); err != nil {
		r.problem("bad signature on %s: %v", req.Header.Get("webhook-id"), err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if err := apispec.ValidateWebhook(req.Header, body); err != nil {
		r.problem("the request for %s breaks the contract: %v", req.Header.Get("webhook-id"), err)
	}
	var ev webhook.ReceivedEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		r.problem("undecodable payload for %s: %v", req.Header.Get("webhook-id"), err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	whID := req.Header.Get("webhook-id")
	if want := string(ev.Data.ID) + "." + ev.Data.Route; whID != want {
		r.problem("webhook-id %q for message %s on route %s", whID, ev.Data.ID, ev.Data.Route)
	}
	tag, ok := strings.CutPrefix(ev.Data.Subject, "loadgen ")
	if !ok {
		r.problem("message %s has subject %q, not one the test sent", ev.Data.ID, ev.Data.Subject)
	}
	r.mu.Lock()
	if r.firstAt.IsZero() {
		r.firstAt = time.Now()
	}
	r.byID[whID] = append(r.byID[whID], delivery{msgID: string(ev.Data.ID), tag: tag, at: time.Now()})
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) count() {
	r.mu.Lock()
	r.refused++
	r.mu.Unlock()
}

func (r *receiver) problem(format string, args ...any) {
	r.mu.Lock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// snapshot returns a copy of the deliveries so far.
func (r *receiver) snapshot() map[string][]delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]delivery, len(r.byID))
	for k, v := range r.byID {
		out[k] = append([]delivery(nil), v...)
	}
	return out
}

// total is the number of accepted requests.
func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.byID {
		n += len(v)
	}
	return n
}

// reset forgets what was delivered, so a long run holds no per-message state.
func (r *receiver) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID = map[string][]delivery{}
	r.refused = 0
}
