package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/postern/postern/internal/app"
)

// reindexCmd rebuilds the message index from the store, with the gateway
// stopped (see app.Reindex).
func reindexCmd(ctx context.Context, e Env) int {
	cfg, fs, code := opsFlags(e, "reindex", "Usage: gateway reindex [-config FILE]\n\nRebuilds the message index (data_dir/"+app.IndexFile+") that the admin API searches, from the stored messages: envelopes, parsed forms and traces. Stop the gateway first: it holds the index while it runs.", nil)
	if cfg == nil {
		return max(code, 0)
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	rep, err := app.Reindex(ctx, cfg, quietLog())
	if err != nil {
		fmt.Fprintln(e.Stderr, "reindex:", err)
		return 1
	}
	fmt.Fprintf(e.Stdout, "indexed %d message(s) in %s", rep.Messages, rep.Took.Round(time.Millisecond))
	if rep.Skipped > 0 {
		fmt.Fprintf(e.Stdout, "; skipped %d director(ies) without an envelope", rep.Skipped)
	}
	fmt.Fprintln(e.Stdout)
	return 0
}
