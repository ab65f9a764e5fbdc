// Package lambdart runs a Lambda function's bootstrap binary the way AWS
// Lambda runs a provided.al2023 function: as a process that fetches
// invocations from the Lambda Runtime API over HTTP and posts back a
// response or an error. It serves that API on 127.0.0.1, so tests invoke
// the real function binaries rather than their handlers.
package lambdart

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// Config describes the function a Runtime runs.
type Config struct {
	// Bootstrap is the function's executable (see Build).
	Bootstrap string
	// FunctionName; default "postern-test".
	FunctionName string
	// Region; default us-east-1.
	Region string
	// Timeout is the function's configured timeout: each invocation's
	// deadline is this far after Invoke starts, and a function still
	// running then is killed. Default 30s.
	Timeout time.Duration
	// MemoryMB is reported in AWS_LAMBDA_FUNCTION_MEMORY_SIZE; default 128.
	MemoryMB int
	// Credentials the function's role would provide; empty ones are not
	// set.
	AccessKeyID, SecretAccessKey, SessionToken string
	// Env is added after the Lambda variables (KEY=VALUE; later entries
	// win). The function gets no other variables of the calling process,
	// as on Lambda.
	Env []string
	// Output receives the function's stdout and stderr (its CloudWatch
	// log). It must be safe for use until Close returns; nil discards.
	Output io.Writer
}

// Runtime serves the Runtime API for one function and runs its process:
// one execution environment, so one invocation at a time. The process is
// started by the first Invoke and again after it exits or is killed (a
// crash or a timeout), as Lambda starts a fresh environment.
type Runtime struct {
	cfg Config
	arn string
	ln  net.Listener
	srv *http.Server

	invokeMu sync.Mutex // held for a whole invocation

	mu      sync.Mutex
	closed  bool
	done    chan struct{} // closed by Close
	cur     *instance
	pending map[string]*invocation // by request id, until answered
}

// invocation is one event on its way through the function.
type invocation struct {
	id       string
	trace    string
	payload  []byte
	deadline time.Time
	answered bool        // a response or error was claimed; guarded by Runtime.mu
	result   chan result // buffered for the one answer
}

type result struct {
	body []byte
	err  error
}

// Start serves the Runtime API on a free 127.0.0.1 port. The function
// process starts with the first Invoke.
func Start(cfg Config) (*Runtime, error) {
	if cfg.Bootstrap == "" {
		return nil, errors.New("lambdart: Config.Bootstrap is empty")
	}
	cfg.FunctionName = cmp.Or(cfg.FunctionName, "postern-test")
	cfg.Region = cmp.Or(cfg.Region, "us-east-1")
	cfg.Timeout = cmp.Or(cfg.Timeout, 30*time.Second)
	cfg.MemoryMB = cmp.Or(cfg.MemoryMB, 128)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("lambdart: listen: %w", err)
	}
	r := &Runtime{
		cfg:     cfg,
		arn:     fmt.Sprintf("arn:aws:lambda:%s:000000000000:function:%s", cfg.Region, cfg.FunctionName),
		ln:      ln,
		done:    make(chan struct{}),
		pending: map[string]*invocation{},
	}
	r.srv = &http.Server{
		Handler:           r.api(),
		ReadHeaderTimeout: 10 * time.Second,
		// Each connection remembers the process that was current when it
		// was accepted, so a poll left over from a killed process can
		// never take an invocation meant for its successor.
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			r.mu.Lock()
			defer r.mu.Unlock()
			return context.WithValue(ctx, instanceKey{}, r.cur)
		},
	}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Addr is the Runtime API's host:port, as in AWS_LAMBDA_RUNTIME_API.
func (r *Runtime) Addr() string { return r.ln.Addr().String() }

// FunctionARN is the ARN the function sees as invoked.
func (r *Runtime) FunctionARN() string { return r.arn }

// Invoke runs one invocation with payload (the event JSON) and returns the
// function's response. A function that reports an error, crashes or runs
// past its timeout yields a *FunctionError; ctx ending returns ctx.Err()
// and, if the function had taken the event, kills it (its next invocation
// starts a fresh process).
func (r *Runtime) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	r.invokeMu.Lock()
	defer r.invokeMu.Unlock()
	inv := &invocation{id: newRequestID(), trace: newTraceID(), payload: payload,
		deadline: time.Now().Add(r.cfg.Timeout), result: make(chan result, 1)}
	r.mu.Lock()
	r.pending[inv.id] = inv
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, inv.id)
		r.mu.Unlock()
	}()
	timer := time.NewTimer(time.Until(inv.deadline))
	defer timer.Stop()

	inst, err := r.handOver(ctx, inv, timer.C)
	if err != nil {
		return nil, err
	}
	select {
	case res := <-inv.result:
		return res.body, res.err
	case <-inst.exited:
		// The runtime reports an error and then exits (a panic): its
		// answer arrived before the exit, so it is the one to give.
		select {
		case res := <-inv.result:
			return res.body, res.err
		default:
		}
		return nil, r.exitError(inst, false)
	case <-ctx.Done():
		r.kill(inst)
		return nil, ctx.Err()
	case <-timer.C:
		r.kill(inst)
		return nil, &FunctionError{Type: TypeTimeout,
			Message: fmt.Sprintf("Task timed out after %.2f seconds", r.cfg.Timeout.Seconds())}
	case <-r.done:
		return nil, ErrClosed
	}
}

// handOver gives inv to a process's /next poll and returns that process.
// A process that served earlier invocations and has exited since (it
// crashed after answering) is replaced, as Lambda replaces a broken
// environment; one that exits before taking its first invocation failed
// to initialise.
func (r *Runtime) handOver(ctx context.Context, inv *invocation, deadline <-chan time.Time) (*instance, error) {
	for {
		inst, err := r.instance()
		if err != nil {
			return nil, err
		}
		select {
		case inst.next <- inv:
			inst.served = true
			return inst, nil
		case <-inst.exited:
			if inst.served {
				continue
			}
			return nil, r.exitError(inst, true)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			r.kill(inst)
			return nil, &FunctionError{Type: TypeTimeout, Init: true,
				Message: fmt.Sprintf("the function did not ask for the invocation within %s", r.cfg.Timeout)}
		case <-r.done:
			return nil, ErrClosed
		}
	}
}

// Close kills the function's process (SIGTERM, then SIGKILL after two
// seconds), as Lambda ends an environment, and then stops serving the API.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true // no process starts from now on
	inst := r.cur
	r.mu.Unlock()
	if inst != nil {
		_ = inst.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-inst.exited:
		case <-time.After(2 * time.Second):
			r.kill(inst)
		}
	}
	close(r.done)
	return r.srv.Close()
}
