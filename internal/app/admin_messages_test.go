package app

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/postern/postern/internal/apispec"
)

// Without an index the list says why, as the document describes: on AWS
// 501 and what it needs; locally (the index did not open) 503.
func TestListMessagesWithoutIndex(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		a      *App
		status int
		want   string
	}{
		{"aws", &App{be: &backend{local: false}}, http.StatusNotImplemented, `"needs": "local mode"`},
		{"local, index not opened", &App{be: &backend{local: true}, indexErr: errors.New("index.db: invalid database")}, http.StatusServiceUnavailable, "invalid database"},
	} {
		c.a.log = slog.New(slog.DiscardHandler)
		rec := httptest.NewRecorder()
		c.a.listMessages(rec, httptest.NewRequest(http.MethodGet, "/v1/messages", nil))
		body := rec.Body.String()
		if rec.Code != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s", c.name, rec.Code, body)
		}
		if err := apispec.ValidateResponse(http.MethodGet, "/v1/messages", rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
