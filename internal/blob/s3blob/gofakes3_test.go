package s3blob

import (
	"net/http/httptest"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// startGofakes3 serves an in-memory gofakes3 over plain HTTP on 127.0.0.1.
// It does not verify signatures; it keeps SSE request headers as metadata
// and reports them back, without encrypting anything.
func startGofakes3(t *testing.T) *server {
	t.Helper()
	ts := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(ts.Close)
	return &server{endpoint: ts.URL, echoesSSE: true}
}

func TestGofakes3(t *testing.T) {
	t.Parallel()
	runStandin(t, startGofakes3(t), false)
}
