package fsqueue

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/postern/postern/internal/queue"
)

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	in := record{
		sentAt:       time.Unix(1700000000, 123456789),
		visibleAt:    time.Unix(1700000030, 5),
		receiveCount: 7,
		token:        [tokenLen]byte{1, 2, 3, 4, 5, 6, 7, 8},
		body:         []byte("\x00body\xff"),
	}
	out, err := decodeRecord(in.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !out.sentAt.Equal(in.sentAt) || !out.visibleAt.Equal(in.visibleAt) ||
		out.receiveCount != in.receiveCount || out.token != in.token || !bytes.Equal(out.body, in.body) {
		t.Errorf("decode(encode(%+v)) = %+v", in, out)
	}
	if _, err := decodeRecord([]byte{recordVersion, 0}); err == nil {
		t.Error("short record decoded")
	}
	bad := in.encode()
	bad[0] = 99
	if _, err := decodeRecord(bad); err == nil {
		t.Error("record of unknown version decoded")
	}
}

// TestReadyKeyOrder: the index sorts by visible time, so Receive can stop
// at the first key after now.
func TestReadyKeyOrder(t *testing.T) {
	t.Parallel()
	base := time.Unix(1700000000, 0)
	hi := ulid.ULID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	early := readyKey(base, hi)
	late := readyKey(base.Add(time.Nanosecond), ulid.ULID{})
	if bytes.Compare(early, late) >= 0 {
		t.Error("a key visible earlier does not sort first")
	}
	at, id, err := splitReadyKey(early)
	if err != nil || !at.Equal(base) || id != hi {
		t.Errorf("splitReadyKey = %s, %s, %v", at, id, err)
	}
}

func TestParseReceipt(t *testing.T) {
	t.Parallel()
	id := ulid.Make()
	tok := [tokenLen]byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3}
	gotID, gotTok, err := parseReceipt(receipt(id, tok))
	if err != nil || gotID != id || gotTok != tok {
		t.Fatalf("parseReceipt(receipt(...)) = %s, %x, %v", gotID, gotTok, err)
	}
	for _, s := range []string{"", ".", id.String(), id.String() + ".", id.String() + ".zz00000000000000",
		"x" + id.String()[1:] + ".0000000000000000", id.String() + ".00000000000000000"} {
		if _, _, err := parseReceipt(s); !errors.Is(err, queue.ErrInvalidReceipt) {
			t.Errorf("parseReceipt(%q) = %v, want ErrInvalidReceipt", s, err)
		}
	}
}

// FuzzDecode: neither parser panics on any input, and an accepted receipt
// prints back to the same id and token.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{recordVersion}, "01J00000000000000000000000.0000000000000000")
	f.Add((&record{body: []byte("x")}).encode(), "garbage")
	f.Fuzz(func(t *testing.T, rec []byte, rcpt string) {
		_, _ = decodeRecord(rec)
		id, tok, err := parseReceipt(rcpt)
		if err != nil {
			return
		}
		id2, tok2, err := parseReceipt(receipt(id, tok))
		if err != nil || id2 != id || tok2 != tok {
			t.Errorf("receipt %q reparsed as %s %x %v", rcpt, id2, tok2, err)
		}
	})
}
