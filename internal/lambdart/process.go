package lambdart

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// instance is one process of the function.
type instance struct {
	cmd     *exec.Cmd
	next    chan *invocation // its /next polls take invocations from here
	exited  chan struct{}    // closed once the process has exited
	waitErr error            // set before exited closes
	initErr *FunctionError   // posted to /runtime/init/error; guarded by Runtime.mu
	served  bool             // took an invocation; touched by Invoke only
}

// instance returns the running process, starting one if there is none.
func (r *Runtime) instance() (*instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if r.cur != nil {
		select {
		case <-r.cur.exited:
		default:
			return r.cur, nil
		}
	}
	cmd := exec.Command(r.cfg.Bootstrap)
	cmd.Dir = filepath.Dir(r.cfg.Bootstrap) // LAMBDA_TASK_ROOT, as /var/task
	cmd.Env = r.environ()
	if r.cfg.Output != nil {
		cmd.Stdout, cmd.Stderr = r.cfg.Output, r.cfg.Output
	}
	cmd.WaitDelay = 2 * time.Second
	inst := &instance{cmd: cmd, next: make(chan *invocation), exited: make(chan struct{})}
	// Current before it starts, so its first connection is tagged with it.
	r.cur = inst
	if err := cmd.Start(); err != nil {
		close(inst.exited)
		return nil, fmt.Errorf("lambdart: start %s: %w", r.cfg.Bootstrap, err)
	}
	go func() {
		inst.waitErr = cmd.Wait()
		close(inst.exited)
	}()
	return inst, nil
}

// environ is the process environment Lambda gives a provided.al2023
// function, plus Config.Env.
func (r *Runtime) environ() []string {
	c := r.cfg
	dir := filepath.Dir(c.Bootstrap)
	env := []string{
		"AWS_LAMBDA_RUNTIME_API=" + r.Addr(),
		"AWS_LAMBDA_FUNCTION_NAME=" + c.FunctionName,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(c.MemoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + c.FunctionName,
		"AWS_LAMBDA_LOG_STREAM_NAME=" + time.Now().UTC().Format("2006/01/02") + "/[$LATEST]" + randomHex(16),
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023",
		"AWS_REGION=" + c.Region,
		"AWS_DEFAULT_REGION=" + c.Region,
		"_HANDLER=bootstrap",
		"LAMBDA_TASK_ROOT=" + dir,
		"LAMBDA_RUNTIME_DIR=" + dir,
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"PATH=/usr/local/bin:/usr/bin:/bin",
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": c.AccessKeyID, "AWS_SECRET_ACCESS_KEY": c.SecretAccessKey, "AWS_SESSION_TOKEN": c.SessionToken,
	} {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return append(env, c.Env...)
}

// kill ends inst at once and waits until it has gone.
func (r *Runtime) kill(inst *instance) {
	_ = inst.cmd.Process.Kill()
	<-inst.exited
}

// exitError is the error of an invocation whose process exited, before
// taking it (init) or while handling it: what it posted to
// /runtime/init/error, or Lambda's Runtime.ExitError.
func (r *Runtime) exitError(inst *instance, init bool) error {
	r.mu.Lock()
	initErr := inst.initErr
	r.mu.Unlock()
	if initErr != nil {
		return initErr
	}
	msg := "Runtime exited without providing a reason"
	if inst.waitErr != nil {
		msg = "Runtime exited with error: " + inst.waitErr.Error()
	}
	return &FunctionError{Type: TypeExit, Message: msg, Init: init}
}

// newRequestID returns a random UUID, as Lambda request ids are.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newTraceID returns an X-Ray trace header that is not sampled.
func newTraceID() string {
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", time.Now().Unix(), randomHex(12), randomHex(8))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
