package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
	"github.com/postern/postern/internal/spool"
)

// BenchmarkAccept is the DATA path from the first body byte to the moment
// the gateway may answer 250. path=spool is the one-machine gateway's:
// append raw message, envelope and job to the spool and wait for its
// shared flush (the mover runs beside it, as in the gateway). path=store is
// the AWS-style path on local parts: stream the raw message into the real
// local store and enqueue the ParseJob (which carries the envelope) on the
// real local queue, both durable, with each store sync mode. sessions is the
// number of concurrent SMTP sessions in DATA. msgs/s is what the disk lets
// the gateway accept; B/op and allocs/op are per message, and must not grow
// with the message size (the body is streamed, never held).
func BenchmarkAccept(b *testing.B) {
	for _, size := range []int{1 << 10, 10 << 10, 100 << 10, 1 << 20} {
		for _, sessions := range []int{1, 10} {
			b.Run(fmt.Sprintf("size=%dKiB/path=spool/sessions=%d", size>>10, sessions), func(b *testing.B) {
				benchAcceptSpool(b, size, sessions)
			})
			for _, mode := range []fsblob.SyncMode{fsblob.SyncEach, fsblob.SyncGroup} {
				name := fmt.Sprintf("size=%dKiB/path=store-%s/sessions=%d", size>>10, mode, sessions)
				b.Run(name, func(b *testing.B) { benchAccept(b, size, mode, sessions) })
			}
		}
	}
}

// openLocal opens a real store and queue under a temporary directory.
func openLocal(b *testing.B, mode fsblob.SyncMode) (dir string, store *fsblob.Store, db *fsqueue.DB, q *fsqueue.Queue) {
	dir = b.TempDir()
	store, err := fsblob.New(filepath.Join(dir, "store"), fsblob.Options{Sync: mode})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	db, err = fsqueue.Open(filepath.Join(dir, "queue.db"), fsqueue.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if q, err = db.Queue("inbound", fsqueue.Config{}); err != nil {
		b.Fatal(err)
	}
	return dir, store, db, q
}

func benchAcceptSpool(b *testing.B, size, sessions int) {
	dir, store, db, q := openLocal(b, fsblob.SyncEach)
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{Complete: ingest.CompleteEnvelope})
	if err != nil {
		b.Fatal(err)
	}
	mv := spool.NewMover(sp, store, q, db)
	if err := mv.Replay(b.Context()); err != nil {
		b.Fatal(err)
	}
	mv.Start()
	b.Cleanup(func() { mv.Stop(context.Background()); sp.Close() })
	run(b, ingest.NewSpooled(sp, slog.New(slog.DiscardHandler)), size, sessions)
}

func benchAccept(b *testing.B, size int, mode fsblob.SyncMode, sessions int) {
	_, store, _, q := openLocal(b, mode)
	run(b, ingest.New(store, q, slog.New(slog.DiscardHandler)), size, sessions)
}

// run accepts b.N messages of size bytes from sessions concurrent callers.
func run(b *testing.B, in interface {
	Accept(context.Context, *postern.Envelope, io.Reader) error
}, size, sessions int) {
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
