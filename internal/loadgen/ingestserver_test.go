package loadgen

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/postern"
)

// TestIngestServersStoreAndQueue checks each ingest-only server the way the
// gateway's stages will read what it wrote: a ParseJob per message, and the
// raw message (and, through the spool, the envelope) under the message's
// keys, with the job's envelope's SHA-256 matching the raw bytes.
func TestIngestServersStoreAndQueue(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]IngestOptions{
		"each":  {Sync: fsblob.SyncEach},
		"group": {Sync: fsblob.SyncGroup},
		"spool": {Spool: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts.DataDir = t.TempDir()
			s, err := NewIngestServer(opts)
			if err != nil {
				t.Fatal(err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve(l)
			res, err := Run(t.Context(), Config{Addr: l.Addr().String(), Sessions: 3, Size: 20 << 10, Messages: 9})
			if err != nil || res.Accepted != 9 {
				t.Fatalf("Run = %+v, %v", res, err)
			}
			// Through the spool, jobs are queued just after the 250.
			msgs, err := s.Inbound.Receive(t.Context(), 10, time.Minute, 0)
			for deadline := time.Now().Add(10 * time.Second); err == nil && len(msgs) < 9 && time.Now().Before(deadline); {
				more, rerr := s.Inbound.Receive(t.Context(), 10, time.Minute, 100*time.Millisecond)
				msgs, err = append(msgs, more...), rerr
			}
			if err != nil || len(msgs) != 9 {
				t.Fatalf("inbound holds %d jobs (%v), want 9", len(msgs), err)
			}
			for _, m := range msgs {
				var job postern.ParseJob
				if err := json.Unmarshal(m.Body, &job); err != nil {
					t.Fatal(err)
				}
				objects := filepath.Join(opts.DataDir, "store", "objects")
				raw, err := os.ReadFile(filepath.Join(objects, job.ID.RawKey()))
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(raw)
				if job.Envelope.SHA256 != hex.EncodeToString(sum[:]) || job.Envelope.Size != int64(len(raw)) {
					t.Errorf("%s: envelope says %d bytes %s, raw is %d bytes", job.ID, job.Envelope.Size, job.Envelope.SHA256, len(raw))
				}
				// The spool writes the envelope sidecar; the direct path (as on
				// AWS) leaves it in the job alone, for parse to archive.
				_, err = os.Stat(filepath.Join(objects, job.ID.EnvelopeKey()))
				if opts.Spool && err != nil {
					t.Errorf("%s: no envelope: %v", job.ID, err)
				}
				if !opts.Spool && err == nil {
					t.Errorf("%s: the direct path wrote envelope.json, a request more per message", job.ID)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}
