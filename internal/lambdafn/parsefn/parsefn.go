// Package parsefn builds the parse stage from the configuration, for the
// parse function (functions/parse) and the local process alike.
package parsefn

import (
	"context"
	"time"

	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/parse"
	"github.com/postern/postern/internal/route"
)

// Budget is the most one parse job takes: a GET of the raw message, the
// parse, the PUTs of parsed.json and the attachments, and one send per
// route. Nothing in it waits on another party's timeout, so it is fixed.
const Budget = 20 * time.Second

// New builds the parse stage over table (the route table the gateway
// checks recipients against too).
func New(d *lambdafn.Deps, table *route.Table) *parse.Handler {
	q := d.Queues
	return parse.New(parse.Config{InlineAttachmentMax: d.Config.Delivery.InlineAttachmentBytes}, d.Store, table,
		parse.Outbox{Webhook: q[lambdafn.QueueWebhook], Relay: q[lambdafn.QueueRelay], DSN: q[lambdafn.QueueDSN]}, d.Log)
}

// Build is the parse function's lambdafn.Build.
func Build(_ context.Context, d *lambdafn.Deps) (lambdafn.Stage, error) {
	table, err := lambdafn.RouteTable(d.Config)
	if err != nil {
		return lambdafn.Stage{}, err
	}
	return lambdafn.Stage{Handler: New(d, table), Budget: func([]byte) time.Duration { return Budget }}, nil
}
