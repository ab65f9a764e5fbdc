package standin

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Credentials and region every S3 stand-in is started with (fauxqs takes
// any). They are test values with no meaning outside a stand-in.
const (
	S3AccessKey = "POSTERNTESTKEY"
	S3SecretKey = "postern-test-secret-key"
	Region      = "us-east-1"
)

// versitygw is the S3 stand-in: a real S3 server that verifies SigV4
// signatures, over a posix directory.
var versitygw = binary{
	what:   "S3 stand-in (versitygw)",
	envVar: "POSTERN_VERSITYGW",
	cached: ".ci/cache/bin/versitygw",
	onPath: "versitygw",
	hint:   "scripts/ci/install-s3-standin.sh",
}

// S3Options configure a server of StartS3.
type S3Options struct {
	// TLS serves HTTPS with a throwaway certificate for 127.0.0.1, which
	// Server.RootCAs trusts. Over HTTPS the SDK sends bodies as it does to
	// AWS (aws-chunked with a trailing checksum), over HTTP it signs them.
	TLS bool
}

// S3 returns the S3 stand-in that the test binary shares, starting it on
// first use: its plain-HTTP endpoint and the credentials it accepts (its
// region is Region). Tests share it by making buckets of their own; a test
// that stops the server uses StartS3 instead.
func S3(t testing.TB) (endpoint, accessKey, secret string) {
	t.Helper()
	srv := shared.s3.get(t, versitygw, func(path string) (*Server, error) {
		dir, err := os.MkdirTemp("", "postern-versitygw-")
		if err != nil {
			return nil, err
		}
		s, err := startVersitygw(path, dir, S3Options{})
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		s.cleanup = func() { _ = os.RemoveAll(dir) }
		return s, nil
	})
	return srv.Endpoint, S3AccessKey, S3SecretKey
}

// StartS3 starts an S3 stand-in for t alone, its data under a temporary
// directory of t, stopped when t ends. Its credentials are S3AccessKey and
// S3SecretKey.
func StartS3(t testing.TB, opts S3Options) *Server {
	t.Helper()
	dir := t.TempDir() // before startOwn's cleanup, so removed after the stop
	return startOwn(t, versitygw, func(path string) (*Server, error) {
		return startVersitygw(path, dir, opts)
	})
}

// startVersitygw starts versitygw over dir/root (with dir/cert.pem and
// key.pem for TLS).
func startVersitygw(path, dir string, opts S3Options) (*Server, error) {
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	args := []string{"--access", S3AccessKey, "--secret", S3SecretKey, "--region", Region,
		"--health", "/healthz", "--quiet"}
	scheme := "http"
	client := &http.Client{Timeout: time.Second}
	var srvTLS *tls.Config
	if opts.TLS {
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		pool, err := WriteCert(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		args = append(args, "--cert", certFile, "--key", keyFile)
		scheme = "https"
		srvTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		client.Transport = &http.Transport{TLSClientConfig: srvTLS}
	}
	s, err := newServer(versitygw.what, scheme, func(port int) (*proc, int, error) {
		if port != 0 {
			return launchVersitygw(path, scheme, port, args, root, client)
		}
		// versitygw cannot pick a port itself: choose a free one, and
		// another if it was taken before versitygw could bind it.
		var err error
		for range 3 {
			if port, err = freePort(); err != nil {
				continue
			}
			var p *proc
			if p, _, err = launchVersitygw(path, scheme, port, args, root, client); err == nil {
				return p, port, nil
			}
		}
		return nil, 0, err
	})
	if err != nil {
		return nil, err
	}
	if srvTLS != nil {
		s.RootCAs = srvTLS.RootCAs
	}
	return s, nil
}

// launchVersitygw starts one versitygw process on 127.0.0.1:port and waits
// until it is healthy.
func launchVersitygw(path, scheme string, port int, args []string, root string, client *http.Client) (*proc, int, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args = append(append(args[:len(args):len(args)], "--port", addr), "posix", root)
	p, err := startProc(path, args, nil, "")
	if err != nil {
		return nil, 0, err
	}
	if err := p.waitHealthy(scheme+"://"+addr+"/healthz", client, 20*time.Second); err != nil {
		_ = p.stop(5 * time.Second)
		return nil, 0, fmt.Errorf("%s on %s: %w", path, addr, err)
	}
	return p, port, nil
}
