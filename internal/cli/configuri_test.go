package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/postern/postern/internal/standin"
)

// On AWS the gateway's task has no configuration file: with no -config it
// reads the object POSTERN_CONFIG_URI names, as the functions do, and
// starts with it.
func TestGatewayReadsConfigURI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the gateway")
	}
	ep, key, secret := standin.S3(t)
	standin.IsolateAWSEnv(t, standin.Region)
	c := s3.New(s3.Options{Region: standin.Region, BaseEndpoint: aws.String(ep), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")})
	bucket := fmt.Sprintf("cfg-%d", time.Now().UnixNano())
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	yaml := fmt.Sprintf("hostname: from-s3.test\ndata_dir: %s\nlisteners: [{name: smtp, addr: %q}]\nadmin: {addr: \"\"}\n",
		filepath.Join(t.TempDir(), "data"), addr)
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("config/postern.yaml"),
		Body: strings.NewReader(yaml)}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"POSTERN_CONFIG_URI":  "s3://" + bucket + "/config/postern.yaml",
		"POSTERN_S3_ENDPOINT": ep,
		"POSTERN_AWS_REGION":  standin.Region,
	}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr strings.Builder
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, Env{Getenv: getenv, Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr}, nil)
	}()

	var greeting string
	deadline := time.Now().Add(20 * time.Second)
	for !strings.HasPrefix(greeting, "220 ") {
		select {
		case code := <-exit:
			t.Fatalf("gateway exited %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no greeting on %s", addr)
		}
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			greeting, _ = bufio.NewReader(conn).ReadString('\n')
			conn.Close()
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !strings.HasPrefix(greeting, "220 from-s3.test ") {
		t.Errorf("greeting %q: not the hostname of the configuration in S3", greeting)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not stop")
	}
}
