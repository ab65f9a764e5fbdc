package configsrc

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/standin"
)

func TestParseURI(t *testing.T) {
	t.Parallel()
	for uri, want := range map[string]Source{
		"s3://b/postern.yaml":                  {Bucket: "b", Key: "postern.yaml"},
		"s3://b/dir/postern.yaml?versionId=v1": {Bucket: "b", Key: "dir/postern.yaml", VersionID: "v1"},
		"ssm:/postern/config":                  {Parameter: "/postern/config"},
		"ssm:/postern/config:3":                {Parameter: "/postern/config:3"},
		"ssm:postern-config":                   {Parameter: "postern-config"},
	} {
		got, err := ParseURI(uri)
		want.URI = uri
		if err != nil || got != want {
			t.Errorf("ParseURI(%q) = %+v, %v; want %+v", uri, got, err, want)
		}
	}
	for _, uri := range []string{"", "s3://", "s3://b", "s3://b/", "s3://b/dir/", "s3://b/k?version=1", "s3://b/k?versionId=",
		"ssm:", "ssm:/a b", "ssm:/a:1:2", "https://b.s3.amazonaws.com/k", "/etc/postern.yaml"} {
		_, err := ParseURI(uri)
		if err == nil || !strings.Contains(err.Error(), EnvURI) || !strings.Contains(err.Error(), "want s3://BUCKET/KEY") {
			t.Errorf("ParseURI(%q): want an error naming %s and the forms, got %v", uri, EnvURI, err)
		}
	}
}

// s3Client is a path-style client for the S3 stand-in with its own HTTP
// client (this machine sets AWS_CA_BUNDLE).
func s3Client(endpoint, access, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region: standin.Region, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(access, secret, ""),
		HTTPClient:  awsclient.HTTPClient(&http.Client{Timeout: 30 * time.Second}),
	})
}

func ssmClient(endpoint string) *ssm.Client {
	cfg := aws.Config{Region: standin.Region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	return ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.HTTPClient = awsclient.HTTPClient(&http.Client{Timeout: 30 * time.Second})
	})
}

func newBucket(t *testing.T, c *s3.Client) string {
	t.Helper()
	name := fmt.Sprintf("postern-configsrc-%08x", rand.Uint32())
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("CreateBucket(%s): %v", name, err)
	}
	return name
}

func TestS3ErrorsNameTheURIAndTheFix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ep, access, secret := standin.S3(t)
	c := s3Client(ep, access, secret)
	bucket := newBucket(t, c)
	for uri, want := range map[string]string{
		"s3://" + bucket + "/missing.yaml":         "no such object (or version) in bucket " + bucket + ": upload the configuration there",
		"s3://postern-no-such-bucket/postern.yaml": "no bucket postern-no-such-bucket",
	} {
		_, err := Load(ctx, uri, Clients{S3: c})
		if err == nil || !strings.Contains(err.Error(), "config "+uri+": ") || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s): want %q, got %v", uri, want, err)
		}
	}
	// versitygw refuses a wrong secret with 403, as S3 does a role
	// without s3:GetObject.
	uri := "s3://" + bucket + "/postern.yaml"
	_, err := Load(ctx, uri, Clients{S3: s3Client(ep, access, "wrong-secret")})
	if err == nil || !strings.Contains(err.Error(), "access denied (or no such object, to a role that may not list the bucket): grant s3:GetObject on arn:aws:s3:::"+bucket+"/postern.yaml") {
		t.Errorf("Load with a denied read: %v", err)
	}
	if _, err := Load(ctx, uri, Clients{SSM: ssmClient("http://127.0.0.1:1")}); err == nil || !strings.Contains(err.Error(), "no S3 client") {
		t.Errorf("Load without an S3 client: %v", err)
	}
}

func TestSSMVersionsAndErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := ssmClient(standin.Moto(t))
	name := fmt.Sprintf("/postern/test/%08x/config", rand.Uint32())
	for _, v := range []string{"hostname: one.example.com\n", "hostname: two.example.com\n"} {
		if _, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(v),
			Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	for uri, want := range map[string]string{"ssm:" + name: "two", "ssm:" + name + ":1": "one", "ssm:" + name + ":2": "two"} {
		b, err := Load(ctx, uri, Clients{SSM: c})
		if err != nil || !bytes.Contains(b, []byte(want)) {
			t.Errorf("Load(%s) = %q, %v; want hostname %s", uri, b, err, want)
		}
	}
	for uri, want := range map[string]string{
		"ssm:/postern/test/never-put": "no such parameter (or version): put the configuration there",
		"ssm:" + name + ":9":          "no such parameter (or version)",
	} {
		_, err := Load(ctx, uri, Clients{SSM: c})
		if err == nil || !strings.Contains(err.Error(), "config "+uri+": ") || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s): want %q, got %v", uri, want, err)
		}
	}
}

// The URI's versionId reaches S3: checked on moto's S3, which keeps
// versions (the versitygw stand-in runs without versioning).
func TestS3VersionID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := s3Client(standin.Moto(t), "test", "test")
	bucket := newBucket(t, c)
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &bucket,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, v := range []string{"hostname: one.example.com\n", "hostname: two.example.com\n"} {
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("postern.yaml"), Body: strings.NewReader(v)})
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, aws.ToString(out.VersionId))
	}
	uri := "s3://" + bucket + "/postern.yaml?versionId=" + versions[0]
	cfg, err := LoadConfig(ctx, uri, Clients{S3: c}, func(string) string { return "" })
	if err != nil || cfg.Hostname != "one.example.com" {
		t.Fatalf("LoadConfig(%s) = %+v, %v; want the first version", uri, cfg, err)
	}
	if _, err := Load(ctx, "s3://"+bucket+"/postern.yaml?versionId=nosuchversion", Clients{S3: c}); err == nil ||
		!strings.Contains(err.Error(), "no such object (or version)") {
		t.Errorf("a missing version: %v", err)
	}
}
