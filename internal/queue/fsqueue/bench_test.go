package fsqueue_test

import (
	"bytes"
	"testing"

	"github.com/postern/postern/internal/queue/fsqueue"
)

// jobBody is about the size of a real job: references and an envelope.
func jobBody() []byte { return bytes.Repeat([]byte("j"), 1024) }

// BenchmarkSendSerial is one sender: every Send is a commit and an fsync
// of its own, the floor that group commit lifts.
func BenchmarkSendSerial(b *testing.B) {
	q := openQueue(b, openDB(b), "jobs", fsqueue.Config{})
	ctx := b.Context()
	jobBody := jobBody()
	b.SetBytes(int64(len(jobBody)))
	for b.Loop() {
		if _, err := q.Send(ctx, jobBody, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSendParallel is many senders, as on a busy gateway: their Sends
// share commits, so ns/op falls well below BenchmarkSendSerial's.
func BenchmarkSendParallel(b *testing.B) {
	q := openQueue(b, openDB(b), "jobs", fsqueue.Config{})
	ctx := b.Context()
	jobBody := jobBody()
	b.SetBytes(int64(len(jobBody)))
	b.SetParallelism(32) // 32 senders per CPU; SMTP sessions are I/O-bound
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.Send(ctx, jobBody, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkReceiveDelete drains a queue in batches of 10 with one
// consumer, as a local poller does.
func BenchmarkReceiveDelete(b *testing.B) {
	q := openQueue(b, openDB(b), "jobs", fsqueue.Config{})
	ctx := b.Context()
	jobBody := jobBody()
	for range b.N {
		if _, err := q.Send(ctx, jobBody, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for n := 0; n < b.N; {
		msgs, err := q.Receive(ctx, 10, 60e9, 0)
		if err != nil || len(msgs) == 0 {
			b.Fatalf("Receive = %d, %v", len(msgs), err)
		}
		for _, m := range msgs {
			if err := q.Delete(ctx, m.Receipt); err != nil {
				b.Fatal(err)
			}
		}
		n += len(msgs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkReceiveDeleteParallel is many consumers, as the local pollers
// running handlers at once: their receives and deletes share commits.
func BenchmarkReceiveDeleteParallel(b *testing.B) {
	q := openQueue(b, openDB(b), "jobs", fsqueue.Config{})
	ctx := b.Context()
	jobBody := jobBody()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) { // fill with the same parallelism
		for pb.Next() {
			if _, err := q.Send(ctx, jobBody, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			msgs, err := q.Receive(ctx, 1, 60e9, 0)
			if err != nil || len(msgs) != 1 {
				b.Errorf("Receive = %d, %v", len(msgs), err)
				return
			}
			if err := q.Delete(ctx, msgs[0].Receipt); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
