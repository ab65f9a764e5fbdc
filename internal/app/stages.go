package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dsn/notify"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/dsnfn"
	"github.com/postern/postern/internal/lambdafn/parsefn"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/lambdafn/webhookfn"
	"github.com/postern/postern/internal/parse"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/sendas"
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
// handlers, through the same per-stage builders the Lambda functions use
// (internal/lambdafn/*fn).
//
// only names the one stage to build ("" builds them all), so a process
// resolves only the secrets its stages use; on the aws backend none is
// built.
func buildStages(cfg *config.Config, be *backend, log *slog.Logger, only string) (*stages, error) {
	// On AWS the stages are Lambda functions (lambdafn), each building its
	// own: this process (the gateway, or an operation such as replay) needs
	// the route table and identities only, and none of the stages' secrets,
	// which it may not be allowed to read.
	need := func(stage string) bool { return be.local && (only == "" || only == stage) }
	d := &lambdafn.Deps{Config: cfg, Store: be.store, Queues: be.queues, URLs: be.urls, Log: log}
	table, err := lambdafn.RouteTable(cfg)
	if err != nil {
		return nil, err
	}
	targets, err := webhookfn.Targets(cfg, need("webhook"), nil)
	if err != nil {
		return nil, err
	}
	relays := map[string]relay.Route{}
	if need("relay") {
		if relays, err = relayfn.Routes(context.Background(), cfg, nil); err != nil {
			return nil, err
		}
	}

	var ids []smtpd.Identity
	for _, c := range cfg.Identities {
		id := smtpd.Identity{Name: c.Name, AllowPlaintext: c.AllowPlaintext, MaxMessageBytes: c.MaxMessageBytes, MaxRecipients: c.MaxRecipients, Transcript: c.Transcript,
			Internet: c.Internet}
		if c.PasswordHash != "" {
			h, err := c.ResolvedPasswordHash(os.Getenv)
			if err != nil {
				return nil, fmt.Errorf("config: identities %s password_hash: %w", c.Name, err)
			}
			id.Username = cmp.Or(c.Username, c.Name)
			id.PasswordHash = []byte(h)
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
		if id.AllowSender, err = lambdafn.AnyOf(c.AllowedSenders); err != nil {
			return nil, fmt.Errorf("config: identities %s allowed_senders: %w", c.Name, err)
		}
		if id.AllowRecipient, err = lambdafn.AnyOf(c.AllowedRecipients); err != nil {
			return nil, fmt.Errorf("config: identities %s allowed_recipients: %w", c.Name, err)
		}
		if c.RefuseUndeliverableSenders {
			if id.Senders, err = sendas.NewPolicy(cfg, c.Name); err != nil {
				return nil, fmt.Errorf("config: identities %s refuse_undeliverable_senders: %w", c.Name, err)
			}
		}
		ids = append(ids, id)
	}

	st := &stages{table: table, identities: ids}
	if !be.local {
		return st, nil
	}
	if st.parse, err = parsefn.New(d, table); err != nil {
		return nil, err
	}
	st.webhook, st.relay = webhookfn.New(d, targets), relayfn.New(d, relays)
	if !need("dsn") {
		return st, nil
	}
	if st.dsn, err = dsnfn.New(context.Background(), d, nil); err != nil {
		return nil, err
	}
	return st, nil
}
