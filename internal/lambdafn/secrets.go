package lambdafn

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/postern/postern/internal/awsclient"
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
	ac, err := LoadAWSConfig(ctx, cfg.Backend.AWS)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return secrets.New(secretsmanager.NewFromConfig(ac), secrets.DefaultTTL, secrets.WithLogger(log)), nil
}

// LoadAWSConfig is the SDK's default configuration (credentials, and
// endpoints from AWS_ENDPOINT_URL_<SERVICE>) in backend.aws's region, for
// the services that have no client options of their own in the config.
func LoadAWSConfig(ctx context.Context, a config.AWS) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if a.Region != "" {
		opts = append(opts, awsconfig.WithRegion(a.Region))
	}
	ac, err := awsclient.LoadConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("AWS configuration: %w", err)
	}
	return ac, nil
}
