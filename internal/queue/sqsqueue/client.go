package sqsqueue

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/postern/postern/internal/awsclient"
)

// ClientConfig says how NewClient reaches SQS. The zero value uses the
// SDK's defaults throughout.
type ClientConfig struct {
	// Region; default: AWS_REGION or the shared config's.
	Region string
	// Endpoint, such as an SQS stand-in's URL or a VPC endpoint. Default:
	// the SDK's resolution, which honours AWS_ENDPOINT_URL_SQS and
	// AWS_ENDPOINT_URL before the region's public endpoint.
	Endpoint string
	// HTTPClient replaces the SDK's HTTP client for SQS only. It is set on
	// the service's options rather than with config.WithHTTPClient because
	// loading the config applies AWS_CA_BUNDLE by rebuilding the SDK's own
	// client type and fails on any other. It must let a response take
	// longer than the longest long poll (20 s). Default: the SDK's client.
	HTTPClient sqs.HTTPClient
	// Credentials replace the default chain (environment, shared files, web
	// identity, the ECS or Lambda role, instance metadata).
	Credentials aws.CredentialsProvider
}

// NewClient builds an SQS client from the default AWS configuration
// (environment and shared files) with cfg's overrides.
func NewClient(ctx context.Context, cfg ClientConfig) (*sqs.Client, error) {
	var load []func(*config.LoadOptions) error
	if cfg.Region != "" {
		load = append(load, config.WithRegion(cfg.Region))
	}
	if cfg.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(cfg.Credentials))
	}
	awsCfg, err := awsclient.LoadConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("sqsqueue: load AWS config: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("sqsqueue: no AWS region: set AWS_REGION or the queue backend's region")
	}
	return sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		if cfg.HTTPClient != nil {
			o.HTTPClient = awsclient.HTTPClient(cfg.HTTPClient)
		}
	}), nil
}
