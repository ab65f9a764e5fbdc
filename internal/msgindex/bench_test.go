package msgindex

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// BenchmarkWriter is the index's whole cost per message in the gateway:
// its acceptance, the parse stage's done event (reading parsed.json, here
// of a 10 KiB text message) and one delivery, written in batches. CPU per
// message is what it adds to the pipeline's.
func BenchmarkWriter(b *testing.B) {
	const n = 2000
	st := newStore(b)
	envs := make([]*postern.Envelope, n)
	for i := range envs {
		envs[i] = envelope(t0.Add(time.Duration(i)*time.Millisecond), "scanner@lan.example", "scanner", fmt.Sprintf("user%d@app.test", i%50))
		storedText(b, st, envs[i], "Scan", 1, strings.Repeat("x", 10<<10))
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		x, err := Open(filepath.Join(b.TempDir(), "index.db"), Options{Store: st, Router: byDomain, Interval: time.Nanosecond})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, env := range envs {
			x.Accepted(env)
			x.Events(env.ID, []trace.Event{{Time: env.ReceivedAt.Add(time.Second), Stage: "parse", Event: trace.EventDone, Attempt: 1}})
			x.Events(env.ID, []trace.Event{{Time: env.ReceivedAt.Add(2 * time.Second), Stage: "webhook", Event: trace.EventDelivered, Route: "app", Attempt: 1, Status: 200}})
		}
		if err := x.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		x.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/msg")
}

// BenchmarkList is one page of the newest 50 with a recipient filter, and
// a text search, over 20,000 rows.
func BenchmarkList(b *testing.B) {
	st := newStore(b)
	x, err := Open(filepath.Join(b.TempDir(), "index.db"), Options{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	for i := range 20000 {
		x.Accepted(envelope(t0.Add(time.Duration(i)*time.Millisecond), "scanner@lan.example", "scanner", fmt.Sprintf("user%d@app.test", i%50)))
	}
	if err := x.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		q    Query
	}{{"rcpt", Query{Rcpt: "user7@app.test"}}, {"text", Query{Text: "user7@"}}, {"all", Query{}}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := x.List(c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
