// Package awsclient loads the AWS SDK configuration Postern's AWS clients
// are built from, with an HTTP client that does not drop a connection
// while the SDK is still reading the response on it.
//
// The SDK (smithy-go) wraps each request body in a reader that it closes
// as soon as the response headers arrive, and whose WriteTo answers io.EOF
// once closed. net/http, after sending a body's ContentLength bytes, reads
// the body once more through io.Copy to check that nothing is left; when
// that read comes after the SDK's Close, io.Copy reports the io.EOF from
// WriteTo as an error, and the transport closes the connection under the
// response. The SDK then fails with "use of closed network connection" and
// retries an operation the server has already carried out: a SendMessage
// enqueues twice, and a ReceiveMessage's batch stays hidden for the whole
// visibility timeout. (aws/aws-sdk-go-v2#2737; the SDK's answer was to
// retry the error, which is what makes these duplicates.) A body without
// WriteTo is read with Read, and a closed one answers (0, io.EOF), which
// io.Copy takes as the end of the body, as it is.
package awsclient

import (
	"context"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
)

// LoadConfig is config.LoadDefaultConfig (environment, shared files,
// AWS_CA_BUNDLE, the container's or instance's role) with its HTTP client
// wrapped by HTTPClient, so every service client built from it is guarded.
// The client is wrapped after loading because config.WithHTTPClient fails
// with AWS_CA_BUNDLE set for any client but the SDK's own.
func LoadConfig(ctx context.Context, opts ...func(*config.LoadOptions) error) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, err
	}
	cfg.HTTPClient = HTTPClient(cfg.HTTPClient)
	return cfg, nil
}

// HTTPClient returns c guarded as the package comment says: the bodies of
// the requests it sends offer the transport Read and Close only. A nil c
// stands for the SDK's default client; an already guarded c is returned as
// it is. Set the result on a service's options where one replaces the
// configuration's client (o.HTTPClient = awsclient.HTTPClient(hc)).
func HTTPClient(c aws.HTTPClient) aws.HTTPClient {
	switch c := c.(type) {
	case nil:
		return guarded{awshttp.NewBuildableClient()}
	case guarded:
		return c
	case *http.Client:
		if c == nil {
			return guarded{awshttp.NewBuildableClient()}
		}
	}
	return guarded{c}
}

type guarded struct{ next aws.HTTPClient }

func (g guarded) Do(r *http.Request) (*http.Response, error) {
	// http.NoBody stays: the transport sends it as no body at all, where
	// any other empty body would go chunked.
	if _, ok := r.Body.(io.WriterTo); ok && r.Body != http.NoBody {
		// A shallow copy, as net/http's client makes: the SDK closes the
		// body it built, and the copy's reader then reads as ended.
		r2 := new(http.Request)
		*r2 = *r
		r2.Body = readCloser{r.Body}
		r = r2
	}
	return g.next.Do(r)
}

// readCloser hides every method of its body but Read and Close.
type readCloser struct{ io.ReadCloser }
