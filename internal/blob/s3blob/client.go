package s3blob

import (
	"context"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/postern/postern/internal/awsclient"
)

// fallbackRegion signs requests to a custom endpoint when no region is
// configured; S3-compatible servers accept it, and AWS always sets one.
const fallbackRegion = "us-east-1"

// NewClient builds the S3 client the application wires into New.
//
// Credentials and region come from the SDK's default chain (environment,
// shared files, container or instance role). endpoint, when not empty,
// replaces the AWS endpoint (an S3-compatible server; the SDK itself also
// honours AWS_ENDPOINT_URL_S3 when endpoint is empty); with a custom
// endpoint and no configured region, us-east-1 is used. pathStyle selects
// https://host/bucket/key addressing, which most S3-compatible servers need.
//
// hc, when not nil, is set on the S3 client only. It is not passed to
// config.WithHTTPClient on purpose: when AWS_CA_BUNDLE is set, that option
// fails for any client but the SDK's own buildable one. With hc nil the
// SDK's client is used, which trusts AWS_CA_BUNDLE.
//
// The client does not log "response has no supported checksum" on reads:
// the SDK would print that as a plain-text line on stderr, in the middle
// of the JSON log, for every object uploaded without a full-object checksum.
//
// region, when not empty, overrides the region from the environment.
func NewClient(ctx context.Context, endpoint, region string, pathStyle bool, hc s3.HTTPClient) (*s3.Client, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := awsclient.LoadConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3blob: load AWS config: %w", err)
	}
	if cfg.Region == "" && endpoint != "" {
		cfg.Region = fallbackRegion
	}
	if c, ok := hc.(*http.Client); ok && c == nil {
		hc = nil // a nil *http.Client in the interface would panic on first use
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
		if hc != nil {
			o.HTTPClient = awsclient.HTTPClient(hc)
		}
		o.DisableLogOutputChecksumValidationSkipped = true
	}), nil
}
