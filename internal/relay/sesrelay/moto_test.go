package sesrelay

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/standin"
)

// motoClient is an SES v2 client for moto's server, with its own HTTP
// client (this machine sets AWS_CA_BUNDLE).
func motoClient(endpoint string) *sesv2.Client {
	cfg := aws.Config{Region: standin.Region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	return sesv2.NewFromConfig(cfg, func(o *sesv2.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.HTTPClient = awsclient.HTTPClient(&http.Client{Timeout: 30 * time.Second})
		o.RetryMaxAttempts = 1
	})
}

// motoSent is one message moto's SES keeps (its RawMessage model).
type motoSent struct {
	ID           string   `json:"id"`
	Source       string   `json:"source"`
	Destinations []string `json:"destinations"`
	RawData      string   `json:"raw_data"`
}

// motoSentMessages reads the messages moto's SES has taken, by id, from
// its model dump (moto 5: GET /moto-api/data.json, under ses.RawMessage).
func motoSentMessages(t *testing.T, endpoint string) map[string]motoSent {
	t.Helper()
	resp, err := http.Get(endpoint + "/moto-api/data.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var data map[string]map[string][]motoSent
	if err := json.NewDecoder(resp.Body).Decode(&data); err != nil {
		t.Fatalf("decode moto's data.json: %v", err)
	}
	out := map[string]motoSent{}
	for _, m := range data["ses"]["RawMessage"] {
		out[m.ID] = m
	}
	return out
}

func TestSESOnMoto(t *testing.T) {
	t.Parallel()
	ep := standin.Moto(t)
	api := motoClient(ep)
	domain := fmt.Sprintf("lan-%08x.example", rand.Uint32())
	// moto, like SES in the sandbox, sends only from verified identities.
	if _, err := api.CreateEmailIdentity(t.Context(), &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(domain)}); err != nil {
		t.Fatal(err)
	}
	// Bare LF line ends, as a device may store them: SES gets CRLF. The
	// header names no recipient (moto, unlike SES, adds header addresses
	// to the destinations).
	body := "From: scanner@" + domain + "\nTo: undisclosed-recipients:;\nSubject: scan 42\nMessage-ID: <42@" + domain + ">\n\nhello\nworld\n"
	want := strings.ReplaceAll(body, "\n", "\r\n")
	var to []string
	for i := range 120 {
		to = append(to, fmt.Sprintf("r%03d@example.com", i))
	}
	m := &relay.Message{ID: "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q", From: "scanner@" + domain, Body: strings.NewReader(body), Size: int64(len(body))}
	for _, a := range to {
		m.To = append(m.To, relay.Rcpt{Addr: a})
	}
	res := send(t, New(api, Config{}), m)

	stored := motoSentMessages(t, ep)
	var ids []string
	var sizes []int
	var got []string
	for i, r := range res.Rcpts {
		id, ok := strings.CutPrefix(r.Reply.Text, "accepted as ")
		if !r.Reply.Accepted() || !ok {
			t.Fatalf("rcpt %d %s: %+v", i, r.Addr, r.Reply)
		}
		if len(ids) > 0 && ids[len(ids)-1] == id {
			continue
		}
		ids = append(ids, id)
		s, ok := stored[id]
		if !ok {
			t.Fatalf("moto has no message %s", id)
		}
		sizes = append(sizes, len(s.Destinations))
		got = append(got, s.Destinations...)
		if s.RawData != want {
			t.Errorf("moto stored %q, want %q", s.RawData, want)
		}
	}
	if !slices.Equal(sizes, []int{50, 50, 20}) || !slices.Equal(got, to) {
		t.Errorf("moto took %d messages of %v recipients; want 50, 50, 20 covering all 120 in order", len(ids), sizes)
	}

	// An unverified sender is refused for the message: permanent.
	m = &relay.Message{ID: "01JNKQ3V8Z7Y6X5W4V3T2S1R0R", From: "x@unverified.example",
		Body: strings.NewReader(strings.ReplaceAll(body, domain, "unverified.example")), To: []relay.Rcpt{{Addr: "a@example.com"}}}
	res = send(t, New(api, Config{}), m)
	if r := res.Rcpts[0].Reply; !r.Permanent() || r.Type != DiagSES || !strings.Contains(r.Text, "MessageRejected") {
		t.Errorf("unverified sender: %+v, want a permanent MessageRejected", r)
	}
}
