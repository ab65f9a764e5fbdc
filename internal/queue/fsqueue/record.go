package fsqueue

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/postern/postern/internal/queue"
)

// recordVersion is the first byte of every stored record, so a later layout
// can be told apart from this one.
const recordVersion = 1

// headerLen is the fixed part of a record before the body: version, sent
// time, visible time, receive count and receipt token.
const headerLen = 1 + 8 + 8 + 4 + tokenLen

// tokenLen is the size of the random part of a receipt.
const tokenLen = 8

// readyKeyLen is the size of a key in the ready index: visible time, then id.
const readyKeyLen = 8 + 16

// Values of the ready index say why a message that is not yet visible is
// hidden, so Stats can count without reading records.
const (
	stateWaiting  byte = 0 // never received: hidden only by its delay
	stateInFlight byte = 1 // received and not yet deleted
)

// record is one stored message.
type record struct {
	sentAt       time.Time
	visibleAt    time.Time
	receiveCount uint32
	token        [tokenLen]byte // changes on every receive; zero before the first
	body         []byte
}

func (r *record) encode() []byte {
	b := make([]byte, headerLen+len(r.body))
	b[0] = recordVersion
	binary.BigEndian.PutUint64(b[1:9], unixNanos(r.sentAt))
	binary.BigEndian.PutUint64(b[9:17], unixNanos(r.visibleAt))
	binary.BigEndian.PutUint32(b[17:21], r.receiveCount)
	copy(b[21:headerLen], r.token[:])
	copy(b[headerLen:], r.body)
	return b
}

// decodeRecord parses a stored record. The body is copied, because bbolt's
// values are only valid inside their transaction.
func decodeRecord(b []byte) (record, error) {
	if len(b) < headerLen {
		return record{}, fmt.Errorf("record of %d bytes is shorter than its header", len(b))
	}
	if b[0] != recordVersion {
		return record{}, fmt.Errorf("record version %d is not %d", b[0], recordVersion)
	}
	r := record{
		sentAt:       fromNanos(binary.BigEndian.Uint64(b[1:9])),
		visibleAt:    fromNanos(binary.BigEndian.Uint64(b[9:17])),
		receiveCount: binary.BigEndian.Uint32(b[17:21]),
		body:         append([]byte{}, b[headerLen:]...),
	}
	copy(r.token[:], b[21:headerLen])
	return r, nil
}

// readyKey is the index key of a message visible at t.
func readyKey(t time.Time, id ulid.ULID) []byte {
	k := make([]byte, readyKeyLen)
	binary.BigEndian.PutUint64(k[:8], unixNanos(t))
	copy(k[8:], id[:])
	return k
}

// splitReadyKey is the inverse of readyKey.
func splitReadyKey(k []byte) (time.Time, ulid.ULID, error) {
	var id ulid.ULID
	if len(k) != readyKeyLen {
		return time.Time{}, id, fmt.Errorf("ready key of %d bytes, want %d", len(k), readyKeyLen)
	}
	copy(id[:], k[8:])
	return fromNanos(binary.BigEndian.Uint64(k[:8])), id, nil
}

// unixNanos clamps times before 1970 to zero so they sort first.
func unixNanos(t time.Time) uint64 {
	n := t.UnixNano()
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func fromNanos(n uint64) time.Time { return time.Unix(0, int64(n)) }

// receipt names one receive of a message: its id and the token minted for
// that receive, so a receipt from an earlier receive no longer matches.
func receipt(id ulid.ULID, token [tokenLen]byte) string {
	return id.String() + "." + hex.EncodeToString(token[:])
}

// parseReceipt splits a receipt made by receipt. Errors wrap
// queue.ErrInvalidReceipt.
func parseReceipt(s string) (ulid.ULID, [tokenLen]byte, error) {
	var token [tokenLen]byte
	idPart, tokPart, ok := strings.Cut(s, ".")
	if !ok || len(tokPart) != 2*tokenLen {
		return ulid.ULID{}, token, fmt.Errorf("malformed receipt: %w", queue.ErrInvalidReceipt)
	}
	id, err := ulid.ParseStrict(idPart)
	if err != nil {
		return ulid.ULID{}, token, fmt.Errorf("receipt id: %w", errors.Join(queue.ErrInvalidReceipt, err))
	}
	if _, err := hex.Decode(token[:], []byte(tokPart)); err != nil {
		return ulid.ULID{}, token, fmt.Errorf("receipt token: %w", errors.Join(queue.ErrInvalidReceipt, err))
	}
	return id, token, nil
}
