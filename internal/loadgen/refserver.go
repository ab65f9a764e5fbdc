package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"
)

// RefKind names a reference server.
type RefKind string

const (
	// RefDiscard reads DATA and throws it away: the framework ceiling, what
	// go-smtp itself costs on this machine.
	RefDiscard RefKind = "discard"
	// RefFsync writes each message to a new file and fsyncs it before
	// replying 250: the durable ceiling, one flush per message and nothing
	// else. (The file's directory entry is not fsynced separately; on ext4
	// and XFS the file's fsync commits the journal transaction that holds
	// it, so this is still a durable write there.)
	RefFsync RefKind = "fsync"
	// RefWAL appends every message to one shared log file and replies 250
	// after an fdatasync of the log that started after its write: group
	// commit over a single file, the upper bound for a gateway that made
	// each message durable in one journal (raw message, envelope and job
	// together) and moved it into the store and queue later.
	RefWAL RefKind = "wal"
)

// NewRefServer returns a go-smtp server of the given kind, configured as
// the gateway is (limits, timeouts) but with no policy at all. For RefFsync,
// dir is where messages are written; it must exist.
func NewRefServer(kind RefKind, dir string, log *slog.Logger) (*smtp.Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &refBackend{kind: kind, dir: dir}
	b.bufs.New = func() any { buf := make([]byte, 32<<10); return &buf }
	switch kind {
	case RefDiscard:
	case RefFsync:
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("loadgen: reference server directory %q: %v", dir, err)
		}
	case RefWAL:
		f, err := os.OpenFile(filepath.Join(dir, "spool.log"), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("loadgen: reference server log: %w", err)
		}
		b.log = f
		b.barrier = &barrier{sync: func() error { return unix.Fdatasync(int(f.Fd())) }}
	default:
		return nil, fmt.Errorf("loadgen: unknown reference server kind %q", kind)
	}
	s := smtp.NewServer(b)
	s.Domain = "ref.bench.test"
	s.MaxMessageBytes = 64 << 20
	s.MaxRecipients = 100
	s.MaxLineLength = 2000
	s.ReadTimeout = 5 * time.Minute
	s.WriteTimeout = 5 * time.Minute
	s.ErrorLog = slogPrintf{log}
	return s, nil
}

type refBackend struct {
	kind RefKind
	dir  string
	seq  atomic.Uint64
	bufs sync.Pool // *[]byte

	logMu   sync.Mutex // one message's bytes at a time into the log
	log     *os.File   // RefWAL only; open for the server's (the process's) life
	barrier *barrier   // RefWAL only
}

func (b *refBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &refSession{b: b}, nil }

type refSession struct{ b *refBackend }

func (s *refSession) Reset()                               {}
func (s *refSession) Logout() error                        { return nil }
func (s *refSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *refSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *refSession) Data(r io.Reader) error               { return s.b.data(r) }

// tempFailure is the reply for a write that failed: the client retries.
var tempFailure = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure"}

func (b *refBackend) data(r io.Reader) error {
	buf := b.bufs.Get().(*[]byte)
	defer b.bufs.Put(buf)
	switch b.kind {
	case RefDiscard:
		return b.discard(r, *buf)
	case RefWAL:
		return b.appendLog(r, *buf)
	}
	name := filepath.Join(b.dir, "msg-"+strconv.FormatUint(b.seq.Add(1), 10)+".eml")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		b.discard(r, *buf)
		return tempFailure
	}
	_, err = io.CopyBuffer(writerOnly{f}, readerOnly{r}, *buf)
	err = errors.Join(err, f.Sync(), f.Close())
	if err != nil {
		os.Remove(name)
		b.discard(r, *buf)
		return tempFailure
	}
	return nil
}

// appendLog spools the message into memory-sized chunks of the shared log
// (a real log would frame records and bound their size), then waits for a
// shared flush.
func (b *refBackend) appendLog(r io.Reader, buf []byte) error {
	var msg bytes.Buffer
	if _, err := io.CopyBuffer(&msg, readerOnly{r}, buf); err != nil {
		return tempFailure
	}
	b.logMu.Lock()
	_, err := b.log.Write(msg.Bytes())
	b.logMu.Unlock()
	if err != nil || b.barrier.wait(context.Background()) != nil {
		return tempFailure
	}
	return nil
}

func (b *refBackend) discard(r io.Reader, buf []byte) error {
	_, err := io.CopyBuffer(io.Discard, readerOnly{r}, buf)
	return err
}

// writerOnly and readerOnly hide ReadFrom and WriteTo, so copies go through
// the pooled buffer instead of allocating one per message.
type writerOnly struct{ w io.Writer }
type readerOnly struct{ r io.Reader }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }
func (r readerOnly) Read(p []byte) (int, error)  { return r.r.Read(p) }

// slogPrintf routes go-smtp's error log to slog.
type slogPrintf struct{ log *slog.Logger }

func (l slogPrintf) Printf(format string, v ...any) { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l slogPrintf) Println(v ...any)               { l.log.Warn(fmt.Sprint(v...)) }

// barrier is group commit over one expensive sync: wait returns once a sync
// that started after wait was called has finished. Callers arriving while a
// sync runs share the next one.
type barrier struct {
	sync func() error

	mu      sync.Mutex
	next    *round
	running bool
}

type round struct {
	done chan struct{}
	err  error
}

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	if b.next == nil {
		b.next = &round{done: make(chan struct{})}
	}
	r := b.next
	if !b.running {
		b.running = true
		go b.lead()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *barrier) lead() {
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		r.err = b.sync()
		close(r.done)
	}
}
