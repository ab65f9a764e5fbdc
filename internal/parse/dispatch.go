package parse

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/route"
	"github.com/postern/postern/internal/trace"
)

// DSN status and diagnostic for recipients routing refuses. The gateway
// normally refuses these at RCPT already; they reach here only when a
// header rule decides, or when the table changed in between.
const (
	StatusNoRoute     = "5.1.1"
	DiagnosticNoRoute = "smtp; 550 5.1.1 recipient not routable"
	StatusRejected    = "5.7.1"
	DiagnosticReject  = "smtp; 550 5.7.1 recipient rejected by route"
)

// delivery is one matched route and the recipients it took, in envelope order.
type delivery struct {
	rule  *route.Rule
	rcpts []string
}

// route matches every envelope recipient, then enqueues one job per matched
// route (in order of first recipient) and one DSN job for the rest. parsed
// is p as stored in parsed.json: webhook jobs carry it inline when it is
// small enough, so the webhook stage need not read it back, else where its
// bodies are, so the webhook stage need not scan them.
//
// v decides verdict rules, and its Authentication-Results value goes in
// every webhook and relay job, for the view of the message they send.
func (h *Handler) route(ctx context.Context, log *slog.Logger, pj postern.ParseJob, p *postern.Parsed, parsed stored, v *verdicts) error {
	env := pj.Envelope
	now := h.cfg.Now().UTC()
	lookup := route.FieldLookup(p.Headers) // the values the gateway decides on at the end of DATA (route.HeaderLookup)

	var deliveries []*delivery
	byRoute := map[string]*delivery{}
	var failed []postern.Failure
	for _, rcpt := range env.RecipientAddrs() {
		r, ok := h.table.Match(route.Meta{Recipient: rcpt, Sender: env.Sender, Identity: env.Identity, Header: lookup, Auth: v.route})
		switch {
		case !ok:
			failed = append(failed, postern.Failure{
				Recipient: rcpt, Status: StatusNoRoute, Diagnostic: DiagnosticNoRoute, LastAt: now,
			})
		case r.Target.Kind == route.KindReject:
			failed = append(failed, postern.Failure{
				Recipient: rcpt, Route: r.Name, Status: StatusRejected, Diagnostic: DiagnosticReject, LastAt: now,
			})
		default:
			d := byRoute[r.Name]
			if d == nil {
				d = &delivery{rule: r}
				byRoute[r.Name] = d
				deliveries = append(deliveries, d)
			}
			d.rcpts = append(d.rcpts, rcpt)
		}
	}
	if len(env.Recipients) == 0 {
		log.WarnContext(ctx, "no envelope recipients; nothing to route")
	}

	for _, d := range deliveries {
		var (
			job any
			q   Sender
		)
		switch d.rule.Target.Kind {
		case route.KindWebhook, route.KindDirectory:
			wj := postern.WebhookJob{V: postern.JobVersion, ID: pj.ID, Route: d.rule.Name, Recipients: d.rcpts, Envelope: env, Created: now, AuthResults: v.header}
			if len(parsed.body) <= postern.MaxInlineParsed && !h.cfg.ReferParsed {
				wj.Parsed = parsed.body
			}
			wj.Bodies = parsed.spans
			job = wj
			q = h.out.Webhook
		case route.KindRelay:
			job = postern.RelayJob{V: postern.JobVersion, ID: pj.ID, Route: d.rule.Name, Recipients: d.rcpts, Envelope: env, Created: now, AuthResults: v.header}
			q = h.out.Relay
		default:
			// route.New admits no other kind, so retrying cannot help; fail
			// loudly (dead-letter) rather than drop recipients.
			return postern.Permanent(fmt.Errorf("route %q: unhandled target kind %q", d.rule.Name, d.rule.Target.Kind))
		}
		if err := send(ctx, q, job); err != nil {
			return fmt.Errorf("enqueue %s job for route %q: %w", d.rule.Target.Kind, d.rule.Name, err)
		}
		log.InfoContext(ctx, "routed", "route", d.rule.Name, "target", string(d.rule.Target.Kind), "rcpt_count", len(d.rcpts))
		trace.NoteEvent(ctx, trace.EventRouted, 0, fmt.Sprintf("route %s (%s): %d recipient(s)", d.rule.Name, d.rule.Target.Kind, len(d.rcpts)))
	}

	if len(failed) > 0 {
		job := postern.DSNJob{V: postern.JobVersion, ID: pj.ID, Envelope: env, Failed: failed, Created: now}
		if err := send(ctx, h.out.DSN, job); err != nil {
			return fmt.Errorf("enqueue dsn job: %w", err)
		}
		log.InfoContext(ctx, "routed", "route", "", "target", "dsn", "rcpt_count", len(failed))
		trace.NoteEvent(ctx, trace.EventRouted, 0, fmt.Sprintf("no route or refused: %d recipient(s) to a failure notice", len(failed)))
	}
	return nil
}

func send(ctx context.Context, q Sender, job any) error {
	body, err := encodeJob(job)
	if err != nil {
		return fmt.Errorf("encode job: %w", err)
	}
	if _, err := q.Send(ctx, body, 0); err != nil {
		return err
	}
	return nil
}

// encodeJob is json.Marshal(job), except that a webhook job's parsed form,
// JSON parse wrote itself, goes in as it is, last: Marshal would check and
// compact up to 128 KiB of it byte by byte. Key order means nothing to a
// decoder.
func encodeJob(job any) ([]byte, error) {
	wj, ok := job.(postern.WebhookJob)
	if !ok || len(wj.Parsed) == 0 {
		return json.Marshal(job)
	}
	parsed := wj.Parsed
	wj.Parsed = nil
	b, err := json.Marshal(wj)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+len(`,"parsed":`)+len(parsed))
	out = append(out, b[:len(b)-1]...) // all but the closing brace
	out = append(out, `,"parsed":`...)
	out = append(out, parsed...)
	return append(out, '}'), nil
}
