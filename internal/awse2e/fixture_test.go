package awse2e

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/lambdart"
	"github.com/postern/postern/internal/standin"
)

// fixture is what every test of the package shares: the stand-ins and the
// function binaries, built once.
type fixture struct {
	s3Endpoint  string
	sqsEndpoint string
	s3          *s3.Client  // to create buckets and look at objects
	sqs         *sqs.Client // to create queues and look into them
	bootstrap   map[string]string
}

// newFixture starts (or finds) the stand-ins and builds the four functions
// (functions/parse, webhook, relay, dsn) as Lambda bootstraps.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	s3ep, key, secret := standin.S3(t)
	fx := &fixture{s3Endpoint: s3ep, sqsEndpoint: standin.SQS(t), bootstrap: map[string]string{}}
	fx.s3 = newS3Client(t, s3ep, key, secret)
	fx.sqs = newSQSClient(t, fx.sqsEndpoint)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute) // a cold build cache is slow
	defer cancel()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for _, stage := range []string{"parse", "webhook", "relay", "dsn"} {
		dir := t.TempDir()
		wg.Go(func() {
			bin, err := lambdart.Build(ctx, "github.com/postern/postern/functions/"+stage, dir)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			fx.bootstrap[stage] = bin
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Fatal(err)
	}
	return fx
}

// newS3Client is a path-style client with an HTTP client of its own, set
// on the service (config.WithHTTPClient fails when AWS_CA_BUNDLE is set).
func newS3Client(t testing.TB, endpoint, key, secret string) *s3.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return s3.New(s3.Options{
		Region:       standin.Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, ""),
		HTTPClient:   awsclient.HTTPClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}),
	})
}

func newSQSClient(t testing.TB, endpoint string) *sqs.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return sqs.New(sqs.Options{
		Region:       standin.Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(standin.S3AccessKey, standin.S3SecretKey, ""),
		HTTPClient:   awsclient.HTTPClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}),
	})
}
