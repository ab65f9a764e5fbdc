// Package configsrc fetches the configuration the AWS functions read at cold
// start, named by POSTERN_CONFIG_URI: an S3 object or an SSM parameter, so it
// is not bound by Lambda's 4 KB environment.
package configsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/postern/postern/internal/config"
)

// EnvURI names the environment variable that holds the configuration's URI.
const EnvURI = "POSTERN_CONFIG_URI"

// MaxBytes bounds a configuration read: far beyond any real one (500
// identities and 100 routes take about 150 KB), small enough that a wrong
// object cannot exhaust a function's memory.
const MaxBytes = 4 << 20

// S3API is the one S3 call Load makes; *s3.Client has it.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// SSMAPI is the one SSM call Load makes; *ssm.Client has it.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

var (
	_ S3API  = (*s3.Client)(nil)
	_ SSMAPI = (*ssm.Client)(nil)
)

// Clients are the clients Load may need; only the one the URI names must
// be set.
type Clients struct {
	S3  S3API
	SSM SSMAPI
}

// NewClients builds both clients from cfg; s3Opts tune the S3 client (a
// stand-in needs UsePathStyle). The SDK takes endpoint overrides from
// AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL_SSM.
func NewClients(cfg aws.Config, s3Opts ...func(*s3.Options)) Clients {
	return Clients{S3: s3.NewFromConfig(cfg, s3Opts...), SSM: ssm.NewFromConfig(cfg)}
}

// Source is a parsed configuration URI.
type Source struct {
	URI string
	// S3: Bucket and Key, and VersionID when the URI pins one.
	Bucket, Key, VersionID string
	// SSM: Parameter is the name, with ":VERSION" when the URI pins one
	// (GetParameter takes that selector as part of the name).
	Parameter string
}

// uriHelp is what a configuration URI looks like, for error messages.
const uriHelp = "want s3://BUCKET/KEY (optionally ?versionId=ID) or ssm:NAME (optionally :VERSION), e.g. s3://postern-config/postern.yaml or ssm:/postern/config:3"

// ssmName is a Parameter Store name (a path of letters, digits and _.-),
// with an optional :VERSION or :LABEL selector.
var ssmName = regexp.MustCompile(`^/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*(:[A-Za-z0-9_.-]+)?$`)

// ParseURI checks uri without fetching it.
func ParseURI(uri string) (Source, error) {
	bad := func(why string) (Source, error) {
		return Source{}, fmt.Errorf("%s %q: %s; %s", EnvURI, uri, why, uriHelp)
	}
	switch {
	case strings.HasPrefix(uri, "s3://"):
		u, err := url.Parse(uri)
		if err != nil {
			return bad("not a URL")
		}
		key := strings.TrimPrefix(u.Path, "/")
		if u.Host == "" || key == "" || strings.HasSuffix(key, "/") {
			return bad("names no bucket and object key")
		}
		s := Source{URI: uri, Bucket: u.Host, Key: key}
		for k, v := range u.Query() {
			if k != "versionId" || len(v) != 1 || v[0] == "" {
				return bad("the only query parameter is one versionId")
			}
			s.VersionID = v[0]
		}
		return s, nil
	case strings.HasPrefix(uri, "ssm:"):
		name := strings.TrimPrefix(uri, "ssm:")
		if len(name) > 2048 || !ssmName.MatchString(name) {
			return bad("not a Parameter Store name")
		}
		return Source{URI: uri, Parameter: name}, nil
	case uri == "":
		return bad("is empty")
	}
	return bad("unknown scheme")
}

// Load returns the bytes of the configuration uri names. Errors name the
// URI and the fix: a bad URI, a missing object or parameter, a denied read.
func Load(ctx context.Context, uri string, c Clients) ([]byte, error) {
	src, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if src.Parameter != "" {
		return loadSSM(ctx, src, c.SSM)
	}
	return loadS3(ctx, src, c.S3)
}

// LoadConfig is Load and then config.Parse: the configuration over the
// defaults, with the environment overrides of getenv, validated.
func LoadConfig(ctx context.Context, uri string, c Clients, getenv func(string) string) (*config.Config, error) {
	b, err := Load(ctx, uri, c)
	if err != nil {
		return nil, err
	}
	return config.Parse(uri, b, getenv)
}

func loadS3(ctx context.Context, src Source, api S3API) ([]byte, error) {
	if api == nil {
		return nil, fmt.Errorf("config %s: no S3 client", src.URI)
	}
	in := &s3.GetObjectInput{Bucket: aws.String(src.Bucket), Key: aws.String(src.Key)}
	if src.VersionID != "" {
		in.VersionId = aws.String(src.VersionID)
	}
	out, err := api.GetObject(ctx, in)
	if err != nil {
		return nil, describe(src, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: read: %w", src.URI, err)
	}
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("config %s: larger than %d bytes; is %s the right object?", src.URI, MaxBytes, EnvURI)
	}
	return b, nil
}

func loadSSM(ctx context.Context, src Source, api SSMAPI) ([]byte, error) {
	if api == nil {
		return nil, fmt.Errorf("config %s: no SSM client", src.URI)
	}
	// WithDecryption lets the configuration be a SecureString; it changes
	// nothing for a String.
	out, err := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(src.Parameter), WithDecryption: aws.Bool(true)})
	if err != nil {
		return nil, describe(src, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return nil, fmt.Errorf("config %s: the parameter has no value", src.URI)
	}
	return []byte(*out.Parameter.Value), nil
}

// describe names the URI and the fix for an S3 or SSM error.
func describe(src Source, err error) error {
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	where := "set " + EnvURI + " to where scripts/deploy wrote the configuration"
	switch {
	case code == "NoSuchKey" || code == "NoSuchVersion" || (src.Bucket != "" && code == "NotFound"):
		return fmt.Errorf("config %s: no such object (or version) in bucket %s: upload the configuration there (scripts/deploy does), or %s: %w", src.URI, src.Bucket, where, err)
	case code == "NoSuchBucket":
		return fmt.Errorf("config %s: no bucket %s: %s: %w", src.URI, src.Bucket, where, err)
	case code == "ParameterNotFound" || code == "ParameterVersionNotFound" || code == "ParameterVersionLabelNotFound":
		return fmt.Errorf("config %s: no such parameter (or version): put the configuration there (aws ssm put-parameter; beyond 4 KB use --tier Advanced, or S3), or %s: %w", src.URI, where, err)
	case code == "AccessDenied" || code == "AccessDeniedException" || status == 403:
		if src.Bucket != "" {
			// Without s3:ListBucket S3 answers a missing object so too.
			return fmt.Errorf("config %s: access denied (or no such object, to a role that may not list the bucket): grant s3:GetObject%s on arn:aws:s3:::%s/%s (and kms:Decrypt on the bucket's key) to this function's role: %w",
				src.URI, map[bool]string{true: " and s3:GetObjectVersion", false: ""}[src.VersionID != ""], src.Bucket, src.Key, err)
		}
		return fmt.Errorf("config %s: access denied: grant ssm:GetParameter on the parameter (and kms:Decrypt for a SecureString) to this function's role: %w", src.URI, err)
	}
	return fmt.Errorf("config %s: %w", src.URI, err)
}
