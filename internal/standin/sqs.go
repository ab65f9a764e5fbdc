package standin

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fauxqs is the SQS stand-in: fauxqs on Node 22, through a launcher that
// binds 127.0.0.1 only (internal/queue/sqsqueue/testdata/fauxqs-loopback.mjs).
// It accepts any credentials and keeps queues in memory.
var fauxqs = binary{
	what:   "SQS stand-in (fauxqs)",
	envVar: "POSTERN_FAUXQS",
	cached: ".ci/cache/sqs/bin/fauxqs-loopback",
	onPath: "fauxqs-loopback",
	hint:   "scripts/ci/install-sqs-standin.sh",
}

// fauxqsReady starts the line the launcher prints once listening.
const fauxqsReady = "fauxqs listening on "

// SQS returns the endpoint of the SQS stand-in that the test binary
// shares, starting it on first use. Tests share it by making queues of
// their own (unique names) in it; a test that stops the server uses
// StartSQS instead.
func SQS(t testing.TB) (endpoint string) {
	t.Helper()
	return shared.sqs.get(t, fauxqs, startFauxqs).Endpoint
}

// StartSQS starts an SQS stand-in for t alone, stopped when t ends.
func StartSQS(t testing.TB) *Server {
	t.Helper()
	return startOwn(t, fauxqs, startFauxqs)
}

func startFauxqs(path string) (*Server, error) {
	return newServer(fauxqs.what, "http", func(port int) (*proc, int, error) {
		return launchFauxqs(path, port)
	})
}

// launchFauxqs starts the launcher on port (0: any free port) and waits
// until it answers.
func launchFauxqs(path string, port int) (*proc, int, error) {
	p, err := startProc(path, nil, []string{"FAUXQS_PORT=" + strconv.Itoa(port), "FAUXQS_LOGGER=false"}, fauxqsReady)
	if err != nil {
		return nil, 0, err
	}
	got, err := fauxqsListening(p)
	if err == nil {
		err = p.waitHealthy(fmt.Sprintf("http://127.0.0.1:%d/health", got), http.DefaultClient, 10*time.Second)
	}
	if err == nil && port != 0 && got != port {
		err = fmt.Errorf("listening on port %d, asked for %d", got, port)
	}
	if err != nil {
		_ = p.stop(5 * time.Second)
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return p, got, nil
}

// fauxqsListening waits for the launcher's announcement and checks that it
// listens on loopback only.
func fauxqsListening(p *proc) (port int, err error) {
	var addr string
	select {
	case addr = <-p.ready:
	case <-p.exited:
		return 0, p.exitError()
	case <-time.After(30 * time.Second):
		return 0, errors.New("not listening after 30s")
	}
	u, err := url.Parse(strings.TrimSpace(addr))
	if err != nil {
		return 0, fmt.Errorf("listening address %q: %w", addr, err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		return 0, fmt.Errorf("listening on %q, want 127.0.0.1 only", addr)
	}
	if port, err = strconv.Atoi(u.Port()); err != nil {
		return 0, fmt.Errorf("listening address %q: %w", addr, err)
	}
	return port, nil
}
