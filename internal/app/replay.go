package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/route"
	"github.com/postern/postern/internal/trace"
)

// Kinds of replay refusal the operator can act on (the admin API answers
// them with 400 and 409; replayStatus is the table).
var (
	errNoSuchRoute        = errors.New("no such route")
	errRouteNotForMessage = errors.New("route does not take this message")
)

// refusal is a replay refused for a reason of kind; its text is the whole
// explanation, for the operator.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.kind }

func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// replay re-enqueues a stored message: to the inbound queue (parsed and
// routed again), or straight to one route. Deliveries keep their webhook-id
// (message id and route), so an application that de-duplicates sees a
// replay as what it is. Safe to repeat.
//
// A route is taken only for the recipients the parse stage would give it:
// the route table's first match on each recipient, sender, identity and
// (where rules look at headers) the stored message's header. A route none
// of them match is refused, so a replay never hands a message (signed, to
// a webhook) to an application it was not addressed to. maxHeader is
// limits.max_header_bytes, the most header the gateway accepts.
func replay(ctx context.Context, be *backend, table *route.Table, maxHeader int64, id postern.MsgID, routeName string) (string, error) {
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
		return "", refuse(errNoSuchRoute, "no route named %q in the configuration; the routes are %s", routeName, strings.Join(table.Names(), ", "))
	}
	if rule.Target.Kind == route.KindReject {
		return "", refuse(errRouteNotForMessage, "route %s rejects mail; nothing to replay to", routeName)
	}
	var header func(string) []string
	if table.HasHeaderRules() {
		if header, err = storedHeader(ctx, be.store, id, maxHeader); err != nil {
			return "", err
		}
	}
	verdicts, authResults, err := storedAuth(ctx, be.store, id)
	if err != nil {
		return "", err
	}
	var rcpts []string
	for _, r := range env.Recipients {
		if m, ok := table.Match(route.Meta{Recipient: r.Addr, Sender: env.Sender, Identity: env.Identity, Header: header, Auth: verdicts}); ok && m.Name == routeName {
			rcpts = append(rcpts, r.Addr)
		}
	}
	if len(rcpts) == 0 {
		return "", refuse(errRouteNotForMessage, "route %s matches none of message %s's %d recipient(s); replay without a route to route it as the parse stage does",
			routeName, id, len(env.Recipients))
	}
	now := time.Now().UTC()
	var (
		body []byte
		q    string
	)
	switch rule.Target.Kind {
	case route.KindWebhook, route.KindDirectory:
		body, _ = json.Marshal(postern.WebhookJob{V: postern.JobVersion, ID: id, Route: routeName, Recipients: rcpts, Envelope: env, Created: now, AuthResults: authResults})
		q = QueueWebhook
	case route.KindRelay:
		body, _ = json.Marshal(postern.RelayJob{V: postern.JobVersion, ID: id, Route: routeName, Recipients: rcpts, Envelope: env, Created: now, AuthResults: authResults})
		q = QueueRelay
	default:
		return "", fmt.Errorf("route %s: target kind %q cannot be replayed to", routeName, rule.Target.Kind)
	}
	if _, err := be.queues[q].Send(ctx, body, 0); err != nil {
		return "", err
	}
	return fmt.Sprintf("queued for route %s (%d recipient(s))", routeName, len(rcpts)), nil
}

// storedHeader reads the stored message's header the way the parse stage
// sees it (route.HeaderLookup answers as the parsed form's headers do).
func storedHeader(ctx context.Context, st blob.Store, id postern.MsgID, maxHeader int64) (func(string) []string, error) {
	rc, err := st.Get(ctx, id.RawKey())
	if err != nil {
		return nil, fmt.Errorf("message %s: raw message: %w", id, err)
	}
	defer rc.Close()
	// The gateway's own Received field comes on top of what the client
	// sent, so allow some room above the limit.
	limit := maxHeader + 64<<10
	raw, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("message %s: raw message: %w", id, err)
	}
	lookup, err := route.HeaderLookup(raw)
	if errors.Is(err, route.ErrHeaderIncomplete) && int64(len(raw)) <= limit {
		// The whole message and no empty line: all header, as the parse
		// stage reads it.
		lookup, err = route.HeaderLookup(append(raw, "\r\n\r\n"...))
	}
	if err != nil {
		return nil, fmt.Errorf("message %s: header longer than %d bytes, so its header routes cannot be checked: %w", id, limit, err)
	}
	return lookup, nil
}
