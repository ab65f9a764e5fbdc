package awse2e

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// counter counts the requests that reach the stand-ins through its proxies,
// by service and operation, so a test can say how many AWS requests (and so
// how much money) a message costs.
type counter struct {
	mu sync.Mutex
	n  map[string]int // "S3 PUT raw.eml", "SQS SendMessage", ...
}

func newCounter() *counter { return &counter{n: map[string]int{}} }

// proxy starts a reverse proxy to target that counts every request with
// classify, and returns its URL. The proxy forwards bodies and headers as
// they are (SigV4 signs the Host header, which the proxy keeps).
func (c *counter) proxy(t *testing.T, target string, classify func(*http.Request) string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := classify(r)
		c.mu.Lock()
		c.n[op]++
		c.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// snapshot returns the counts so far.
func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// since returns the counts added after before, and their total.
func (c *counter) since(before map[string]int) (map[string]int, int) {
	now := c.snapshot()
	total := 0
	for k, v := range now {
		now[k] = v - before[k]
		if now[k] == 0 {
			delete(now, k)
		}
		total += now[k]
	}
	return now, total
}

// breakdown renders counts as "op=n" pairs in a stable order.
func breakdown(counts map[string]int, per int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%q=%.2f", k, float64(counts[k])/float64(per)))
	}
	return strings.Join(parts, " ")
}

// s3Op names an S3 request by method and the last segment of its key
// ("PUT raw.eml", "GET parsed.json"): keys derive from the message id, so
// the name says which object kind it is. Bucket-level requests keep "/".
func s3Op(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, "/")
	_, key, ok := strings.Cut(p, "/") // path-style: bucket/key
	name := "/"
	if ok && key != "" {
		name = key[strings.LastIndexByte(key, '/')+1:]
		if strings.Contains(key, "/trace/") {
			name = "trace/" + name
		}
	}
	if r.URL.Query().Has("uploads") || r.URL.Query().Has("uploadId") {
		name += " (multipart)"
	}
	return "S3 " + r.Method + " " + name
}

// sqsOp names an SQS request by its operation: the X-Amz-Target header of
// the JSON protocol ("AmazonSQS.SendMessage"), or the Action parameter of
// the query protocol.
func sqsOp(r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		return "SQS " + strings.TrimPrefix(t, "AmazonSQS.")
	}
	if a := r.URL.Query().Get("Action"); a != "" {
		return "SQS " + a
	}
	return "SQS " + r.Method + " " + r.URL.Path
}
