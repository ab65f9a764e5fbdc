package graphrelay_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/postern/postern/internal/relay/apirelay"
	"github.com/postern/postern/internal/relay/graphrelay"
)

// discardGraph answers the draft path's requests as Graph does and keeps
// nothing, so a benchmark measures the transport's own memory.
func discardGraph(b *testing.B) string {
	var hs *httptest.Server
	hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch p := r.URL.Path; {
		case r.Method == "PUT":
			var start, end, total int
			_, _ = fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &total)
			if end+1 == total {
				w.WriteHeader(http.StatusCreated)
				return
			}
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"nextExpectedRanges":["`+strconv.Itoa(end+1)+`"]}`)
		case strings.HasSuffix(p, "/createUploadSession"):
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"uploadUrl":"`+hs.URL+`/upload/1?authtoken=x"}`)
		case strings.HasSuffix(p, "/messages"), strings.HasSuffix(p, "/attachments"):
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"id":"AAMkAD1="}`)
		case r.Method == "PATCH":
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	b.Cleanup(hs.Close)
	return hs.URL + "/v1.0"
}

// BenchmarkSendLarge sends a message of about 68 MB (a 50 MiB attachment
// as base64) by the draft path; B/op against the message size shows how
// many copies of it the transport makes.
func BenchmarkSendLarge(b *testing.B) {
	body := mixed(100, part{name: "scan.pdf", ctype: "application/pdf", data: randomBytes(20, 50<<20)})
	tr, err := graphrelay.New(graphrelay.Config{Config: apirelay.Config{Mailbox: mailbox, BaseURL: discardGraph(b),
		TokenSource: func(context.Context) (string, error) { return "tok", nil }}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		m := msg(body, "a@contoso.com")
		m.Size = int64(len(body))
		res, err := tr.Send(context.Background(), m)
		if err != nil || !res.Rcpts[0].Reply.Accepted() {
			b.Fatalf("%v %v", err, res.Rcpts[0].Reply)
		}
	}
	b.ReportMetric(float64(len(body)), "msg_bytes")
}
