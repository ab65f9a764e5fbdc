// Package webhookfn builds the webhook stage (webhook and directory
// routes) from the configuration, for the webhook function
// (functions/webhook) and the local process alike.
package webhookfn

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/secrets"
	"github.com/postern/postern/internal/webhook"
)

// Margin is what a webhook job takes besides the request: reading the
// parsed message when the job does not carry it, and queueing a DSN.
const Margin = 10 * time.Second

// Targets turns the configuration's webhook and directory routes into
// targets by route name. With resolve false the signing secrets are not
// read (a process that never signs needs none of them). A route whose
// secrets include a secretsmanager: reference reads them at each delivery
// through cache (so a rotation applies without a restart); cache must then
// be set, which only the AWS functions do. Other secrets are read now, so
// a missing one stops the start with its name.
func Targets(cfg *config.Config, resolve bool, cache *secrets.Cache) (map[string]webhook.Target, error) {
	targets := map[string]webhook.Target{}
	for _, r := range cfg.Routes {
		switch {
		case r.Webhook != nil:
			t := webhook.Target{URL: r.Webhook.URL, Payload: r.Webhook.Payload, Timeout: r.Webhook.Timeout.D(),
				MaxAge: r.Webhook.MaxAge.D(), FailureURL: r.Webhook.FailureURL, AllowPrivate: r.Webhook.AllowPrivate,
				Allow: r.Webhook.EgressAllow()}
			switch refs := r.Webhook.Secrets; {
			case !resolve:
			case lambdafn.UsesSecretsManager(refs...):
				if cache == nil {
					return nil, fmt.Errorf("config: routes %s webhook.secrets: secretsmanager: secrets are read by the AWS functions only; set backend.type aws or write the secret as \"env:NAME\" or \"file:PATH\"", r.Name)
				}
				t.SecretSource = webhook.NewSecretSource(r.Name, refs, cache.Resolve)
			default:
				for i, s := range refs {
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
			}
			targets[r.Name] = t
		case r.Directory != nil:
			targets[r.Name] = webhook.Target{Dir: cfg.Path(r.Directory.Path), Payload: r.Directory.Payload}
		}
	}
	return targets, nil
}

// New builds the webhook stage over targets.
func New(d *lambdafn.Deps, targets map[string]webhook.Target) *webhook.Handler {
	var opts []webhook.Option
	if d.URLs != nil {
		opts = append(opts, webhook.WithURLs(d.URLs))
	}
	return webhook.New(d.Store, func(name string) (webhook.Target, bool) {
		t, ok := targets[name]
		return t, ok
	}, nil, d.Queues[lambdafn.QueueDSN], d.Log, opts...)
}

// Budget is the most a job takes: its route's request timeout plus
// Margin. A job that names no known route fails at once.
func Budget(targets map[string]webhook.Target) func(body []byte) time.Duration {
	return func(body []byte) time.Duration {
		var job struct {
			Route string `json:"route"`
		}
		if json.Unmarshal(body, &job) != nil {
			return Margin
		}
		t, ok := targets[job.Route]
		if !ok {
			return Margin
		}
		if t.Timeout <= 0 {
			return webhook.DefaultTimeout + Margin
		}
		return t.Timeout + Margin
	}
}

// Build is the webhook function's lambdafn.Build.
func Build(ctx context.Context, d *lambdafn.Deps) (lambdafn.Stage, error) {
	var cache *secrets.Cache
	for _, r := range d.Config.Routes {
		if r.Webhook != nil && lambdafn.UsesSecretsManager(r.Webhook.Secrets...) {
			c, err := lambdafn.SecretCache(ctx, d.Config, d.Log)
			if err != nil {
				return lambdafn.Stage{}, err
			}
			cache = c
			break
		}
	}
	targets, err := Targets(d.Config, true, cache)
	if err != nil {
		return lambdafn.Stage{}, err
	}
	// On Lambda each attempt is an EMF line on stdout: CloudWatch metrics
	// per route and outcome.
	h := New(d, targets).With(webhook.WithObserver(webhook.NewEMF(os.Stdout)))
	return lambdafn.Stage{Handler: h, Budget: Budget(targets)}, nil
}
