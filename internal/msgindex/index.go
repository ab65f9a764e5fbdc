// Package msgindex keeps local mode's message index: one row per message
// (envelope facts, subject, attachments, each route's status) in a bbolt
// file beside the queue's, for the admin API's newest-first, filtered list.
//
// The index is a view, never the record: the store and the trace events
// are. It is fed from what already happens (Accepted when the gateway
// acknowledges a message, Events when a stage records its trace events,
// Forget when retention removes a message), through a bounded queue that
// one goroutine drains into one bbolt transaction per batch. Feeding it
// never blocks and never fails mail: when the backlog is full or a batch
// cannot be written, the update is dropped, logged at ERROR, counted, and
// the index says it is incomplete (State) until Rebuild rebuilds it from
// the store.
package msgindex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// Buckets and meta keys of the index file.
var (
	bucketMsgs = []byte("msgs") // id -> Message (JSON); ids are ULIDs, so key order is time order
	bucketKeys = []byte("keys") // field byte + value + 0x00 + id -> nothing; see Message.keys
	bucketMeta = []byte("meta")

	metaVersion    = []byte("v")
	metaIncomplete = []byte("incomplete") // why the index may miss messages or updates; absent when complete
	metaOpen       = []byte("open")       // "1" while a process has the index open
	metaLastWrite  = []byte("last_write") // when the last batch was taken, RFC 3339 (see Repair)
)

const schemaVersion = "1"

// Options tune an Index. Store is required for a live index (it reads the
// parsed form of each message the parse stage finishes).
type Options struct {
	// Store is where the parsed form and, for a message the index has
	// not seen accepted, the envelope are read from.
	Store blob.Store
	// Router names the routes the parse stage gave the recipients.
	Router Router
	Log    *slog.Logger
	// Backlog bounds the updates waiting for the writer; beyond it they
	// are dropped (and the index marked incomplete). Default 65536.
	Backlog int
	// MaxBatch bounds the updates written in one transaction. Default 4096.
	MaxBatch int
	// Interval is the least time between two transactions. Default 200ms:
	// the stages' events come one job at a time, and a transaction for each
	// would cost a disk flush each (about 1 ms of CPU per message).
	Interval time.Duration
	// Hold, when set, is called before each batch with the time its first
	// update was queued; it may wait (the gateway's burst priority, as the
	// stages yield to SMTP uploads). ctx ends when the index closes.
	Hold func(ctx context.Context, queuedAt time.Time)
	// MaxScan bounds the rows one List looks at (default MaxScan).
	MaxScan int
	// LockTimeout bounds the wait for the file lock another process holds
	// (a running gateway). Default 2s.
	LockTimeout time.Duration
}

// Index is an open index file and its writer. Its methods are safe for
// concurrent use.
type Index struct {
	db   *bolt.DB
	opts Options
	log  *slog.Logger

	// mu guards queue and closed. queue holds the updates the writer has
	// not taken yet, in order, at most Options.Backlog of them (a Flush
	// may add one more); it is a slice the writer swaps out, not a
	// buffered channel, so that the garbage collector scans only what is
	// queued (a channel's whole buffer is scanned every cycle, used or
	// not). Once closed is set nothing is added. wake (capacity 1) tells
	// the writer there is something to take.
	mu     sync.Mutex
	taken  time.Time // when the writer last took the queue
	queue  []op
	spare  []op // the writer's last batch, emptied, for the next swap
	closed bool
	wake   chan struct{}

	ctx    context.Context // ends at Close, to cut a Hold short
	cancel context.CancelFunc
	done   chan struct{} // closed when the writer has returned

	created   bool
	unclean   bool          // the last process did not close the file (see Repair)
	lastWrite time.Time     // when its last batch was taken
	dropped   atomic.Uint64 // updates dropped because the backlog was full
	failures  atomic.Uint64 // batches that could not be written

	// factsMu guards facts: what the parse stage told Parsed of messages
	// whose parse done event the writer has not applied yet, at most
	// maxFacts of them.
	factsMu sync.Mutex
	facts   map[postern.MsgID]parsedFacts

	// stateMu guards incomplete (the persisted reason, "" when complete),
	// pending (a reason to persist with the next batch), and lastLog and
	// unlogged, which space out the log lines about lost updates.
	stateMu    sync.Mutex
	incomplete string
	pending    string
	lastLog    time.Time // when a dropped update was last logged
	unlogged   int       // dropped updates since then, not logged
}

type opKind int

const (
	opAccepted opKind = iota
	opEvents
	opForget
	opFlush
)

type op struct {
	kind opKind
	at   time.Time
	id   postern.MsgID
	env  *postern.Envelope // opAccepted
	evs  []trace.Event     // opEvents
	done chan struct{}     // opFlush: closed once the batch is written
}

// Open opens (creating if need be) the index file at path and starts its
// writer. A file a process left open (killed, crashed) is marked
// incomplete: the updates of its last moments may be missing.
func Open(path string, opts Options) (*Index, error) {
	if opts.Backlog <= 0 {
		opts.Backlog = 1 << 16
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.MaxScan <= 0 {
		opts.MaxScan = MaxScan
	}
	if opts.Interval <= 0 {
		opts.Interval = 200 * time.Millisecond
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("message index %s: another process (a running gateway?) holds it: %w", path, err)
		}
		return nil, fmt.Errorf("message index %s: %w", path, err)
	}
	x := &Index{db: db, opts: opts, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if err := db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		for _, b := range [][]byte{bucketMsgs, bucketKeys} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		switch v := string(meta.Get(metaVersion)); v {
		case "":
			x.created = true
			if err := meta.Put(metaVersion, []byte(schemaVersion)); err != nil {
				return err
			}
		case schemaVersion:
		default:
			return fmt.Errorf("schema version %q, this gateway reads %q: run gateway reindex", v, schemaVersion)
		}
		x.incomplete = string(meta.Get(metaIncomplete))
		if string(meta.Get(metaOpen)) == "1" && x.incomplete == "" {
			x.unclean = true
			x.lastWrite, _ = time.Parse(time.RFC3339Nano, string(meta.Get(metaLastWrite)))
			x.incomplete = uncleanReason
			if err := meta.Put(metaIncomplete, []byte(x.incomplete)); err != nil {
				return err
			}
		}
		return meta.Put(metaOpen, []byte("1"))
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("message index %s: %w", path, err)
	}
	x.ctx, x.cancel = context.WithCancel(context.Background())
	go x.run()
	return x, nil
}

// uncleanReason is why an index a process left open is incomplete until
// Repair or Rebuild.
const uncleanReason = "the gateway stopped without closing the index (a crash or kill -9): updates of its last moments may be missing; run gateway reindex"

// Created reports whether Open made a new index file (so it knows nothing
// of messages stored before).
func (x *Index) Created() bool { return x.created }

// Close writes what is queued, marks the file closed cleanly and closes
// it. It is safe to call more than once.
func (x *Index) Close() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil
	}
	x.closed = true
	x.mu.Unlock()
	x.signal()
	x.cancel() // a Hold in progress lets go
	<-x.done
	err := x.db.Update(func(tx *bolt.Tx) error {
		if err := x.putPending(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaOpen, []byte("0"))
	})
	return errors.Join(err, x.db.Close())
}

// Accepted indexes a message the gateway has just acknowledged. It never
// blocks: see the package comment. env must not change afterwards (the
// gateway makes one per message).
func (x *Index) Accepted(env *postern.Envelope) {
	x.send(op{kind: opAccepted, id: env.ID, env: env})
}

// Events folds a message's trace events into its row (a trace.Tee). It
// never blocks.
func (x *Index) Events(id postern.MsgID, evs []trace.Event) {
	x.send(op{kind: opEvents, id: id, evs: slices.Clone(evs)})
}

// Forget removes a message's row (retention removed its objects). It never
// blocks.
func (x *Index) Forget(id postern.MsgID) {
	x.send(op{kind: opForget, id: id})
}

// Flush waits until the updates sent before it are written (or lost), or
// ctx ends. Unlike the feeding methods it blocks: for tests, and for
// reading one's own writes.
func (x *Index) Flush(ctx context.Context) error {
	done := make(chan struct{})
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return errors.New("message index: closed")
	}
	x.queue = append(x.queue, op{kind: opFlush, at: time.Now(), done: done})
	x.mu.Unlock()
	x.signal()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (x *Index) send(o op) {
	o.at = time.Now()
	x.mu.Lock()
	var lost string
	switch {
	case x.closed:
		lost = "the index was closed"
	case len(x.queue) >= x.opts.Backlog:
		lost = "the index fell behind (backlog full)"
	default:
		x.queue = append(x.queue, o)
	}
	x.mu.Unlock()
	if lost != "" {
		x.drop(lost, 1)
		return
	}
	x.signal()
}

// signal wakes the writer.
func (x *Index) signal() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// drop counts n updates that will never be written and marks the index
// incomplete; it logs at ERROR, the first time and then at most every 10 s.
func (x *Index) drop(why string, n int) {
	x.dropped.Add(uint64(n))
	x.stateMu.Lock()
	reason := "updates were lost (" + why + "); run gateway reindex"
	if x.incomplete == "" {
		x.incomplete = reason
		x.pending = reason
	}
	now := time.Now()
	x.unlogged += n
	if !x.lastLog.IsZero() && now.Sub(x.lastLog) < 10*time.Second {
		x.stateMu.Unlock()
		return
	}
	lost := x.unlogged
	x.lastLog, x.unlogged = now, 0
	x.stateMu.Unlock()
	x.log.Error("message index update lost", slog.String("stage", "index"), slog.String("reason", why),
		slog.Int("updates", lost), slog.Uint64("dropped_total", x.dropped.Load()))
}

// State is how far the index can be trusted.
type State struct {
	Complete bool `json:"complete"`
	// Reason says why it is not, and what to do.
	Reason   string `json:"reason,omitempty"`
	Dropped  uint64 `json:"dropped"`  // updates lost since start
	Failures uint64 `json:"failures"` // batches not written since start
	Backlog  int    `json:"backlog"`  // updates waiting for the writer
}

// State reports whether the index holds every message and update.
func (x *Index) State() State {
	x.stateMu.Lock()
	reason := x.incomplete
	x.stateMu.Unlock()
	return State{Complete: reason == "", Reason: reason, Dropped: x.dropped.Load(), Failures: x.failures.Load(), Backlog: x.Backlog()}
}

// Dropped and Failures are counters for metrics: updates lost, and
// batches that could not be written.
func (x *Index) Dropped() uint64  { return x.dropped.Load() }
func (x *Index) Failures() uint64 { return x.failures.Load() }

// Backlog is the number of updates waiting for the writer.
func (x *Index) Backlog() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.queue)
}

// MarkIncomplete records (durably, with the next batch) that the index
// misses messages for reason, unless it already says why it is incomplete.
func (x *Index) MarkIncomplete(reason string) {
	x.stateMu.Lock()
	defer x.stateMu.Unlock()
	if x.incomplete == "" {
		x.incomplete, x.pending = reason, reason
	}
}

// putLastWrite records when the writer took its current batch: every
// update queued before then is in this transaction or an earlier one.
func (x *Index) putLastWrite(tx *bolt.Tx) error {
	x.mu.Lock()
	taken := x.taken
	x.mu.Unlock()
	return tx.Bucket(bucketMeta).Put(metaLastWrite, []byte(taken.UTC().Format(time.RFC3339Nano)))
}

// putPending writes a reason MarkIncomplete or drop noted.
func (x *Index) putPending(tx *bolt.Tx) error {
	x.stateMu.Lock()
	reason := x.pending
	x.pending = ""
	x.stateMu.Unlock()
	if reason == "" {
		return nil
	}
	return tx.Bucket(bucketMeta).Put(metaIncomplete, []byte(reason))
}

// run is the writer: it takes what is queued at a time and writes it, at
// most MaxBatch updates per transaction, until Close and the queue is
// empty.
func (x *Index) run() {
	defer close(x.done)
	var last time.Time // the last transaction
	for {
		<-x.wake
		x.mu.Lock()
		if len(x.queue) == 0 {
			closed := x.closed
			x.mu.Unlock()
			if closed {
				return
			}
			continue
		}
		first := x.queue[0].at
		x.mu.Unlock()
		if x.opts.Hold != nil {
			x.opts.Hold(x.ctx, first)
		}
		if wait := x.opts.Interval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-x.ctx.Done():
				t.Stop()
			}
		}
		last = time.Now()
		x.mu.Lock()
		batch := x.queue
		x.queue, x.spare = x.spare[:0], nil
		x.taken = time.Now()
		x.mu.Unlock()
		all := batch
		for len(batch) > 0 {
			n := min(len(batch), x.opts.MaxBatch)
			x.write(batch[:n])
			for _, o := range batch[:n] {
				if o.kind == opFlush {
					close(o.done)
				}
			}
			clear(batch[:n]) // drop the envelopes and events for the collector
			batch = batch[n:]
		}
		x.mu.Lock()
		x.spare = all[:0]
		x.mu.Unlock()
		x.signal() // whatever came in meanwhile
	}
}

// write applies a batch in one transaction. A batch that fails (or panics)
// is lost: it is counted, logged and marks the index incomplete.
func (x *Index) write(batch []op) {
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		return x.db.Update(func(tx *bolt.Tx) error {
			w := newWriter(tx)
			for _, o := range batch {
				if err := x.apply(w, o); err != nil {
					return err
				}
			}
			if err := w.flush(); err != nil {
				return err
			}
			if err := x.putLastWrite(tx); err != nil {
				return err
			}
			return x.putPending(tx)
		})
	}()
	if err != nil {
		x.failures.Add(1)
		x.drop("a batch could not be written: "+err.Error(), len(batch))
	}
}

// storeTimeout bounds each read of the store the writer makes.
const storeTimeout = 10 * time.Second

func (x *Index) apply(w *writer, o op) error {
	switch o.kind {
	case opFlush:
		return nil
	case opForget:
		return w.forget(o.id)
	case opAccepted:
		m, err := w.get(o.id)
		if err != nil {
			return err
		}
		if m == nil {
			m = newMessage(o.env)
		} else {
			m.setEnvelope(o.env)
		}
		w.put(m)
		return nil
	}
	m, err := w.get(o.id)
	if err != nil {
		return err
	}
	if m == nil {
		// An event for a message the index did not see accepted (its
		// update lost, or a message from before the index existed): the
		// envelope in the store starts its row. A message that is gone
		// (retention) stays out.
		m, err = x.fromStore(o.id)
		if m == nil || err != nil {
			return err
		}
	}
	for _, ev := range o.evs {
		m.apply(ev, func() (*Parsed, []Assignment) { return x.parsed(m) })
	}
	w.put(m)
	return nil
}

// fromStore starts a row from the message's stored envelope; nil when the
// store has none.
func (x *Index) fromStore(id postern.MsgID) (*Message, error) {
	if x.opts.Store == nil {
		return nil, nil
	}
	// Not x.ctx: the writer finishes its backlog after Close began.
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	env, err := trace.LoadEnvelope(ctx, x.opts.Store, id)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		x.log.Warn("message index: envelope not read", slog.String("msg_id", string(id)), slog.String("stage", "index"), slog.String("error", err.Error()))
		x.MarkIncomplete("the envelope of a message could not be read; run gateway reindex")
		return nil, nil
	}
	return newMessage(env), nil
}

// parsed reads the message's parsed form for the parse stage's done event.
// A read that fails leaves the row without subject and routes (the index
// says it is incomplete); the mail is not held up.
func (x *Index) parsed(m *Message) (*Parsed, []Assignment) {
	if f, ok := x.takeFacts(m.ID); ok {
		return f.p, route(x.opts.Router, m, f.env, f.p)
	}
	if x.opts.Store == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	p, env, err := LoadParsed(ctx, x.opts.Store, m.ID)
	if err != nil {
		if !errors.Is(err, blob.ErrNotFound) {
			x.log.Warn("message index: parsed form not read", slog.String("msg_id", string(m.ID)), slog.String("stage", "index"), slog.String("error", err.Error()))
			x.MarkIncomplete("the parsed form of a message could not be read; run gateway reindex")
		}
		return nil, nil
	}
	return p, route(x.opts.Router, m, env, p)
}

// parsedFacts is what Parsed keeps of a message until its parse done event.
type parsedFacts struct {
	env *postern.Envelope
	p   *Parsed
}

// maxFacts bounds the facts waiting for their done event (a parse whose
// routing then fails leaves its facts until a retry succeeds); past it the
// writer reads parsed.json as it would without them.
const maxFacts = 4096

// Parsed tells the index what the parse stage stored for message p.ID (the
// envelope it routed and the parsed form), so that the stage's done event
// needs no read of parsed.json: a JSON decode as large as the message, on
// the writer's goroutine. It never blocks; p and env are not changed.
func (x *Index) Parsed(env *postern.Envelope, p *postern.Parsed) {
	f := parsedFacts{env: new(postern.Envelope), p: &Parsed{Subject: p.Subject, Attachments: len(p.Attachments),
		Headers: p.Headers, Auth: p.Auth, AuthResults: p.AuthResults}}
	*f.env = *env
	x.factsMu.Lock()
	defer x.factsMu.Unlock()
	if x.facts == nil {
		x.facts = map[postern.MsgID]parsedFacts{}
	}
	if _, ok := x.facts[p.ID]; ok || len(x.facts) < maxFacts {
		x.facts[p.ID] = f
	}
}

func (x *Index) takeFacts(id postern.MsgID) (parsedFacts, bool) {
	x.factsMu.Lock()
	defer x.factsMu.Unlock()
	f, ok := x.facts[id]
	delete(x.facts, id)
	return f, ok
}

// route asks router for the recipients' routes, on the envelope the parse
// stage routed (its copy in parsed.json) or else the row's.
func route(router Router, m *Message, env *postern.Envelope, p *Parsed) []Assignment {
	if router == nil {
		return nil
	}
	if env == nil {
		env = &postern.Envelope{ID: m.ID, Sender: m.Sender, Identity: m.Identity}
		for _, r := range m.Recipients {
			env.Recipients = append(env.Recipients, postern.Recipient{Addr: r})
		}
	}
	return router(env, p)
}

// writer applies a transaction's changes to rows: each row is read once,
// changed in memory, and written once with its filter keys brought up to
// date.
type writer struct {
	tx    *bolt.Tx
	msgs  *bolt.Bucket
	keys  *bolt.Bucket
	rows  map[postern.MsgID]*row
	order []postern.MsgID
}

type row struct {
	m       *Message // nil: remove
	oldKeys []string
}

func newWriter(tx *bolt.Tx) *writer {
	return &writer{tx: tx, msgs: tx.Bucket(bucketMsgs), keys: tx.Bucket(bucketKeys), rows: map[postern.MsgID]*row{}}
}

// get returns the message's row as this transaction sees it, nil if none.
func (w *writer) get(id postern.MsgID) (*Message, error) {
	if r, ok := w.rows[id]; ok {
		return r.m, nil
	}
	m, err := decodeRow(w.msgs.Get([]byte(id)))
	if err != nil {
		return nil, fmt.Errorf("row %s: %w", id, err)
	}
	r := &row{m: m}
	if m != nil {
		r.oldKeys = m.keys()
	}
	w.rows[id] = r
	w.order = append(w.order, id)
	return m, nil
}

func (w *writer) put(m *Message) {
	if r, ok := w.rows[m.ID]; ok {
		r.m = m
		return
	}
	w.rows[m.ID] = &row{m: m}
	w.order = append(w.order, m.ID)
}

func (w *writer) forget(id postern.MsgID) error {
	if _, err := w.get(id); err != nil {
		return err
	}
	w.rows[id].m = nil
	return nil
}

// flush writes every changed row and its keys.
func (w *writer) flush() error {
	for _, id := range w.order {
		r := w.rows[id]
		var newKeys []string
		if r.m != nil {
			newKeys = r.m.keys()
		}
		for _, k := range r.oldKeys {
			if !slices.Contains(newKeys, k) {
				if err := w.keys.Delete([]byte(k)); err != nil {
					return err
				}
			}
		}
		for _, k := range newKeys {
			if !slices.Contains(r.oldKeys, k) {
				if err := w.keys.Put([]byte(k), []byte{}); err != nil {
					return err
				}
			}
		}
		if r.m == nil {
			if err := w.msgs.Delete([]byte(id)); err != nil {
				return err
			}
			continue
		}
		b, err := json.Marshal(r.m)
		if err != nil {
			return err
		}
		if err := w.msgs.Put([]byte(id), b); err != nil {
			return err
		}
	}
	return nil
}

func decodeRow(b []byte) (*Message, error) {
	if b == nil {
		return nil, nil
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}
