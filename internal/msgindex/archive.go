package msgindex

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// LoadParsed reads what the index takes from a message's parsed form, and
// the envelope copy the form keeps (nil in forms written before it did). A
// message not parsed yet gives an error wrapping blob.ErrNotFound.
func LoadParsed(ctx context.Context, st blob.Store, id postern.MsgID) (*Parsed, *postern.Envelope, error) {
	rc, err := st.Get(ctx, id.ParsedKey())
	if err != nil {
		return nil, nil, fmt.Errorf("message %s: parsed form: %w", id, err)
	}
	defer rc.Close()
	// Only these fields: the bodies and attachment contents are skipped.
	var p struct {
		Envelope    *postern.Envelope `json:"envelope"`
		Headers     []postern.Header  `json:"headers"`
		Subject     string            `json:"subject"`
		Attachments []struct{}        `json:"attachments"`
		Auth        *postern.Auth     `json:"auth"`
		AuthResults string            `json:"auth_results"`
	}
	if err := json.NewDecoder(rc).Decode(&p); err != nil {
		return nil, nil, fmt.Errorf("message %s: parsed form: %w", id, err)
	}
	return &Parsed{Subject: p.Subject, Attachments: len(p.Attachments), Headers: p.Headers, Auth: p.Auth, AuthResults: p.AuthResults}, p.Envelope, nil
}

// Build makes a message's row from its envelope and its trace events (in
// any order), reading its parsed form from st for the parse stage's done
// event: the row the live index holds once it has been told the same
// events.
func Build(ctx context.Context, st blob.Store, env *postern.Envelope, evs []trace.Event, router Router) (*Message, error) {
	m := newMessage(env)
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b trace.Event) int { return a.Time.Compare(b.Time) })
	var (
		p    *Parsed
		as   []Assignment
		read bool
		err  error
	)
	parsed := func() (*Parsed, []Assignment) {
		if !read {
			read = true
			var penv *postern.Envelope
			p, penv, err = LoadParsed(ctx, st, env.ID)
			if errors.Is(err, blob.ErrNotFound) {
				err = nil
			}
			if p != nil {
				as = route(router, m, penv, p)
			}
		}
		return p, as
	}
	for _, ev := range evs {
		m.apply(ev, parsed)
	}
	return m, err
}

// Load builds a message's row from the store: its envelope, parsed form
// and trace events (of the parse and dsn stages and of each of routes). It
// returns the timeline (trace.Read) and the envelope too. A message not in
// the store gives an error wrapping blob.ErrNotFound.
func Load(ctx context.Context, st blob.Store, id postern.MsgID, routes []string, router Router) (*Message, []trace.Event, *postern.Envelope, error) {
	env, err := trace.LoadEnvelope(ctx, st, id)
	if err != nil {
		return nil, nil, nil, err
	}
	evs, err := trace.Read(ctx, st, id, routes)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := Build(ctx, st, env, evs, router)
	if err != nil {
		return nil, nil, nil, err
	}
	return m, evs, env, nil
}

// Archive is the local store as a rebuild reads it: objects, and the
// directory that holds them, to find every message.
type Archive interface {
	blob.Store
	Path(key string) (string, error)
}

// Report is what a rebuild did.
type Report struct {
	Messages int           `json:"messages"` // rows written
	Skipped  int           `json:"skipped"`  // directories with no envelope (a message being removed, or not a message)
	Took     time.Duration `json:"took"`
}

// rebuildBatch is how many rows one transaction of a rebuild writes.
const rebuildBatch = 500

// Rebuild replaces every row with one built from the store (Load) for each
// message in it, routes naming the configured routes (those a message's
// trace files name are added). It must run while nothing feeds the index:
// updates sent meanwhile could be overwritten. `gateway reindex` opens the
// index itself, which a running gateway's lock refuses. The index is
// marked incomplete until the rebuild has finished.
func (x *Index) Rebuild(ctx context.Context, st Archive, routes []string) (Report, error) {
	start := time.Now()
	var rep Report
	const reason = "a rebuild (gateway reindex) was cut short; run it again"
	err := x.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMsgs, bucketKeys} {
			if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(metaIncomplete, []byte(reason))
	})
	if err != nil {
		return rep, fmt.Errorf("message index: rebuild: %w", err)
	}
	x.stateMu.Lock()
	x.incomplete, x.pending = reason, ""
	x.stateMu.Unlock()

	var rows []*Message
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		err := x.db.Update(func(tx *bolt.Tx) error {
			w := newWriter(tx)
			for _, m := range rows {
				w.put(m)
			}
			return w.flush()
		})
		rows = rows[:0]
		return err
	}
	err = eachMessage(st, func(id postern.MsgID, dir string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, _, _, err := Load(ctx, st, id, routesIn(dir, routes), x.opts.Router)
		if errors.Is(err, blob.ErrNotFound) {
			rep.Skipped++
			return nil
		}
		if err != nil {
			return err
		}
		rows = append(rows, m)
		rep.Messages++
		if len(rows) >= rebuildBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return rep, fmt.Errorf("message index: rebuild: %w", err)
	}
	if err := x.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaIncomplete) }); err != nil {
		return rep, fmt.Errorf("message index: rebuild: %w", err)
	}
	x.stateMu.Lock()
	x.incomplete = ""
	x.stateMu.Unlock()
	rep.Took = time.Since(start)
	return rep, nil
}

// eachMessage calls fn for every message directory in the store,
// m/<shard>/<id>/ (postern.MsgID.Prefix).
func eachMessage(st Archive, fn func(id postern.MsgID, dir string) error) error {
	root, err := st.Path("m")
	if err != nil {
		return err
	}
	shards, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, shard := range shards {
		if !shard.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, shard.Name()))
		if err != nil {
			return err
		}
		for _, e := range ents {
			u, err := ulid.ParseStrict(e.Name())
			if !e.IsDir() || err != nil || u.String() != e.Name() {
				continue
			}
			if err := fn(postern.MsgID(e.Name()), filepath.Join(root, shard.Name(), e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// routesIn adds to routes those the message's trace files name
// (trace/webhook-<route>.jsonl, trace/relay-<route>.jsonl): routes since
// renamed or removed from the configuration.
func routesIn(dir string, routes []string) []string {
	out := slices.Clone(routes)
	ents, _ := os.ReadDir(filepath.Join(dir, "trace"))
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".jsonl")
		if !ok {
			continue
		}
		stage, r, ok := strings.Cut(name, "-")
		if ok && (stage == "webhook" || stage == "relay") && r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// Unclean reports whether the last process to have the index open did not
// close it (killed, crashed): the updates it had queued are lost until
// Repair or Rebuild.
func (x *Index) Unclean() bool { return x.unclean }

// repairMargin is how long before the last batch was taken Repair looks
// for messages whose updates may be lost.
const repairMargin = time.Minute

// errRepairTooBig stops a repair that would read more than its limit.
var errRepairTooBig = errors.New("more messages to repair than the limit")

// Repair brings an index the last process left open (Unclean) back in line
// with the store as far as its lost updates can reach: it rebuilds (Load)
// the row of every message received since a minute before the last batch
// was taken, and of every message still pending or dead-lettered (a
// redrive may have moved it on), at most limit of them; a message gone
// from the store loses its row. The index is then complete
// again, unless it was incomplete for another reason. With more than limit
// messages to read, or no record of the last batch, it changes nothing and
// the index stays incomplete (gateway reindex). Like Rebuild it must run
// before anything feeds the index: the gateway runs it while it starts,
// before it takes mail or runs a stage.
func (x *Index) Repair(ctx context.Context, st Archive, routes []string, limit int) (int, error) {
	if !x.unclean {
		return 0, nil
	}
	if x.lastWrite.IsZero() {
		return 0, errors.New("message index: repair: no record of the last batch")
	}
	dirs := map[postern.MsgID]string{} // "" until known
	err := x.db.View(func(tx *bolt.Tx) error {
		// Not settled, or waiting for a redrive: later events may be lost.
		for _, status := range []string{StatusPending, StatusDeadLettered} {
			prefix := append(append([]byte{fieldStatus}, status...), 0)
			c := tx.Bucket(bucketKeys).Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				dirs[postern.MsgID(k[len(prefix):])] = ""
				if len(dirs) > limit {
					return errRepairTooBig
				}
			}
		}
		return nil
	})
	if err == nil {
		since := string(idAt(x.lastWrite.Add(-repairMargin)))
		err = eachMessage(st, func(id postern.MsgID, dir string) error {
			if string(id) >= since {
				dirs[id] = dir
			}
			if len(dirs) > limit {
				return errRepairTooBig
			}
			return ctx.Err()
		})
	}
	if err != nil {
		return 0, fmt.Errorf("message index: repair: %w", err)
	}
	var rows []*Message
	var gone []postern.MsgID
	for id, dir := range dirs {
		if dir == "" {
			if dir, err = st.Path(strings.TrimSuffix(id.Prefix(), "/")); err != nil {
				return 0, fmt.Errorf("message index: repair: %w", err)
			}
		}
		m, _, _, err := Load(ctx, st, id, routesIn(dir, routes), x.opts.Router)
		switch {
		case errors.Is(err, blob.ErrNotFound):
			gone = append(gone, id)
		case err != nil:
			return 0, fmt.Errorf("message index: repair %s: %w", id, err)
		default:
			rows = append(rows, m)
		}
	}
	x.stateMu.Lock()
	clean := x.incomplete == uncleanReason // else incomplete for another reason too
	x.stateMu.Unlock()
	err = x.db.Update(func(tx *bolt.Tx) error {
		w := newWriter(tx)
		for _, m := range rows {
			if _, err := w.get(m.ID); err != nil { // its old keys, to replace
				return err
			}
			w.put(m)
		}
		for _, id := range gone {
			if err := w.forget(id); err != nil {
				return err
			}
		}
		if err := w.flush(); err != nil {
			return err
		}
		if clean {
			return tx.Bucket(bucketMeta).Delete(metaIncomplete)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("message index: repair: %w", err)
	}
	if clean {
		x.stateMu.Lock()
		x.incomplete = ""
		x.stateMu.Unlock()
	}
	x.unclean = false
	return len(rows) + len(gone), nil
}
