package postern

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	if IsPermanent(base) || !IsPermanent(fmt.Errorf("wrapped: %w", Permanent(base))) {
		t.Fatal("permanent marking does not survive wrapping, or an unmarked error counts as permanent")
	}
	if d, ok := RetryDelay(fmt.Errorf("x: %w", RetryAfter(base, 7*time.Second))); !ok || d != 7*time.Second {
		t.Fatalf("RetryDelay = %v, %v", d, ok)
	}
	if !errors.Is(RetryAfter(base, time.Second), base) || !errors.Is(Permanent(base), base) {
		t.Fatal("marked errors do not unwrap to the cause")
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	for attempt, bound := range map[int]time.Duration{1: time.Second, 3: 4 * time.Second, 50: 8 * time.Second} {
		for range 100 {
			if d := Backoff(attempt, time.Second, 8*time.Second); d < 0 || d > bound {
				t.Fatalf("attempt %d: %v outside [0, %v]", attempt, d, bound)
			}
		}
	}
}

func TestKeysDeriveFromID(t *testing.T) {
	t.Parallel()
	id := NewMsgID()
	if _, err := ParseMsgID(string(id)); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseMsgID("../../etc"); err == nil {
		t.Fatal("a non-ULID was accepted as a message id")
	}
	if id.RawKey() != id.Prefix()+"raw.eml" || id.AttachmentKey(2) != id.Prefix()+"att/002" {
		t.Fatalf("keys %s %s", id.RawKey(), id.AttachmentKey(2))
	}
}
