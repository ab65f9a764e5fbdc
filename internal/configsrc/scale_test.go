package configsrc

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/secrets"
	"github.com/postern/postern/internal/standin"
	"github.com/postern/postern/internal/webhook"
)

// Sizes of the configuration issue 16 asks to carry.
const (
	scaleIdentities = 500
	scaleRoutes     = 100
	scaleRelays     = 10 // of the routes; the rest are webhooks
)

// scaleConfig is an aws-mode configuration with scaleIdentities identities
// and scaleRoutes routes whose webhook secrets live in Secrets Manager
// under prefix.
func scaleConfig(prefix string) string {
	var b strings.Builder
	b.WriteString(`hostname: mx.example.com
backend:
  type: aws
  aws:
    bucket: postern-scale
    queues:
      inbound: https://sqs.us-east-1.amazonaws.com/123456789012/inbound
      webhook: https://sqs.us-east-1.amazonaws.com/123456789012/webhook
      relay: https://sqs.us-east-1.amazonaws.com/123456789012/relay
      dsn: https://sqs.us-east-1.amazonaws.com/123456789012/dsn
listeners:
  - {name: smtp, addr: ":2525", mode: smtp, proxy_protocol: ["10.0.0.0/8"]}
  - {name: submission, addr: ":2587", mode: submission, proxy_protocol: ["10.0.0.0/8"]}
identities:
`)
	for i := range scaleIdentities {
		if i%2 == 0 {
			fmt.Fprintf(&b, "  - name: device-%03d\n    networks: [\"10.%d.%d.0/24\"]\n    allowed_senders: [\"*@devices%d.example.com\"]\n    owner: it-%d@example.com\n",
				i, i/256, i%256, i%7, i%5)
		} else {
			fmt.Fprintf(&b, "  - name: app-%03d\n    username: app%03d\n    password_hash: \"$2a$12$xgxZX2.BWUVQTF/4dD2wbOIAQiBmwCFIDsNGs811xfmajgGAY7ps6\"\n    allowed_senders: [\"app%03d@example.com\"]\n    max_recipients: 50\n",
				i, i, i)
		}
	}
	b.WriteString("routes:\n")
	for i := range scaleRoutes - scaleRelays {
		fmt.Fprintf(&b, "  - name: hook-%03d\n    match: {recipients: [\"hook-%03d@inbound.example.com\"]}\n    webhook:\n      url: \"https://app%d.example.com/inbound/%03d\"\n      secrets: [\"secretsmanager:%s/hook-%03d\"]\n      timeout: 20s\n",
			i, i, i%10, i, prefix, i)
	}
	for i := range scaleRelays {
		fmt.Fprintf(&b, "  - name: out-%02d\n    match: {identities: [\"app-%03d\"]}\n    relay: {type: smtp, addr: \"smtp.example.com:587\", username: out%02d, password: \"secretsmanager:%s/relay\"}\n",
			i, 2*i+1, i, prefix)
	}
	b.WriteString("dsn:\n  domain: example.com\n  relay: {type: ses}\n")
	return b.String()
}

func key(route, gen int) []byte { return fmt.Appendf(nil, "key-%03d-gen-%d", route, gen) }

func whsec(k []byte) string { return "whsec_" + base64.StdEncoding.EncodeToString(k) }

// A configuration of 500 identities and 100 routes, stored in S3 (and in
// SSM), loaded and validated at cold start; its webhook secrets in Secrets
// Manager, read through the cache and rotated.
func TestScaleConfigFromS3AndSSMWithSecretsManager(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := fmt.Sprintf("postern/scale-%08x", rand.Uint32())
	yaml := scaleConfig(prefix)
	t.Logf("config: %d identities, %d routes, %d bytes (SSM holds 4096 in a Standard parameter, 8192 in an Advanced one)",
		scaleIdentities, scaleRoutes, len(yaml))
	if len(yaml) <= 8192 {
		t.Fatalf("the test config is only %d bytes; it is meant to outgrow SSM", len(yaml))
	}

	// S3 (versitygw).
	ep, access, secret := standin.S3(t)
	s3c := s3Client(ep, access, secret)
	bucket := newBucket(t, s3c)
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("config/postern.yaml"), Body: strings.NewReader(yaml)}); err != nil {
		t.Fatal(err)
	}
	// SSM and Secrets Manager (moto). moto does not enforce Parameter
	// Store's size limits; AWS would refuse this value at either tier.
	motoEP := standin.Moto(t)
	ssmc := ssmClient(motoEP)
	param := "/" + prefix + "/config"
	if _, err := ssmc.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(param), Value: aws.String(yaml),
		Type: ssmtypes.ParameterTypeString, Tier: ssmtypes.ParameterTierAdvanced}); err != nil {
		t.Fatal(err)
	}
	smc := smClient(motoEP)
	for i := range scaleRoutes - scaleRelays {
		if _, err := smc.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(fmt.Sprintf("%s/hook-%03d", prefix, i)),
			SecretString: aws.String(whsec(key(i, 1)))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := smc.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(prefix + "/relay"), SecretString: aws.String("relay-pass-1")}); err != nil {
		t.Fatal(err)
	}

	env := func(string) string { return "" }
	s3URI := "s3://" + bucket + "/config/postern.yaml"
	start := time.Now()
	cfg, err := LoadConfig(ctx, s3URI, Clients{S3: s3c}, env)
	loadS3 := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Identities) != scaleIdentities || len(cfg.Routes) != scaleRoutes {
		t.Fatalf("loaded %d identities and %d routes", len(cfg.Identities), len(cfg.Routes))
	}
	start = time.Now()
	fromSSM, err := LoadConfig(ctx, "ssm:"+param, Clients{SSM: ssmc}, env)
	loadSSM := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, fromSSM) {
		t.Error("the configuration from SSM differs from the one from S3")
	}

	// The webhook stage's secrets, each route's through its own source.
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	cache := secrets.New(smc, secrets.DefaultTTL, secrets.WithClock(clk.now))
	sources := map[string]func(context.Context) ([][]byte, error){}
	for _, r := range cfg.Routes {
		if r.Webhook != nil {
			sources[r.Name] = webhook.NewSecretSource(r.Name, r.Webhook.Secrets, cache.Resolve)
		}
	}
	start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(sources))
	for name, src := range sources {
		wg.Go(func() {
			keys, err := src(ctx)
			var i int
			fmt.Sscanf(name, "hook-%d", &i)
			if err != nil || len(keys) != 1 || string(keys[0]) != string(key(i, 1)) {
				errs <- fmt.Errorf("%s: keys %q, %v", name, keys, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	readSecrets := time.Since(start)
	for err := range errs {
		t.Error(err)
	}
	relayPass, err := cache.Resolve(ctx, cfg.Routes[scaleRoutes-1].Relay.Password)
	if err != nil || relayPass != "relay-pass-1" {
		t.Errorf("relay password %q, %v", relayPass, err)
	}
	t.Logf("cold start: config from S3 %d ms, from SSM %d ms (parse and validation included); %d webhook secrets from Secrets Manager %d ms",
		loadS3.Milliseconds(), loadSSM.Milliseconds(), len(sources), readSecrets.Milliseconds())

	// Rotation: the new key is used once the cached one is DefaultTTL old.
	hook := fmt.Sprintf("%s/hook-%03d", prefix, 7)
	if _, err := smc.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(hook), SecretString: aws.String(whsec(key(7, 2)))}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := sources["hook-007"](ctx); string(keys[0]) != string(key(7, 1)) {
		t.Errorf("within the TTL: key %q, want the cached first one", keys[0])
	}
	clk.add(secrets.DefaultTTL)
	if keys, err := sources["hook-007"](ctx); err != nil || string(keys[0]) != string(key(7, 2)) {
		t.Errorf("after the TTL: key %q, %v; want the rotated one", keys, err)
	}
	if keys, _ := sources["hook-008"](ctx); string(keys[0]) != string(key(8, 1)) {
		t.Errorf("an unrotated route's key changed: %q", keys[0])
	}
	// A rotation to a malformed value names the route and secret.
	if _, err := smc.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(hook), SecretString: aws.String("whsec_***")}); err != nil {
		t.Fatal(err)
	}
	clk.add(secrets.DefaultTTL)
	if _, err := sources["hook-007"](ctx); err == nil || !strings.Contains(err.Error(), "routes hook-007 webhook.secrets[0]: webhook secret starts with whsec_") {
		t.Errorf("a malformed rotated secret: %v", err)
	}
}

// BenchmarkColdStartConfig is a function's cold-start configuration cost:
// the 500-identity, 100-route configuration read from S3, decoded and
// validated.
func BenchmarkColdStartConfig(b *testing.B) {
	ctx := context.Background()
	ep, access, secret := standin.S3(b)
	s3c := s3Client(ep, access, secret)
	bucket := fmt.Sprintf("postern-bench-%08x", rand.Uint32())
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		b.Fatal(err)
	}
	yaml := scaleConfig("postern/bench")
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("postern.yaml"), Body: strings.NewReader(yaml)}); err != nil {
		b.Fatal(err)
	}
	uri := "s3://" + bucket + "/postern.yaml"
	b.SetBytes(int64(len(yaml)))
	for b.Loop() {
		if _, err := LoadConfig(ctx, uri, Clients{S3: s3c}, func(string) string { return "" }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseScaleConfig is the decode and validation alone.
func BenchmarkParseScaleConfig(b *testing.B) {
	data := []byte(scaleConfig("postern/bench"))
	for b.Loop() {
		if _, err := config.Parse("bench", data, func(string) string { return "" }); err != nil {
			b.Fatal(err)
		}
	}
}

func smClient(endpoint string) *secretsmanager.Client {
	cfg := aws.Config{Region: standin.Region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.HTTPClient = awsclient.HTTPClient(&http.Client{Timeout: 30 * time.Second})
	})
}

// clock is a settable time for the secrets cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
