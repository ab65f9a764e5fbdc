package ingest_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/ingest"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/fsqueue"
)

// BenchmarkAccept is the DATA path from the first body byte to the moment
// the gateway may answer 250: stream the raw message into the real local
// store, write the envelope sidecar, enqueue the ParseJob on the real local
// queue, all durable. sessions is the number of concurrent SMTP sessions in
// DATA; each store sync mode is measured, SyncEach being what the gateway
// uses today. msgs/s is what the disk lets the gateway accept; B/op and
// allocs/op are per message, and must not grow with the message size (the
// body is streamed, never held).
func BenchmarkAccept(b *testing.B) {
	for _, size := range []int{1 << 10, 10 << 10, 100 << 10, 1 << 20} {
		for _, mode := range []fsblob.SyncMode{fsblob.SyncEach, fsblob.SyncGroup} {
			for _, sessions := range []int{1, 10} {
				name := fmt.Sprintf("size=%dKiB/sync=%s/sessions=%d", size>>10, mode, sessions)
				b.Run(name, func(b *testing.B) { benchAccept(b, size, mode, sessions) })
			}
		}
	}
}

func benchAccept(b *testing.B, size int, mode fsblob.SyncMode, sessions int) {
	dir := b.TempDir()
	store, err := fsblob.New(filepath.Join(dir, "store"), fsblob.Options{Sync: mode})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	db, err := fsqueue.Open(filepath.Join(dir, "queue.db"), fsqueue.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	q, err := db.Queue("inbound", fsqueue.Config{})
	if err != nil {
		b.Fatal(err)
	}
	in := ingest.New(store, q, slog.New(slog.DiscardHandler))
	body := message(size)
	ctx := b.Context()

	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range sessions {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				env := &postern.Envelope{
					ID: postern.NewMsgID(), Sender: "scanner@lan.example",
					Recipients: []postern.Recipient{{Addr: "inbox@app.example"}},
					Identity:   "local", ClientIP: "192.0.2.10", HELO: "scanner.lan", Gateway: "gw.example",
					ReceivedAt: time.Now(),
				}
				if err := in.Accept(ctx, env, bytes.NewReader(body)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// message is a plain-text message of size bytes with CRLF lines.
func message(size int) []byte {
	var m bytes.Buffer
	m.WriteString("From: <scanner@lan.example>\r\nTo: <inbox@app.example>\r\nSubject: scan\r\n\r\n")
	line := bytes.Repeat([]byte("0123456789abcdef"), 5)
	for m.Len() < size {
		m.Write(line[:min(len(line), size-m.Len())])
		m.WriteString("\r\n")
	}
	return m.Bytes()
}
