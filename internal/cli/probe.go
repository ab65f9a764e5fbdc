package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/relay/probe"
	"github.com/postern/postern/internal/secrets"
)

// probeRelays is check-config -probe: it signs in to each relay that uses
// OAuth, with the credentials and scopes the relay stage would use, and
// prints what is missing. It sends no mail. Exit 1 when any check failed.
func probeRelays(ctx context.Context, e Env, cfg *config.Config) int {
	targets := probe.Targets(cfg)
	if len(targets) == 0 {
		fmt.Fprintln(e.Stdout, "probe: no relay signs in with oauth; nothing to probe")
		return 0
	}
	var cache *secrets.Cache
	for _, t := range targets {
		if lambdafn.UsesSecretsManager(t.Relay.SecretRefs()...) {
			// As the relay function reads them: from Secrets Manager with
			// this machine's AWS credentials.
			var err error
			if cache, err = lambdafn.SecretCache(ctx, cfg, slog.New(slog.NewTextHandler(e.Stderr, nil))); err != nil {
				fmt.Fprintln(e.Stderr, "probe:", err)
				return 1
			}
			break
		}
	}
	reps := probe.Run(ctx, targets, probe.Options{
		Fetcher: func(key string, r *config.Relay) (oauthtok.Fetcher, error) {
			return relayfn.TokenFetcher(key, r, cache)
		},
		LocalName: cfg.Hostname,
	})
	probe.Write(e.Stdout, reps)
	for _, r := range reps {
		if r.Failed() {
			return 1
		}
	}
	return 0
}
