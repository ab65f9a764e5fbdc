package webhook

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/egress"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := testNow
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7", 7 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"3600", time.Hour, true},
		{"86400", maxRetryAfter, true},
		{"99999999999999999999", 0, false}, // overflows uint64: malformed
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), maxRetryAfter, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, false},
		{"0", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code      int
		delivered bool
		permanent bool
		diag      string
	}{
		{200, true, false, "http; 200 OK"},
		{204, true, false, "http; 204 No Content"},
		{299, true, false, "http; 299"},
		{400, false, true, "http; 400 Bad Request"},
		{401, false, true, "http; 401 Unauthorized"},
		{404, false, true, "http; 404 Not Found"},
		{410, false, true, "http; 410 Gone"},
		{413, false, true, "http; 413 Request Entity Too Large"},
		{408, false, false, "http; 408 Request Timeout"},
		{425, false, false, "http; 425 Too Early"},
		{429, false, false, "http; 429 Too Many Requests"},
		{500, false, false, "http; 500 Internal Server Error"},
		{503, false, false, "http; 503 Service Unavailable"},
		{599, false, false, "http; 599"},
		{301, false, false, "http; 301 Moved Permanently"},
	}
	for _, tc := range tests {
		o := classifyStatus(tc.code, http.Header{"Retry-After": {"3"}}, testNow)
		if (o.err == nil) != tc.delivered || o.permanent != tc.permanent || o.diag != tc.diag || o.status != tc.code {
			t.Errorf("classifyStatus(%d) = %+v; want delivered %v permanent %v diag %q", tc.code, o, tc.delivered, tc.permanent, tc.diag)
		}
		if !tc.delivered && !tc.permanent && o.after != 3*time.Second {
			t.Errorf("classifyStatus(%d) ignored Retry-After: %v", tc.code, o.after)
		}
	}
}

func TestNetClass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{&url.Error{Op: "Post", URL: "https://x?token=t", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, "connection refused"},
		{&net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, "dns lookup failed"},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), "connection reset"},
		{io.ErrUnexpectedEOF, "connection closed"},
		{&net.OpError{Op: "read", Err: timeoutErr{}}, "timeout"},
		{errors.New("something else"), "network error"},
		{&net.OpError{Op: "dial", Err: &egress.RefusedError{Addr: netip.MustParseAddr("10.0.0.1"), Class: egress.ClassPrivate}}, "address refused (private)"},
	}
	for _, tc := range tests {
		if got := netClass(tc.err); got != tc.want {
			t.Errorf("netClass(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	o := classifyError(tests[0].err)
	if o.diag != "http; connection refused" || o.permanent || o.err == nil {
		t.Errorf("classifyError = %+v", o)
	}
	if got := o.err.Error(); got != "connection refused: dial: connection refused" {
		t.Errorf("classifyError error = %q; want no URL in it", got)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestFileName(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"01J0000000000000000000000A.scans":  "01J0000000000000000000000A.scans.json",
		"01J0000000000000000000000A.a/../b": "01J0000000000000000000000A.a%2F..%2Fb.json",
		"01J0000000000000000000000A.x y\\z": "01J0000000000000000000000A.x%20y%5Cz.json",
	}
	for in, want := range tests {
		if got := fileName(in, ".json"); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}
