package ingest

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/spool"
)

// An envelope too large for one spool frame (hostile recipient lists beyond
// RFC sizes) is refused before 250 with an error the gateway answers 451,
// and the next message is accepted.
func TestSpooledRefusesAnEnvelopeTooLargeForAFrame(t *testing.T) {
	t.Parallel()
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	in := NewSpooled(sp, slog.New(slog.DiscardHandler))
	env := &postern.Envelope{ID: postern.NewMsgID(), Sender: "a@lan", ReceivedAt: time.Now()}
	long := strings.Repeat("x", 2000) + "@example.com"
	for range 1000 {
		env.Recipients = append(env.Recipients, postern.Recipient{Addr: long, ORCPT: "rfc822;" + long})
	}
	err = in.Accept(context.Background(), env, strings.NewReader("Subject: x\r\n\r\nx\r\n"))
	if !errors.Is(err, spool.ErrTooLarge) {
		t.Fatalf("Accept = %v, want spool.ErrTooLarge", err)
	}
	ok := &postern.Envelope{ID: postern.NewMsgID(), Sender: "a@lan", Recipients: []postern.Recipient{{Addr: "b@app.test"}}, ReceivedAt: time.Now()}
	if err := in.Accept(context.Background(), ok, strings.NewReader("Subject: y\r\n\r\ny\r\n")); err != nil {
		t.Fatalf("the next message: %v", err)
	}
}
