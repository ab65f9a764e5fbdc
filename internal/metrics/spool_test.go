package metrics

import (
	"strings"
	"testing"
	"time"
)

func TestSpoolMetrics(t *testing.T) {
	t.Parallel()
	m := New()
	m.Spool(func() SpoolStats {
		return SpoolStats{BacklogMessages: 4, BacklogBytes: 8192, OldestUnmoved: 1500 * time.Millisecond, MoverFailures: 3, Quarantined: 1}
	})
	out := scrape(t, m)
	for _, want := range []string{
		"postern_spool_backlog_messages 4",
		"postern_spool_backlog_bytes 8192",
		"postern_spool_oldest_unmoved_seconds 1.5",
		"# TYPE postern_spool_mover_failures_total counter",
		"postern_spool_mover_failures_total 3",
		"# TYPE postern_quarantined_total counter",
		"postern_quarantined_total 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}
