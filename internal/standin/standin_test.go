package standin

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
)

func TestMain(m *testing.M) { Main(m) }

// get fetches url and returns its status, or the error.
func get(client *http.Client, url string) (int, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func TestSQSStopAndStartKeepTheEndpoint(t *testing.T) {
	t.Parallel()
	srv := StartSQS(t)
	if !strings.HasPrefix(srv.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoint %q, want http on 127.0.0.1", srv.Endpoint)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if code, err := get(client, srv.Endpoint+"/health"); err != nil || code != http.StatusOK {
		t.Fatalf("GET /health = %d, %v; want 200", code, err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := get(client, srv.Endpoint+"/health"); err == nil {
		t.Fatal("the stopped server still answers")
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if code, err := get(client, srv.Endpoint+"/health"); err != nil || code != http.StatusOK {
		t.Fatalf("after Start, GET /health = %d, %v; want 200", code, err)
	}
}

func TestS3WithTLS(t *testing.T) {
	t.Parallel()
	srv := StartS3(t, S3Options{TLS: true})
	if !strings.HasPrefix(srv.Endpoint, "https://127.0.0.1:") || srv.RootCAs == nil {
		t.Fatalf("endpoint %q with RootCAs %v, want https on 127.0.0.1 and a pool", srv.Endpoint, srv.RootCAs)
	}
	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: srv.RootCAs, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}}
	if code, err := get(trusting, srv.Endpoint+"/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("GET /healthz = %d, %v; want 200", code, err)
	}
	var certErr *tls.CertificateVerificationError
	if _, err := get(&http.Client{Timeout: 5 * time.Second}, srv.Endpoint+"/healthz"); !errors.As(err, &certErr) {
		t.Fatalf("GET without the pool = %v, want a certificate error", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if code, err := get(trusting, srv.Endpoint+"/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("after Start, GET /healthz = %d, %v; want 200", code, err)
	}
}

func TestSharedServersAreShared(t *testing.T) {
	t.Parallel()
	a, b := SQS(t), SQS(t)
	if a != b {
		t.Errorf("SQS returned %q, then %q; want one server", a, b)
	}
	ep, key, secret := S3(t)
	if ep2, _, _ := S3(t); ep2 != ep {
		t.Errorf("S3 returned %q, then %q; want one server", ep, ep2)
	}
	if key != S3AccessKey || secret != S3SecretKey {
		t.Errorf("S3 credentials %q/%q, want S3AccessKey/S3SecretKey", key, secret)
	}
	if code, err := get(&http.Client{Timeout: 5 * time.Second}, ep+"/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("GET %s/healthz = %d, %v; want 200", ep, code, err)
	}
}

// recordingTB notes Fatalf and Skipf instead of ending the test.
type recordingTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordingTB) Helper()                           {}
func (r *recordingTB) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recordingTB) Skipf(format string, args ...any)  { r.skip = fmt.Sprintf(format, args...) }

// Not parallel: t.Setenv.
func TestMissingSkipsUnlessRequired(t *testing.T) {
	b := binary{what: "thing", envVar: "POSTERN_TEST_THING", hint: "scripts/ci/install-thing.sh"}
	missing := errors.New("not here")
	for _, tc := range []struct {
		require, ci         string
		missing, err        error
		wantFatal, wantSkip bool
	}{
		{missing: missing, wantSkip: true},
		{require: "1", missing: missing, wantFatal: true},
		{ci: "true", missing: missing, wantFatal: true},
		{err: errors.New("crashed"), wantFatal: true},
		{require: "1"},
	} {
		t.Setenv(RequireEnv, tc.require)
		t.Setenv("CI", tc.ci)
		r := &recordingTB{TB: t}
		require(r, b, tc.missing, tc.err)
		if (r.fatal != "") != tc.wantFatal || (r.skip != "") != tc.wantSkip {
			t.Errorf("require=%q CI=%q missing=%v err=%v: fatal %q, skip %q", tc.require, tc.ci, tc.missing, tc.err, r.fatal, r.skip)
		}
		if msg := r.fatal + r.skip; tc.missing != nil && !strings.Contains(msg, b.hint) {
			t.Errorf("message %q does not name the install script", msg)
		}
	}
}

// Not parallel: t.Setenv.
func TestLocate(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "thing")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	b := binary{envVar: "POSTERN_TEST_THING", cached: ".ci/cache/bin/no-such-thing", onPath: "no-such-thing-on-path"}

	t.Setenv(b.envVar, exe)
	if p, missing, err := b.locate(); p != exe || missing != nil || err != nil {
		t.Errorf("with %s set: %q, %v, %v; want %q", b.envVar, p, missing, err, exe)
	}
	t.Setenv(b.envVar, filepath.Join(dir, "gone"))
	if _, missing, err := b.locate(); missing != nil || err == nil {
		t.Errorf("with %s naming nothing: missing %v, err %v; want an error, not a missing install", b.envVar, missing, err)
	}
	t.Setenv(b.envVar, "")
	if _, missing, err := b.locate(); missing == nil || err != nil {
		t.Errorf("with nothing installed: missing %v, err %v; want missing", missing, err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	b.onPath = "thing"
	if p, missing, err := b.locate(); p != exe || missing != nil || err != nil {
		t.Errorf("on PATH: %q, %v, %v; want %q", p, missing, err, exe)
	}
}

func TestLineWatchFindsASplitLine(t *testing.T) {
	t.Parallel()
	found := make(chan string, 1)
	tail := &tailBuffer{max: 10}
	w := &lineWatch{tail: tail, prefix: []byte("ready at "), found: found}
	for _, chunk := range []string{"starting\nrea", "dy at http://127.0.0.1", ":9\r\nready at other\n"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case got := <-found:
		if got != "http://127.0.0.1:9" {
			t.Errorf("found %q, want the rest of the first ready line", got)
		}
	default:
		t.Fatal("the ready line was not found")
	}
	if got := tail.String(); got != " at other\n" {
		t.Errorf("tail %q, want the last 10 bytes", got)
	}
}

// Not parallel: t.Setenv.
func TestIsolateAWSEnv(t *testing.T) {
	t.Setenv("AWS_PROFILE", "someone-elses")
	t.Setenv("AWS_ENDPOINT_URL", "http://192.0.2.1:1")
	IsolateAWSEnv(t, "eu-central-1")
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	creds, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	if creds.AccessKeyID != S3AccessKey || creds.SecretAccessKey != S3SecretKey || cfg.Region != "eu-central-1" {
		t.Errorf("default chain gives %s/%s in %q, want the stand-in credentials in eu-central-1", creds.AccessKeyID, creds.SecretAccessKey, cfg.Region)
	}
	if cfg.BaseEndpoint != nil {
		t.Errorf("endpoint override %q survived", *cfg.BaseEndpoint)
	}
}
