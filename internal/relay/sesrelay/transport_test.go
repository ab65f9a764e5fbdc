package sesrelay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/postern/postern/internal/relay"
)

const testRaw = "From: scanner@lan.example\r\nTo: a@example.com\r\nSubject: scan\r\n\r\nhello\r\n"

// sendEmailRequest is the part of the SES v2 SendEmail JSON body checked here.
type sendEmailRequest struct {
	Content struct {
		Raw struct {
			Data []byte // base64 in JSON
		}
	}
	Destination struct {
		ToAddresses []string
	}
	ConfigurationSetName                      string
	FromEmailAddressIdentityArn               string
	FeedbackForwardingEmailAddress            string
	FeedbackForwardingEmailAddressIdentityArn string
}

// fakeSES speaks the one SES v2 call over HTTP: POST
// /v2/email/outbound-emails. It answers with a MessageId, or with the
// error shape SES uses (status, X-Amzn-ErrorType, {"message": ...}).
type fakeSES struct {
	mu       sync.Mutex
	reqs     []sendEmailRequest
	auth     []string
	status   int
	errType  string
	errMsg   string
	badPaths []string
	// failCall, when not 0, makes only that call (1-based) fail with
	// status, errType and errMsg.
	failCall int
}

func (f *fakeSES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v2/email/outbound-emails" {
		f.badPaths = append(f.badPaths, r.Method+" "+r.URL.Path)
		http.Error(w, "unknown operation", http.StatusNotFound)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var req sendEmailRequest
	if err := json.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.reqs = append(f.reqs, req)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	w.Header().Set("Content-Type", "application/json")
	if f.status != 0 && (f.failCall == 0 || f.failCall == len(f.reqs)) {
		w.Header().Set("X-Amzn-ErrorType", f.errType)
		w.WriteHeader(f.status)
		json.NewEncoder(w).Encode(map[string]string{"message": f.errMsg})
		return
	}
	json.NewEncoder(w).Encode(map[string]string{"MessageId": "0100018f-test-message-id"})
}

func (f *fakeSES) requests() []sendEmailRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func newClient(t *testing.T, f *fakeSES) *sesv2.Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return sesv2.New(sesv2.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret"}, nil
		}),
		HTTPClient:       srv.Client(),
		RetryMaxAttempts: 1,
	})
}

func message(from string, to ...string) *relay.Message {
	m := &relay.Message{ID: "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q", From: from, Body: strings.NewReader(testRaw), Size: int64(len(testRaw))}
	for _, a := range to {
		m.To = append(m.To, relay.Rcpt{Addr: a})
	}
	return m
}

func send(t *testing.T, tr *Transport, m *relay.Message) *relay.Result {
	t.Helper()
	res, err := tr.Send(t.Context(), m)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(res.Rcpts) != len(m.To) {
		t.Fatalf("%d results for %d recipients", len(res.Rcpts), len(m.To))
	}
	return res
}

func TestSendRaw(t *testing.T) {
	t.Parallel()
	f := &fakeSES{}
	tr := New(newClient(t, f), Config{ConfigurationSet: "postern", FromARN: "arn:aws:ses:us-east-1:123456789012:identity/lan.example",
		FeedbackToSender: true, FeedbackARN: "arn:aws:ses:us-east-1:123456789012:identity/lan.example"})
	res := send(t, tr, message("scanner@lan.example", "a@example.com", "b@bücher.example", "pelé@example.org"))

	if res.Remote != DefaultName {
		t.Errorf("Remote = %q", res.Remote)
	}
	for i, want := range []struct{ status, text string }{
		{"2.0.0", "accepted as 0100018f-test-message-id"},
		{"2.0.0", "accepted as 0100018f-test-message-id"},
		{"5.1.3", "non-ASCII local part"},
	} {
		r := res.Rcpts[i].Reply
		if r.Status != want.status || !strings.Contains(r.Text, want.text) {
			t.Errorf("rcpt %d: %+v, want %s ~%q", i, r, want.status, want.text)
		}
	}
	if !res.Rcpts[0].Reply.Accepted() || !res.Rcpts[2].Reply.Permanent() {
		t.Error("classification wrong")
	}

	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d SendEmail calls, want 1", len(reqs))
	}
	q := reqs[0]
	if string(q.Content.Raw.Data) != testRaw {
		t.Errorf("raw content %q, want %q", q.Content.Raw.Data, testRaw)
	}
	if !slices.Equal(q.Destination.ToAddresses, []string{"a@example.com", "b@xn--bcher-kva.example"}) {
		t.Errorf("destination %v", q.Destination.ToAddresses)
	}
	if q.ConfigurationSetName != "postern" || q.FromEmailAddressIdentityArn != "arn:aws:ses:us-east-1:123456789012:identity/lan.example" ||
		q.FeedbackForwardingEmailAddress != "scanner@lan.example" || q.FeedbackForwardingEmailAddressIdentityArn == "" {
		t.Errorf("request %+v", q)
	}
	if a := f.auth[0]; !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential=AKIDTEST/") || !strings.Contains(a, "/us-east-1/ses/aws4_request") {
		t.Errorf("Authorization %q is not a SigV4 signature for ses", a)
	}
	if len(f.badPaths) != 0 {
		t.Errorf("unexpected calls %v", f.badPaths)
	}
}

func TestSendOptionalFieldsOmitted(t *testing.T) {
	t.Parallel()
	f := &fakeSES{}
	tr := New(newClient(t, f), Config{})
	send(t, tr, message("", "a@example.com"))
	q := f.requests()[0]
	if q.ConfigurationSetName != "" || q.FromEmailAddressIdentityArn != "" || q.FeedbackForwardingEmailAddress != "" {
		t.Errorf("request %+v, want no optional fields", q)
	}
	// The raw body travels base64-encoded in JSON.
	if base64.StdEncoding.EncodeToString(q.Content.Raw.Data) != base64.StdEncoding.EncodeToString([]byte(testRaw)) {
		t.Error("raw data changed in transit")
	}
}

func TestSendErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status    int
		errType   string
		msg       string
		want      string
		permanent bool
	}{
		{400, "MessageRejected", "Email address is not verified.", "5.6.0", true},
		{400, "BadRequestException", "Missing final '@domain'", "5.5.4", true},
		{429, "TooManyRequestsException", "Maximum sending rate exceeded.", "4.4.5", false},
		{400, "SendingPausedException", "Sending is paused for this account.", "4.7.0", false},
		{400, "MailFromDomainNotVerifiedException", "not verified", "4.7.0", false},
		{500, "InternalServiceErrorException", "oops", "4.3.0", false},
		{400, "SomethingNewException", "unknown", "4.3.0", false},
	} {
		t.Run(c.errType, func(t *testing.T) {
			t.Parallel()
			f := &fakeSES{status: c.status, errType: c.errType, errMsg: c.msg}
			tr := New(newClient(t, f), Config{})
			res := send(t, tr, message("scanner@lan.example", "a@example.com", "b@example.com"))
			for _, rr := range res.Rcpts {
				r := rr.Reply
				if r.Status != c.want || r.Permanent() != c.permanent || r.Type != DiagSES || !strings.Contains(r.Text, c.errType) {
					t.Errorf("%s: %+v, want status %s permanent %v", rr.Addr, r, c.want, c.permanent)
				}
			}
			if d := res.Rcpts[0].Reply.Diagnostic(); d != "X-SES; "+c.errType+": "+c.msg {
				t.Errorf("Diagnostic = %q", d)
			}
		})
	}
}

func TestSendUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	api := sesv2.New(sesv2.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret"}, nil
		}), HTTPClient: &http.Client{}})
	res := send(t, New(api, Config{}), message("scanner@lan.example", "a@example.com"))
	if r := res.Rcpts[0].Reply; r.Accepted() || r.Permanent() || r.Remote() {
		t.Errorf("reply %+v, want a temporary local reply", r)
	}
}

func TestSendTooBig(t *testing.T) {
	t.Parallel()
	f := &fakeSES{}
	tr := New(newClient(t, f), Config{MaxBytes: 10})
	res := send(t, tr, message("scanner@lan.example", "a@example.com"))
	if r := res.Rcpts[0].Reply; r.Status != "5.3.4" {
		t.Errorf("reply %+v, want 5.3.4", r)
	}
	if len(f.requests()) != 0 {
		t.Error("SES called with an oversized message")
	}
}

// SES gets the raw message with CRLF line ends only, as an SMTP peer would
// (SES sends it on by SMTP), and the size limit counts what is sent.
func TestSendRawCRLFOnly(t *testing.T) {
	t.Parallel()
	f := &fakeSES{}
	const in = "From: scanner@lan.example\nSubject: x\r\r\n\r\na\rb\n"
	const out = "From: scanner@lan.example\r\nSubject: x\r\n\r\na\r\nb\r\n"
	tr := New(newClient(t, f), Config{MaxBytes: int64(len(out))})
	m := message("scanner@lan.example", "a@example.com")
	m.Body, m.Size = strings.NewReader(in), int64(len(in))
	if r := send(t, tr, m).Rcpts[0].Reply; !r.Accepted() {
		t.Fatalf("reply %+v", r)
	}
	if reqs := f.requests(); len(reqs) != 1 || string(reqs[0].Content.Raw.Data) != out {
		t.Fatalf("requests %+v, want raw %q", reqs, out)
	}

	tr = New(newClient(t, f), Config{MaxBytes: int64(len(out)) - 1})
	m = message("scanner@lan.example", "a@example.com")
	m.Body = strings.NewReader(in)
	if r := send(t, tr, m).Rcpts[0].Reply; r.Status != "5.3.4" {
		t.Fatalf("over the limit once converted: reply %+v, want 5.3.4", r)
	}
}

// SES takes at most 50 recipients per call: 120 go out in calls of 50, 50
// and 20, each with the whole raw message; a failed chunk fails only its
// own recipients, so the relay stage retries only those.
func TestSendChunksOf50WithPerChunkOutcomes(t *testing.T) {
	t.Parallel()
	var to []string
	for i := range 120 {
		to = append(to, fmt.Sprintf("r%03d@example.com", i))
	}
	f := &fakeSES{status: 429, errType: "TooManyRequestsException", errMsg: "Maximum sending rate exceeded.", failCall: 2}
	tr := New(newClient(t, f), Config{})
	res := send(t, tr, message("scanner@lan.example", to...))
	reqs := f.requests()
	var sizes []int
	var sent []string
	for _, q := range reqs {
		sizes = append(sizes, len(q.Destination.ToAddresses))
		sent = append(sent, q.Destination.ToAddresses...)
		if string(q.Content.Raw.Data) != testRaw {
			t.Errorf("a chunk carried %q, want the whole message", q.Content.Raw.Data)
		}
	}
	if !slices.Equal(sizes, []int{50, 50, 20}) || !slices.Equal(sent, to) {
		t.Fatalf("chunks of %v (%d addresses in order: %v), want 50, 50, 20 covering every recipient once", sizes, len(sent), slices.Equal(sent, to))
	}
	for i, r := range res.Rcpts {
		failed := i >= 50 && i < 100
		if r.Addr != to[i] || r.Reply.Accepted() == failed || (failed && (r.Reply.Status != "4.4.5" || r.Reply.Permanent())) {
			t.Errorf("rcpt %d %s: %+v; want accepted=%v", i, r.Addr, r.Reply, !failed)
		}
	}

	// The retry sends only what is still owed: the failed chunk.
	retry := message("scanner@lan.example", to[50:100]...)
	f2 := &fakeSES{}
	res = send(t, New(newClient(t, f2), Config{}), retry)
	if n := len(f2.requests()); n != 1 || len(f2.requests()[0].Destination.ToAddresses) != 50 {
		t.Errorf("retry of 50 made %d calls", n)
	}
	for _, r := range res.Rcpts {
		if !r.Reply.Accepted() {
			t.Errorf("retry: %s %+v", r.Addr, r.Reply)
		}
	}
}
