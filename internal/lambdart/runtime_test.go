package lambdart_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/lambdart"
)

// logWriter sends the function's log lines to the test's log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type reply struct {
	Text        string            `json:"text"`
	RequestID   string            `json:"request_id"`
	FunctionARN string            `json:"function_arn"`
	DeadlineMs  int64             `json:"deadline_ms"`
	PID         int               `json:"pid"`
	Env         map[string]string `json:"env"`
}

var uuid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestRuntime builds testdata/fn once, as deployment builds a function,
// and runs it under the harness in every subtest.
func TestRuntime(t *testing.T) {
	bin, err := lambdart.Build(t.Context(), "./testdata/fn", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := func(t *testing.T, cfg lambdart.Config) *lambdart.Runtime {
		t.Helper()
		cfg.Bootstrap, cfg.Output = bin, logWriter{t}
		r, err := lambdart.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return r
	}
	invoke := func(t *testing.T, r *lambdart.Runtime, event string) reply {
		t.Helper()
		out, err := r.Invoke(t.Context(), []byte(event))
		if err != nil {
			t.Fatalf("Invoke(%s): %v", event, err)
		}
		var rep reply
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("response %q: %v", out, err)
		}
		return rep
	}
	wantError := func(t *testing.T, err error, typ string) *lambdart.FunctionError {
		t.Helper()
		var fe *lambdart.FunctionError
		if !errors.As(err, &fe) || fe.Type != typ {
			t.Fatalf("error %v, want a FunctionError of type %s", err, typ)
		}
		return fe
	}

	t.Run("ResponseContextAndEnvironment", func(t *testing.T) {
		t.Parallel()
		const timeout = 7 * time.Second
		r := start(t, lambdart.Config{FunctionName: "fn-test", Region: "eu-west-1", Timeout: timeout,
			AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", Env: []string{"FN_EXTRA=extra"}})
		before := time.Now()
		got := invoke(t, r, `{"text":"hello"}`)
		after := time.Now()
		if got.Text != "hello" {
			t.Errorf("text %q, want the event's", got.Text)
		}
		if !uuid.MatchString(got.RequestID) {
			t.Errorf("request id %q, want a UUID", got.RequestID)
		}
		if got.FunctionARN != r.FunctionARN() || got.FunctionARN != "arn:aws:lambda:eu-west-1:000000000000:function:fn-test" {
			t.Errorf("function ARN %q (runtime says %q)", got.FunctionARN, r.FunctionARN())
		}
		// The deadline header has millisecond precision.
		if lo, hi := before.Add(timeout).UnixMilli()-1, after.Add(timeout).UnixMilli(); got.DeadlineMs < lo || got.DeadlineMs > hi {
			t.Errorf("deadline %d ms, want between %d and %d (the invocation's start plus the timeout)", got.DeadlineMs, lo, hi)
		}
		want := map[string]string{"AWS_LAMBDA_FUNCTION_NAME": "fn-test", "_HANDLER": "bootstrap", "AWS_REGION": "eu-west-1",
			"AWS_ACCESS_KEY_ID": "AKIDTEST", "FN_EXTRA": "extra", "HOME": ""}
		for k, v := range want {
			if got.Env[k] != v {
				t.Errorf("function sees %s=%q, want %q", k, got.Env[k], v)
			}
		}
		if !strings.HasSuffix(bin, "/bootstrap") || got.Env["LAMBDA_TASK_ROOT"]+"/bootstrap" != bin {
			t.Errorf("LAMBDA_TASK_ROOT %q, want the directory of %s", got.Env["LAMBDA_TASK_ROOT"], bin)
		}
		again := invoke(t, r, `{"text":"again"}`)
		if again.PID != got.PID || again.RequestID == got.RequestID || again.Text != "again" {
			t.Errorf("second invocation: pid %d (first %d), request id %q (first %q): want the same process and a new id",
				again.PID, got.PID, again.RequestID, got.RequestID)
		}
	})

	t.Run("FunctionErrorKeepsTheProcess", func(t *testing.T) {
		t.Parallel()
		r := start(t, lambdart.Config{})
		first := invoke(t, r, `{}`)
		_, err := r.Invoke(t.Context(), []byte(`{"do":"fail","text":"not today"}`))
		if fe := wantError(t, err, "refusal"); fe.Message != "not today" || fe.Init {
			t.Errorf("error %+v, want the function's message", fe)
		}
		if next := invoke(t, r, `{}`); next.PID != first.PID {
			t.Errorf("pid %d after a function error, want the same process %d", next.PID, first.PID)
		}
	})

	t.Run("PanicRestartsTheProcess", func(t *testing.T) {
		t.Parallel()
		r := start(t, lambdart.Config{})
		first := invoke(t, r, `{}`)
		_, err := r.Invoke(t.Context(), []byte(`{"do":"panic","text":"oops"}`))
		if fe := wantError(t, err, "string"); fe.Message != "oops" || len(fe.StackTrace) == 0 {
			t.Errorf("error %+v, want the panic value and a stack trace", fe)
		}
		if next := invoke(t, r, `{}`); next.PID == first.PID {
			t.Errorf("the process that panicked (pid %d) took the next invocation", first.PID)
		}
	})

	t.Run("ExitIsRuntimeExitError", func(t *testing.T) {
		t.Parallel()
		r := start(t, lambdart.Config{})
		_, err := r.Invoke(t.Context(), []byte(`{"do":"exit"}`))
		if fe := wantError(t, err, lambdart.TypeExit); !strings.Contains(fe.Message, "exit status 3") {
			t.Errorf("error %+v, want the exit status", fe)
		}
		invoke(t, r, `{}`)
	})

	t.Run("TimeoutKillsAndRestarts", func(t *testing.T) {
		t.Parallel()
		r := start(t, lambdart.Config{Timeout: time.Second})
		first := invoke(t, r, `{}`)
		began := time.Now()
		_, err := r.Invoke(t.Context(), []byte(`{"do":"hang"}`))
		wantError(t, err, lambdart.TypeTimeout)
		if took := time.Since(began); took < 900*time.Millisecond || took > 5*time.Second {
			t.Errorf("timed out after %s, want about the 1s timeout", took)
		}
		if next := invoke(t, r, `{}`); next.PID == first.PID {
			t.Errorf("the timed-out process (pid %d) took the next invocation", first.PID)
		}
	})

	t.Run("CallerCancelKillsAndRestarts", func(t *testing.T) {
		t.Parallel()
		r := start(t, lambdart.Config{})
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if _, err := r.Invoke(ctx, []byte(`{"do":"hang"}`)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Invoke with a short context = %v, want context.DeadlineExceeded", err)
		}
		invoke(t, r, `{}`)
	})

	t.Run("InitError", func(t *testing.T) {
		t.Parallel()
		r := start(t, lambdart.Config{Env: []string{"FN_INIT_ERROR=no config"}})
		_, err := r.Invoke(t.Context(), []byte(`{}`))
		if fe := wantError(t, err, "Fn.InitFailed"); !fe.Init || fe.Message != "no config" {
			t.Errorf("error %+v, want the init error posted", fe)
		}
	})

	t.Run("ResponseTooLarge", func(t *testing.T) {
		t.Parallel()
		r := start(t, lambdart.Config{})
		_, err := r.Invoke(t.Context(), []byte(`{"do":"big"}`))
		wantError(t, err, lambdart.TypeResponseSize)
	})

	t.Run("OneInvocationAtATime", func(t *testing.T) {
		t.Parallel()
		r := start(t, lambdart.Config{})
		var wg sync.WaitGroup
		pids := make([]int, 4)
		for i := range pids {
			wg.Go(func() { pids[i] = invoke(t, r, `{}`).PID })
		}
		wg.Wait()
		for _, p := range pids[1:] {
			if p != pids[0] {
				t.Errorf("pids %v, want one process for every invocation", pids)
				break
			}
		}
	})

	t.Run("UnknownRequestIDAndStrangers", func(t *testing.T) {
		t.Parallel()
		r := start(t, lambdart.Config{})
		base := "http://" + r.Addr() + "/2018-06-01/runtime"
		resp, err := http.Post(base+"/invocation/no-such-id/response", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("response for an unknown request id: %d, want 400", resp.StatusCode)
		}
		// No function process is running yet, so this connection is not one.
		resp, err = http.Get(base + "/invocation/next")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("next from a connection no function made: %d, want 403", resp.StatusCode)
		}
	})

	t.Run("Closed", func(t *testing.T) {
		t.Parallel()
		r := start(t, lambdart.Config{})
		invoke(t, r, `{}`)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Invoke(t.Context(), []byte(`{}`)); !errors.Is(err, lambdart.ErrClosed) {
			t.Errorf("Invoke after Close = %v, want ErrClosed", err)
		}
	})
}
