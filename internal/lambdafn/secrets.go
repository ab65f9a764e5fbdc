package lambdafn

import (
	"context"
	"fmt"
	"log/slog"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/secrets"
)

// UsesSecretsManager reports whether any of refs is a
// "secretsmanager:<ARN or name>" reference.
func UsesSecretsManager(refs ...string) bool {
	for _, r := range refs {
		if _, ok := config.SecretsManagerID(r); ok {
			return true
		}
	}
	return false
}

// SecretCache is the function's Secrets Manager cache (secrets.DefaultTTL,
// so a rotation reaches it within minutes). It makes no request: each
// secret is read at its first use. Only the stages that hold secrets call
// it, and only when the configuration names a secretsmanager: secret.
func SecretCache(ctx context.Context, cfg *config.Config, log *slog.Logger) (*secrets.Cache, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if r := cfg.Backend.AWS.Region; r != "" {
		opts = append(opts, awsconfig.WithRegion(r))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("secrets: AWS configuration: %w", err)
	}
	return secrets.New(secretsmanager.NewFromConfig(ac), secrets.DefaultTTL, secrets.WithLogger(log)), nil
}
