// Package dsnfn builds the dsn stage (delivery status notifications sent
// through the dsn.relay transport) from the configuration, for the dsn
// function (functions/dsn) and the local process alike.
package dsnfn

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dsn/notify"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/secrets"
)

// New builds the dsn stage: the notice policy from the identities (owner,
// allowed senders) and the dsn.relay transport (cache: see
// relayfn.NewTransport), signing notices with the keys of their From
// domain when dsn.dkim_sign is set.
func New(ctx context.Context, d *lambdafn.Deps, cache *secrets.Cache) (*notify.Handler, error) {
	cfg := d.Config
	var dk *relayfn.DKIM
	if cfg.DSN.DKIMSign {
		var err error
		if dk, err = relayfn.NewDKIM(cfg, noticeDomain(cfg), cache, d.Log); err != nil {
			return nil, err
		}
	}
	t, err := relayfn.NewSignedTransport(ctx, cfg, "dsn.relay", &cfg.DSN.Relay, cache, dk)
	if err != nil {
		return nil, err
	}
	owners := map[string]string{}
	allow := map[string]func(string) bool{} // nil: no allowed_senders list
	for _, c := range cfg.Identities {
		owners[c.Name] = c.Owner
		if allow[c.Name], err = lambdafn.AnyOf(c.AllowedSenders); err != nil {
			return nil, fmt.Errorf("config: identities %s allowed_senders: %w", c.Name, err)
		}
	}
	h, err := notify.New(notify.Config{
		Hostname: cfg.Hostname, Domain: cfg.DSN.Domain, MaxReturnBytes: cfg.DSN.MaxReturnBytes,
		Policy: notify.Policy{
			Owner:          func(identity string) string { return owners[identity] },
			AllowedSenders: func(identity string) func(string) bool { return allow[identity] },
			OwnerOnly:      cfg.DSN.OwnerOnly,
		},
	}, d.Store, t, d.Log)
	if err != nil {
		return nil, fmt.Errorf("config: dsn: %w", err)
	}
	return h, nil
}

// Build is the dsn function's lambdafn.Build. A notice is one send through
// dsn.relay's transport.
func Build(ctx context.Context, d *lambdafn.Deps) (lambdafn.Stage, error) {
	var cache *secrets.Cache
	refs := d.Config.DSN.Relay.SecretRefs()
	if d.Config.DSN.DKIMSign {
		refs = append(refs, relayfn.DKIMKeyRefs(d.Config, noticeDomain(d.Config))...)
	}
	if lambdafn.UsesSecretsManager(refs...) {
		c, err := lambdafn.SecretCache(ctx, d.Config, d.Log)
		if err != nil {
			return lambdafn.Stage{}, err
		}
		cache = c
	}
	h, err := New(ctx, d, cache)
	if err != nil {
		return lambdafn.Stage{}, err
	}
	budget := relayfn.TransportBudget(d.Config.DSN.Relay.Type)
	return lambdafn.Stage{Handler: h, Budget: func([]byte) time.Duration { return budget }}, nil
}

// noticeDomain is the domain notices come From (MAILER-DAEMON@domain):
// only its keys (its own or a parent's) can sign them, so only those are
// read.
func noticeDomain(cfg *config.Config) string {
	return cmp.Or(cfg.DSN.Domain, cfg.Hostname)
}
