package app

import (
	"context"
	"fmt"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/filerelay"
	"github.com/postern/postern/internal/relay/sesrelay"
	"github.com/postern/postern/internal/relay/smtprelay"
)

// newTransport builds the relay transport a relay section describes.
func newTransport(ctx context.Context, cfg *config.Config, key string, r *config.Relay) (relay.Transport, error) {
	switch r.Type {
	case "file":
		t, err := filerelay.New(cfg.Path(r.Path))
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", key, err)
		}
		return t, nil
	case "smtp":
		pw := ""
		if r.Password != "" {
			var err error
			if pw, err = config.ResolveSecret(r.Password); err != nil {
				return nil, fmt.Errorf("config: %s.password: %w", key, err)
			}
		}
		t, err := smtprelay.New(smtprelay.Config{
			Addr: r.Addr, TLS: smtprelay.TLSMode(r.TLS), Username: r.Username, Password: pw,
			AuthMechanism: r.AuthMechanism, AllowInsecureAuth: r.AllowInsecureAuth, LocalName: cfg.Hostname,
		})
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", key, err)
		}
		return t, nil
	case "ses":
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("config: %s: AWS configuration: %w", key, err)
		}
		return sesrelay.New(sesv2.NewFromConfig(awsCfg), sesrelay.Config{ConfigurationSet: r.ConfigurationSet, FromARN: r.FromARN}), nil
	}
	return nil, fmt.Errorf("config: %s.type: %q is not one of smtp, ses, file", key, r.Type)
}
