package msgindex

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/postern/postern/internal/postern"
)

// Query selects messages, newest first. Every field set must match.
type Query struct {
	// Text matches when the id, the envelope sender, a recipient, the
	// subject or the identity contains it (case-insensitive).
	Text string
	// From and Rcpt match an envelope address (case-insensitive, angle
	// brackets optional), "@domain" any address at that domain, "<>" the
	// null sender.
	From, Rcpt string
	// Subject matches when the subject contains it (case-insensitive).
	Subject string
	// Identity, Route and Status match exactly; Route any of the
	// message's routes, Status the message's (see Statuses).
	Identity, Route, Status string
	// Since and Until bound the receive time: Since <= t < Until, t being
	// the time in the message id (to the millisecond). Zero: unbounded.
	Since, Until time.Time
	// Limit is the page size: default DefaultLimit, at most MaxLimit.
	Limit int
	// Cursor continues a listing: a Page's Next.
	Cursor string
}

// Page sizes, and how many rows one List looks at before it returns a
// shorter page (with Next set) rather than keep a reader busy.
const (
	DefaultLimit = 50
	MaxLimit     = 500
	MaxScan      = 20000
)

// Page is one page of a listing.
type Page struct {
	Messages []Message `json:"messages"`
	// Next continues the listing (Query.Cursor) when there may be more;
	// a page can hold fewer than Limit messages and still have a Next,
	// when its search looked at MaxScan rows (Options.MaxScan).
	Next string `json:"next_cursor,omitempty"`
}

// Validate checks a query's values, for a 400 with the reason.
func (q *Query) Validate() error {
	if q.Status != "" && !slices.Contains(Statuses, q.Status) {
		return fmt.Errorf("status %q: want one of %s", q.Status, strings.Join(Statuses, ", "))
	}
	if q.Cursor != "" {
		if _, err := postern.ParseMsgID(q.Cursor); err != nil {
			return fmt.Errorf("cursor: %w", err)
		}
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return fmt.Errorf("limit %d: want 1 to %d", q.Limit, MaxLimit)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return fmt.Errorf("since %s is not before until %s", q.Since.Format(time.RFC3339), q.Until.Format(time.RFC3339))
	}
	return nil
}

// List returns the page of messages q selects, newest first. A filter on
// a recipient, sender, identity, route or status walks that value's keys
// only; the subject and free text are matched on the rows walked.
func (x *Index) List(q Query) (Page, error) {
	if err := q.Validate(); err != nil {
		return Page{}, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	// Ids are walked from upper (exclusive) down to lower (inclusive).
	var upper, lower []byte
	if !q.Until.IsZero() {
		upper = idAt(q.Until)
	}
	if q.Cursor != "" && (upper == nil || q.Cursor < string(upper)) {
		upper = []byte(q.Cursor)
	}
	if !q.Since.IsZero() {
		lower = idAt(q.Since)
	}
	var prefix []byte
	for _, f := range []struct {
		field byte
		v     string
	}{{fieldRcpt, q.Rcpt}, {fieldFrom, q.From}, {fieldIdentity, q.Identity}, {fieldRoute, q.Route}, {fieldStatus, q.Status}} {
		if f.v == "" {
			continue
		}
		v := f.v
		if f.field == fieldRcpt || f.field == fieldFrom {
			v = normAddr(v)
		}
		prefix = append(append([]byte{f.field}, v...), 0)
		break
	}
	page := Page{Messages: []Message{}}
	err := x.db.View(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bucketMsgs)
		var c *bolt.Cursor
		if prefix != nil {
			c = tx.Bucket(bucketKeys).Cursor()
		} else {
			c = msgs.Cursor()
		}
		// Start at the last key below prefix+upper, or the last of
		// prefix's keys, or the last of all.
		var k []byte
		switch {
		case upper != nil:
			k, _ = c.Seek(append(slices.Clone(prefix), upper...))
		case prefix != nil:
			k, _ = c.Seek(append(slices.Clone(prefix[:len(prefix)-1]), 1)) // the first key past the value's
		}
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		scanned, last := 0, ""
		for ; k != nil; k, _ = c.Prev() {
			if !bytes.HasPrefix(k, prefix) {
				break
			}
			id := k[len(prefix):]
			if lower != nil && bytes.Compare(id, lower) < 0 {
				break
			}
			if scanned == x.opts.MaxScan {
				// Everything from last up has been looked at.
				page.Next = last
				return nil
			}
			scanned++
			last = string(id)
			m, err := decodeRow(msgs.Get(id))
			if err != nil {
				return fmt.Errorf("row %s: %w", id, err)
			}
			if m == nil || !q.matches(m) {
				continue
			}
			page.Messages = append(page.Messages, *m)
			if len(page.Messages) == limit {
				page.Next = string(m.ID)
				return nil
			}
		}
		return nil
	})
	return page, err
}

// Get returns a message's row; ok is false when the index has none.
func (x *Index) Get(id postern.MsgID) (m *Message, ok bool, err error) {
	err = x.db.View(func(tx *bolt.Tx) error {
		m, err = decodeRow(tx.Bucket(bucketMsgs).Get([]byte(id)))
		return err
	})
	return m, m != nil, err
}

// idAt is the smallest id minted at t: every id minted earlier sorts
// below it.
func idAt(t time.Time) []byte {
	var u ulid.ULID
	if err := u.SetTime(ulid.Timestamp(t)); err != nil {
		if t.Before(time.Unix(0, 0)) {
			return []byte(ulid.ULID{}.String())
		}
		return []byte("8" + strings.Repeat("0", ulid.EncodedSize-1)) // past the largest timestamp
	}
	return []byte(u.String())
}

func (q *Query) matches(m *Message) bool {
	if q.From != "" && !slices.Contains(addrKeys(m.Sender), normAddr(q.From)) {
		return false
	}
	if q.Rcpt != "" {
		want := normAddr(q.Rcpt)
		if !slices.ContainsFunc(m.Recipients, func(r string) bool { return slices.Contains(addrKeys(r), want) }) {
			return false
		}
	}
	if q.Identity != "" && m.Identity != q.Identity {
		return false
	}
	if q.Route != "" && !slices.ContainsFunc(m.Routes, func(r Route) bool { return r.Name == q.Route }) {
		return false
	}
	if q.Status != "" && m.Status != q.Status {
		return false
	}
	if q.Subject != "" && !containsFold(m.Subject, q.Subject) {
		return false
	}
	if q.Text != "" {
		t := q.Text
		if !containsFold(string(m.ID), t) && !containsFold(m.Sender, t) && !containsFold(m.Subject, t) && !containsFold(m.Identity, t) &&
			!slices.ContainsFunc(m.Recipients, func(r string) bool { return containsFold(r, t) }) {
			return false
		}
	}
	return true
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
