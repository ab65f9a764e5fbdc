package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/route"
	"github.com/postern/postern/internal/trace"
)

// replay re-enqueues a stored message: to the inbound queue (parsed and
// routed again), or straight to one route. Deliveries keep their webhook-id
// (message id and route), so an application that de-duplicates sees a
// replay as what it is. Safe to repeat.
func replay(ctx context.Context, be *backend, table *route.Table, id postern.MsgID, routeName string) (string, error) {
	// envelope.json, or on AWS (where the gateway writes none) the copy in
	// parsed.json: a message never parsed has its envelope only in the
	// dead-lettered ParseJob, which a redrive replays instead.
	e, err := trace.LoadEnvelope(ctx, be.store, id)
	if err != nil {
		return "", err
	}
	env := *e
	if routeName == "" {
		body, _ := json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: id, Envelope: env})
		if _, err := be.queues[QueueInbound].Send(ctx, body, 0); err != nil {
			return "", err
		}
		return "queued for parsing and routing", nil
	}
	rule, ok := table.Rule(routeName)
	if !ok {
		return "", fmt.Errorf("no route named %q in the configuration", routeName)
	}
	var rcpts []string
	for _, r := range env.Recipients {
		if m, ok := table.Match(route.Meta{Recipient: r.Addr, Sender: env.Sender, Identity: env.Identity}); ok && m.Name == routeName {
			rcpts = append(rcpts, r.Addr)
		}
	}
	if len(rcpts) == 0 {
		// Routes chosen by header conditions do not match without the
		// headers: replaying to such a route goes to every recipient.
		rcpts = env.RecipientAddrs()
	}
	now := time.Now().UTC()
	var (
		body []byte
		q    string
	)
	switch rule.Target.Kind {
	case route.KindWebhook, route.KindDirectory:
		body, _ = json.Marshal(postern.WebhookJob{V: postern.JobVersion, ID: id, Route: routeName, Recipients: rcpts, Envelope: env, Created: now})
		q = QueueWebhook
	case route.KindRelay:
		body, _ = json.Marshal(postern.RelayJob{V: postern.JobVersion, ID: id, Route: routeName, Recipients: rcpts, Envelope: env, Created: now})
		q = QueueRelay
	default:
		return "", errors.New("route " + routeName + " rejects mail; nothing to replay to")
	}
	if _, err := be.queues[q].Send(ctx, body, 0); err != nil {
		return "", err
	}
	return fmt.Sprintf("queued for route %s (%d recipient(s))", routeName, len(rcpts)), nil
}
