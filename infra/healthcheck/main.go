// Command healthcheck is the gateway container's health probe: it asks the
// gateway's admin listener for /healthz and exits 0 when the answer is 200.
// The image is distroless (no shell, no curl), so Docker's HEALTHCHECK and
// the ECS container health check run this static binary instead.
//
// The admin address comes from -addr, else POSTERN_ADMIN_ADDR, else the
// default 127.0.0.1:8025; a wildcard host (":8025", "0.0.0.0:8025") is
// probed on loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "admin listener host:port (default $POSTERN_ADMIN_ADDR or 127.0.0.1:8025)")
	path := fs.String("path", "/healthz", "path to ask: /healthz (alive) or /readyz (store and queue answer)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	target := *addr
	if target == "" {
		target = getenv("POSTERN_ADMIN_ADDR")
	}
	if target == "" {
		target = "127.0.0.1:8025"
	}
	url, err := probeURL(target, *path)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := probe(ctx, url); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %s: %v\n", url, err)
		return 1
	}
	return 0
}

// probeURL turns a listen address into the URL to ask, probing wildcard
// listeners on loopback.
func probeURL(addr, path string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("admin address %q is not host:port: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	if len(path) == 0 || path[0] != '/' {
		return "", fmt.Errorf("path %q must start with /", path)
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}

func probe(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	// A plain transport: no proxy from the environment for a loopback probe.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}
