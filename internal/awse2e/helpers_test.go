package awse2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/apispec"
)

// receiver is an application's webhook endpoint: it records every request
// and answers with status (and Retry-After, when set).
type receiver struct {
	url        string
	status     int
	retryAfter string
	got        chan struct{}

	mu      sync.Mutex
	reqs    []request
	invalid []error // requests that break the contract, reported at cleanup
}

type request struct {
	header http.Header
	body   []byte
}

func newReceiver(t testing.TB, status int, retryAfter string) *receiver {
	r := &receiver{status: status, retryAfter: retryAfter, got: make(chan struct{}, 100)}
	// Every request must match the contracts (internal/apispec); checked
	// after the server has closed, so none is missed.
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, err := range r.invalid {
			t.Errorf("the webhook receiver got a request that breaks the contract: %v", err)
		}
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		err := apispec.ValidateWebhook(req.Header, body)
		r.mu.Lock()
		r.reqs = append(r.reqs, request{req.Header.Clone(), body})
		if err != nil {
			r.invalid = append(r.invalid, fmt.Errorf("request %d: %w", len(r.reqs), err))
		}
		r.mu.Unlock()
		if r.retryAfter != "" {
			w.Header().Set("Retry-After", r.retryAfter)
		}
		w.WriteHeader(r.status)
		select {
		case r.got <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/hooks/mail"
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

// wait returns the requests once there are at least n, failing t after d.
func (r *receiver) wait(t testing.TB, n int, d time.Duration) []request {
	t.Helper()
	deadline := time.After(d)
	for {
		if reqs := r.requests(); len(reqs) >= n {
			return reqs
		}
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("the webhook receiver got %d requests in %s, want %d", len(r.requests()), d, n)
		}
	}
}

// send delivers msg with go-smtp's client and returns the message id from
// the 250 reply, or the error of the DATA reply.
func send(t testing.TB, addr, from, to string, msg []byte) (string, error) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Hello("scanner.lan"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		t.Fatalf("RCPT: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := w.Write(msg); err != nil {
		t.Fatalf("write DATA: %v", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	_ = c.Quit()
	// "2.0.0 OK <id>"
	id, ok := strings.CutPrefix(resp.StatusText, "2.0.0 OK ")
	if !ok || id == "" {
		t.Fatalf("250 reply %q has no message id", resp.StatusText)
	}
	return id, nil
}

// mustSend is send where anything but 250 fails t.
func mustSend(t testing.TB, addr, to string, msg []byte) string {
	t.Helper()
	id, err := send(t, addr, "scanner@lan.example", to, msg)
	if err != nil {
		t.Fatalf("send: %v, want 250", err)
	}
	return id
}

// want451 fails t unless err is the gateway's 451 4.3.0 (stored or queued
// nothing durable: try again later).
func want451(t testing.TB, err error) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
		t.Fatalf("send = %v, want 451 4.3.0", err)
	}
}

// readyz returns the gateway's /readyz status.
func readyz(t testing.TB, st *stack) int {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get("http://" + st.gw.AdminAddr().String() + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// eventually retries check until it reports true or d passes.
func eventually(t testing.TB, d time.Duration, what string, check func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !check(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
