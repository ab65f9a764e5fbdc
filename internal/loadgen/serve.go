package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/postern/postern/internal/blob/fsblob"
)

// ServeKinds returns the servers Serve can run.
func ServeKinds() []string {
	return []string{"discard", "fsync", "wal", "ingest-each", "ingest-group", "ingest-spool"}
}

// Serve runs one of ServeKinds on addr, with data under dir, until ctx
// ends: the reference servers (RefDiscard, RefFsync, RefWAL) and the ingest
// path through the spool or with each store sync mode (IngestServer).
func Serve(ctx context.Context, kind, addr, dir string, log *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("loadgen: listen: %w", err)
	}
	var serve func(net.Listener) error
	var shutdown func(context.Context) error
	switch kind {
	case "discard", "fsync", "wal":
		s, err := NewRefServer(RefKind(kind), dir, log)
		if err != nil {
			l.Close()
			return err
		}
		serve, shutdown = s.Serve, s.Shutdown
	case "ingest-each", "ingest-group", "ingest-spool":
		mode := fsblob.SyncEach
		if kind == "ingest-group" {
			mode = fsblob.SyncGroup
		}
		s, err := NewIngestServer(IngestOptions{DataDir: dir, Sync: mode, Spool: kind == "ingest-spool", Log: log})
		if err != nil {
			l.Close()
			return err
		}
		serve, shutdown = s.Serve, s.Shutdown
	default:
		l.Close()
		return fmt.Errorf("loadgen: unknown server kind %q (want one of %v)", kind, ServeKinds())
	}
	errc := make(chan error, 1)
	go func() { errc <- serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("loadgen: serve %s: %w", kind, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("loadgen: shutdown %s: %w", kind, err)
	}
	return nil
}
