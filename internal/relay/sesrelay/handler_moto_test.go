package sesrelay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/relaytest"
	"github.com/postern/postern/internal/standin"
)

// recordingAPI notes the destinations of every SendEmail call before
// passing it on.
type recordingAPI struct {
	API
	mu    sync.Mutex
	calls [][]string
}

func (r *recordingAPI) SendEmail(ctx context.Context, in *sesv2.SendEmailInput, o ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error) {
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(in.Destination.ToAddresses))
	r.mu.Unlock()
	return r.API.SendEmail(ctx, in, o...)
}

func (r *recordingAPI) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n []int
	for _, c := range r.calls {
		n = append(n, len(c))
	}
	return n
}

// Through the relay stage: moto refuses the chunk holding an address it
// cannot parse (a quoted local part with an @), the other two chunks are
// accepted and recorded, and the retry sends only the refused chunk's 50.
func TestRelayStageRetriesOnlyTheFailedChunk(t *testing.T) {
	t.Parallel()
	ep := standin.Moto(t)
	api := &recordingAPI{API: motoClient(ep)}
	domain := fmt.Sprintf("lan-%08x.example", rand.Uint32())
	if _, err := motoClient(ep).CreateEmailIdentity(t.Context(), &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(domain)}); err != nil {
		t.Fatal(err)
	}
	const id postern.MsgID = "01JNKQ3V8Z7Y6X5W4V3T2S1R0S"
	raw := "From: scanner@" + domain + "\r\nTo: undisclosed-recipients:;\r\nSubject: scan\r\n\r\nbody\r\n"
	store := relaytest.NewStore()
	store.Put(t.Context(), id.RawKey(), strings.NewReader(raw), nil)
	created := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	job := postern.RelayJob{V: postern.JobVersion, ID: id, Route: "ses", Created: created,
		Envelope: postern.Envelope{V: postern.EnvelopeVersion, ID: id, Sender: "scanner@" + domain, Size: int64(len(raw))}}
	for i := range 120 {
		a := fmt.Sprintf("r%03d@example.com", i)
		if i == 75 {
			a = `"x@y"@example.com`
		}
		job.Recipients = append(job.Recipients, a)
		job.Envelope.Recipients = append(job.Envelope.Recipients, postern.Recipient{Addr: a})
	}
	body, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	dsnq := &relaytest.Queue{}
	route := relay.Route{Transport: New(api, Config{}), MaxAge: 4 * time.Hour}
	now := created.Add(time.Minute)
	h := relay.New(store, func(name string) (relay.Route, bool) { return route, name == "ses" }, dsnq,
		slog.New(slog.NewTextHandler(t.Output(), nil)), relay.WithClock(func() time.Time { return now }))

	// moto is shared with the package's other tests: count only what came
	// from this test's domain.
	sent := func() int {
		n := 0
		for _, m := range motoSentMessages(t, ep) {
			if strings.HasSuffix(m.Source, "@"+domain) || strings.Contains(m.RawData, "scanner@"+domain) {
				n++
			}
		}
		return n
	}
	before := sent()
	err = h.Handle(t.Context(), postern.Job{Body: body, Attempt: 1})
	if err == nil || postern.IsPermanent(err) {
		t.Fatalf("first Handle = %v, want a retry", err)
	}
	if got := api.sizes(); !slices.Equal(got, []int{50, 50, 20}) {
		t.Fatalf("first attempt's calls %v, want 50, 50, 20", got)
	}
	if got := sent() - before; got != 2 {
		t.Errorf("moto took %d messages, want 2 (the first and last chunks)", got)
	}
	if len(dsnq.Bodies()) != 0 {
		t.Error("a DSN was queued for a temporary failure")
	}

	now = now.Add(5 * time.Minute)
	if err := h.Handle(t.Context(), postern.Job{Body: body, Attempt: 2}); err == nil {
		t.Fatal("second Handle succeeded though the bad address is still there")
	}
	api.mu.Lock()
	retry := api.calls[3:]
	api.mu.Unlock()
	if len(retry) != 1 || !slices.Equal(retry[0], job.Recipients[50:100]) {
		t.Errorf("the retry sent %d calls (%v recipients), want one to the failed chunk's 50", len(retry), api.sizes()[3:])
	}
	if got := sent() - before; got != 2 {
		t.Errorf("after the retry moto holds %d new messages, want still 2: accepted chunks are not sent again", got)
	}
}
