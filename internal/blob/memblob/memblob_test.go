package memblob_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/memblob"
)

func TestInjectedFailuresAndInspection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := memblob.New()
	boom := errors.New("disk on fire")
	s.Err = func(op, key string) error {
		if op == "put" && strings.HasSuffix(key, ".bad") {
			return boom
		}
		return nil
	}
	if err := s.Put(ctx, "a.bad", strings.NewReader("x"), nil); !errors.Is(err, boom) {
		t.Fatalf("injected error not returned: %v", err)
	}
	if err := s.Put(ctx, "a.json", strings.NewReader("{}"), &blob.PutOptions{ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	if b, ok := s.Bytes("a.json"); !ok || string(b) != "{}" || s.ContentType("a.json") != "application/json" {
		t.Fatalf("inspection: %q %v %q", b, ok, s.ContentType("a.json"))
	}
	if keys := s.Keys(); len(keys) != 1 || keys[0] != "a.json" {
		t.Fatalf("keys %v", keys)
	}
}
