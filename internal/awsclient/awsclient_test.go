package awsclient_test

import (
	"bytes"
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/postern/postern/internal/awsclient"
)

// sdkBody behaves as the SDK's request body does: once closed, Read and
// WriteTo answer io.EOF. Its WriteTo waits for that Close, which puts the
// transport's check for bytes past ContentLength (its one WriteTo call)
// after the response has arrived, every time rather than by chance.
type sdkBody struct {
	mu        sync.Mutex
	r         *bytes.Reader
	closed    chan struct{}
	closeOnce sync.Once
	writeTo   atomic.Bool
}

func newSDKBody(b []byte) *sdkBody {
	return &sdkBody{r: bytes.NewReader(b), closed: make(chan struct{})}
}

func (b *sdkBody) Read(p []byte) (int, error) {
	select {
	case <-b.closed:
		return 0, io.EOF
	default:
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.r.Read(p)
}

func (b *sdkBody) WriteTo(w io.Writer) (int64, error) {
	b.writeTo.Store(true)
	<-b.closed
	return 0, io.EOF
}

func (b *sdkBody) Close() error {
	b.closeOnce.Do(func() { close(b.closed) })
	return nil
}

// server answers every request with 1 MiB, far more than the transport
// buffers, after reading the request's body, and counts connections.
func server(t *testing.T) (url string, conns *atomic.Int64) {
	t.Helper()
	resp := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	conns = new(atomic.Int64)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			t.Errorf("server: read request body: %v", err)
		}
		if te := strings.Join(r.TransferEncoding, ","); te != "" {
			w.Header().Set("X-Request-Transfer-Encoding", te)
		}
		_, _ = w.Write(resp)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, conns
}

// closeWatch is a transport whose connections report their Close.
func closeWatch(t *testing.T) (*http.Transport, <-chan struct{}) {
	closed := make(chan struct{}, 16)
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &watchedConn{Conn: c, closed: closed}, nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr, closed
}

type watchedConn struct {
	net.Conn
	once   sync.Once
	closed chan<- struct{}
}

func (c *watchedConn) Close() error {
	c.once.Do(func() { c.closed <- struct{}{} })
	return c.Conn.Close()
}

// send does what the SDK does with one attempt: send, close the request
// body on the answer, then read the response.
func send(t *testing.T, c aws.HTTPClient, url string, body *sdkBody, n int64, afterClose func()) ([]byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Body, req.ContentLength = body, n
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	_ = req.Body.Close()
	afterClose()
	return io.ReadAll(resp.Body)
}

// TestBareClientDropsTheResponse shows the failure the guard is for, with
// net/http's own client: without it, this test's premise is gone.
func TestBareClientDropsTheResponse(t *testing.T) {
	t.Parallel()
	url, _ := server(t)
	tr, closed := closeWatch(t)
	payload := []byte(`{"QueueUrl":"q","MaxNumberOfMessages":10}`)
	_, err := send(t, &http.Client{Transport: tr}, url, newSDKBody(payload), int64(len(payload)), func() {
		select {
		case <-closed:
		case <-time.After(30 * time.Second): // a bound against hanging
			t.Fatal("the transport did not close the connection after the request body's Close")
		}
	})
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("reading the response: %v, want %v", err, net.ErrClosed)
	}
}

// TestGuardKeepsTheResponse: through the guard, the same exchange reads
// the whole response, the transport never calls the body's WriteTo, and
// the next request goes over the same connection.
func TestGuardKeepsTheResponse(t *testing.T) {
	t.Parallel()
	url, conns := server(t)
	tr, _ := closeWatch(t)
	c := awsclient.HTTPClient(&http.Client{Transport: tr})
	payload := []byte(`{"QueueUrl":"q","MaxNumberOfMessages":10}`)
	for i := range 3 {
		body := newSDKBody(payload)
		got, err := send(t, c, url, body, int64(len(payload)), func() {})
		if err != nil {
			t.Fatalf("request %d: reading the response: %v", i, err)
		}
		if len(got) != 1<<20 {
			t.Fatalf("request %d: response of %d bytes, want %d", i, len(got), 1<<20)
		}
		if body.writeTo.Load() {
			t.Errorf("request %d: the transport called the body's WriteTo through the guard", i)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 requests, want 1 kept open", n)
	}
}

// TestGuardLeavesNoBodyAlone: an empty request goes without a body, not
// as an empty chunked one, as the transport sends http.NoBody.
func TestGuardLeavesNoBodyAlone(t *testing.T) {
	t.Parallel()
	url, _ := server(t)
	c := awsclient.HTTPClient(&http.Client{})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, url, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if te := resp.Header.Get("X-Request-Transfer-Encoding"); te != "" {
		t.Errorf("an http.NoBody request went with Transfer-Encoding %q", te)
	}
	if req.Body != http.NoBody {
		t.Errorf("the caller's request body was replaced")
	}
}

func TestHTTPClientWrapsOnce(t *testing.T) {
	t.Parallel()
	c := awsclient.HTTPClient(&http.Client{})
	if again := awsclient.HTTPClient(c); again != c {
		t.Errorf("wrapping a guarded client wrapped it again")
	}
	for name, in := range map[string]aws.HTTPClient{"nil": nil, "nil *http.Client": (*http.Client)(nil)} {
		if got := awsclient.HTTPClient(in); got == nil {
			t.Errorf("%s: got nil", name)
		}
	}
}

// TestLoadConfigGuards: the configuration's client is the SDK's own
// (which carries AWS_CA_BUNDLE), guarded.
func TestLoadConfigGuards(t *testing.T) {
	t.Parallel()
	cfg, err := awsclient.LoadConfig(t.Context(), config.WithRegion("eu-west-1"))
	if err != nil {
		t.Fatal(err)
	}
	if awsclient.HTTPClient(cfg.HTTPClient) != cfg.HTTPClient {
		t.Errorf("LoadConfig's HTTP client %T is not guarded", cfg.HTTPClient)
	}
	if _, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		t.Errorf("LoadConfig left the SDK's client unguarded")
	}
	if cfg.Region != "eu-west-1" {
		t.Errorf("region %q, want the option's", cfg.Region)
	}
}

// TestEveryAWSClientIsGuarded reads the repository's non-test Go files: no
// code but this package's calls LoadDefaultConfig, and a file that uses an
// SDK service sets a service's HTTPClient only to awsclient.HTTPClient(...).
// A client built around the guard would bring the dropped responses back.
func TestEveryAWSClientIsGuarded(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || filepath.Dir(rel) == filepath.Join("internal", "awsclient") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		checked++
		usesService := false
		for _, imp := range f.Imports {
			if strings.HasPrefix(strings.Trim(imp.Path.Value, `"`), "github.com/aws/aws-sdk-go-v2/service/") {
				usesService = true
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if n.Sel.Name == "LoadDefaultConfig" {
					t.Errorf("%s: calls LoadDefaultConfig; use awsclient.LoadConfig", fset.Position(n.Pos()))
				}
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					if sel, ok := lhs.(*ast.SelectorExpr); ok && usesService && sel.Sel.Name == "HTTPClient" && i < len(n.Rhs) && !isGuardCall(n.Rhs[i]) {
						t.Errorf("%s: sets an SDK client's HTTPClient without awsclient.HTTPClient", fset.Position(n.Pos()))
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("read only %d files under %s; is this the repository?", checked, root)
	}
}

func isGuardCall(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "awsclient" && sel.Sel.Name == "HTTPClient"
}
