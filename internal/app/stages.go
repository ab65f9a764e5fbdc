package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dsn/notify"
	"github.com/postern/postern/internal/parse"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/route"
	"github.com/postern/postern/internal/smtpd"
	"github.com/postern/postern/internal/webhook"
	"golang.org/x/time/rate"
)

type stages struct {
	table      *route.Table
	identities []smtpd.Identity
	parse      *parse.Handler
	webhook    *webhook.Handler
	relay      *relay.Handler
	dsn        *notify.Handler
}

// buildStages turns the config into the route table, identities and stage
// handlers. The same function will serve the Lambda mains.
//
// only names the one stage a Lambda function runs ("" builds them all), so
// a function resolves only the secrets its own stage uses.
func buildStages(cfg *config.Config, be *backend, log *slog.Logger, only string) (*stages, error) {
	need := func(stage string) bool { return only == "" || only == stage }
	store, q := be.store, be.queues
	var rules []route.Rule
	targets := map[string]webhook.Target{}
	relays := map[string]relay.Route{}
	for _, r := range cfg.Routes {
		rule := route.Rule{
			Name:       r.Name,
			Recipients: r.Match.Recipients,
			Senders:    r.Match.Senders,
			Identities: r.Match.Identities,
			Headers:    r.Match.Headers,
		}
		switch {
		case r.Webhook != nil:
			rule.Target.Kind = route.KindWebhook
			t := webhook.Target{URL: r.Webhook.URL, Payload: r.Webhook.Payload, Timeout: r.Webhook.Timeout.D(),
				MaxAge: r.Webhook.MaxAge.D(), FailureURL: r.Webhook.FailureURL, AllowPrivate: r.Webhook.AllowPrivate}
			for i, s := range r.Webhook.Secrets {
				if !need("webhook") {
					break
				}
				text, err := config.ResolveSecret(s)
				if err != nil {
					return nil, fmt.Errorf("config: routes %s webhook.secrets[%d]: %w", r.Name, i, err)
				}
				key, err := webhook.ParseSecret(text)
				if err != nil {
					return nil, fmt.Errorf("config: routes %s webhook.secrets[%d]: %w", r.Name, i, err)
				}
				t.Secrets = append(t.Secrets, key)
			}
			targets[r.Name] = t
		case r.Directory != nil:
			rule.Target.Kind = route.KindDirectory
			targets[r.Name] = webhook.Target{Dir: cfg.Path(r.Directory.Path)}
		case r.Relay != nil:
			rule.Target.Kind = route.KindRelay
			if need("relay") {
				t, err := newTransport(context.Background(), cfg, "routes "+r.Name+" relay", r.Relay)
				if err != nil {
					return nil, err
				}
				relays[r.Name] = relay.Route{Transport: t, MaxAge: r.Relay.MaxAge.D(), DelayNotice: r.Relay.DelayNotice.D()}
			}
		case r.Reject:
			rule.Target.Kind = route.KindReject
		}
		rules = append(rules, rule)
	}
	table, err := route.New(rules)
	if err != nil {
		return nil, fmt.Errorf("config: routes: %w", err)
	}

	var ids []smtpd.Identity
	for _, c := range cfg.Identities {
		id := smtpd.Identity{Name: c.Name, AllowPlaintext: c.AllowPlaintext, MaxMessageBytes: c.MaxMessageBytes, MaxRecipients: c.MaxRecipients, Transcript: c.Transcript}
		if c.PasswordHash != "" {
			id.Username = cmp.Or(c.Username, c.Name)
			id.PasswordHash = []byte(c.PasswordHash)
		}
		if c.MessagesPerMinute > 0 {
			// A burst of a minute's allowance: devices send in spurts (a
			// scanner's batch), and the average is what needs bounding.
			id.Limiter = rate.NewLimiter(rate.Limit(float64(c.MessagesPerMinute)/60), c.MessagesPerMinute)
		}
		for _, n := range c.Networks {
			p, err := netip.ParsePrefix(n)
			if err != nil {
				return nil, fmt.Errorf("config: identities %s networks: %w", c.Name, err)
			}
			id.Networks = append(id.Networks, p.Masked())
		}
		if id.AllowSender, err = anyOf(c.AllowedSenders); err != nil {
			return nil, fmt.Errorf("config: identities %s allowed_senders: %w", c.Name, err)
		}
		if id.AllowRecipient, err = anyOf(c.AllowedRecipients); err != nil {
			return nil, fmt.Errorf("config: identities %s allowed_recipients: %w", c.Name, err)
		}
		ids = append(ids, id)
	}

	ph := parse.New(parse.Config{InlineAttachmentMax: cfg.Delivery.InlineAttachmentBytes}, store, table,
		parse.Outbox{Webhook: q[QueueWebhook], Relay: q[QueueRelay], DSN: q[QueueDSN]}, log)
	var opts []webhook.Option
	if be.urls != nil {
		opts = append(opts, webhook.WithURLs(be.urls))
	}
	wh := webhook.New(store, func(name string) (webhook.Target, bool) {
		t, ok := targets[name]
		return t, ok
	}, nil, q[QueueDSN], log, opts...)
	rh := relay.New(store, func(name string) (relay.Route, bool) {
		r, ok := relays[name]
		return r, ok
	}, q[QueueDSN], log)

	st := &stages{table: table, identities: ids, parse: ph, webhook: wh, relay: rh}
	if !need("dsn") {
		return st, nil
	}
	dsnTransport, err := newTransport(context.Background(), cfg, "dsn.relay", &cfg.DSN.Relay)
	if err != nil {
		return nil, err
	}
	owners := map[string]string{}
	allow := map[string]func(string) bool{} // nil: no allowed_senders list
	for i, c := range cfg.Identities {
		owners[c.Name] = c.Owner
		allow[c.Name] = ids[i].AllowSender
	}
	dh, err := notify.New(notify.Config{
		Hostname: cfg.Hostname, Domain: cfg.DSN.Domain, MaxReturnBytes: cfg.DSN.MaxReturnBytes,
		Policy: notify.Policy{
			Owner:          func(identity string) string { return owners[identity] },
			AllowedSenders: func(identity string) func(string) bool { return allow[identity] },
			OwnerOnly:      cfg.DSN.OwnerOnly,
		},
	}, store, dsnTransport, log)
	if err != nil {
		return nil, fmt.Errorf("config: dsn: %w", err)
	}
	st.dsn = dh
	return st, nil
}

// anyOf compiles patterns into a matcher; no patterns allows anything.
func anyOf(patterns []string) (func(string) bool, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	ps := make([]route.Pattern, 0, len(patterns))
	for _, s := range patterns {
		p, err := route.ParsePattern(s)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return func(addr string) bool {
		for _, p := range ps {
			if p.Match(addr) {
				return true
			}
		}
		return false
	}, nil
}
