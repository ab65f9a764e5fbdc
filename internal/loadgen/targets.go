package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Target is a server under test. Start runs a fresh instance with its data
// under dir (a new empty directory) and returns once it answers SMTP.
type Target struct {
	Name  string
	Start func(ctx context.Context, dir string) (*Proc, error)
	// Forks says the server is a tree of processes (Postfix), whose peak
	// RSS is not one number; CPU is still summed over the tree.
	Forks bool
}

// Proc is a running server under test: a child process (and its process
// group, for servers like Postfix that fork).
type Proc struct {
	Addr string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	// Delivered, when set, counts messages the server has handed on (the
	// gateway's webhook calls), so the driver can wait for its pipeline.
	Delivered func() int64
	// Allocated, when set, is the bytes the server's Go heap has
	// allocated since it started (the gateway's
	// go_memstats_alloc_bytes_total), for allocations per message.
	Allocated func() (int64, error)
	stop      func() error // extra teardown after the process ends
}

// Pid is the server's process id, the root of its process tree.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop asks the server's process group to end (SIGTERM), kills it after
// grace, and runs the target's own teardown.
func (p *Proc) Stop(grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Forked servers may leave members of the group behind their leader.
	syscall.Kill(-pgid, syscall.SIGKILL)
	if p.stop != nil {
		return p.stop()
	}
	return nil
}

// startProc starts cmd in its own process group with output to logPath and
// waits until addr answers with an SMTP greeting.
func startProc(ctx context.Context, cmd *exec.Cmd, addr, logPath string) (*Proc, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("loadgen: start %s: %w", cmd.Path, err)
	}
	p := &Proc{Addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); out.Close(); close(p.done) }()
	if err := waitGreeting(ctx, addr, p.done, 30*time.Second); err != nil {
		p.Stop(time.Second)
		tail, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("loadgen: %s did not come up: %w\n%s", filepath.Base(cmd.Path), err, lastBytes(tail, 2000))
	}
	return p, nil
}

// waitGreeting dials addr until it answers 220, the process ends, or
// timeout passes.
func waitGreeting(ctx context.Context, addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s, err := Dial(ctx, addr, "ready.bench.test", 2*time.Second)
		if err == nil {
			s.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("process exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no SMTP greeting on %s within %s: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	addrs, err := freeAddrs(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// freeAddrs returns n loopback addresses with ports that were free a
// moment ago, all different: each is held until all are found.
func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("loadgen: free port: %w", err)
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out, nil
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// SinkTarget is Postfix's smtp-sink at path: the protocol ceiling.
func SinkTarget(path string) Target {
	return Target{Name: "smtp-sink", Start: func(ctx context.Context, dir string) (*Proc, error) {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		args := []string{addr, "256"}
		if os.Geteuid() == 0 {
			args = append([]string{"-u", "nobody"}, args...) // it refuses to run as root
		}
		return startProc(ctx, exec.CommandContext(ctx, path, args...), addr, filepath.Join(dir, "server.log"))
	}}
}

// SelfTarget runs this package's servers in a child process: self is a
// binary whose "serve" command is Serve (cmd/postern-bench), kind one of
// "discard", "fsync", "ingest-each", "ingest-group".
func SelfTarget(name, self, kind string) Target {
	return Target{Name: name, Start: func(ctx context.Context, dir string) (*Proc, error) {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		data := filepath.Join(dir, "data")
		if err := os.Mkdir(data, 0o700); err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		cmd := exec.CommandContext(ctx, self, "serve", "-kind", kind, "-addr", addr, "-dir", data)
		return startProc(ctx, cmd, addr, filepath.Join(dir, "server.log"))
	}}
}

// GatewayTarget runs the gateway binary at path in local mode with one
// webhook route to a receiver in this process that answers 204 and counts.
// extraConfig is appended to the YAML (top-level keys).
func GatewayTarget(name, path, extraConfig string) Target {
	return Target{Name: name, Start: func(ctx context.Context, dir string) (*Proc, error) {
		addrs, err := freeAddrs(2) // SMTP and admin
		if err != nil {
			return nil, err
		}
		addr, admin := addrs[0], addrs[1]
		var delivered atomic.Int64
		hook := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			delivered.Add(1)
			w.WriteHeader(http.StatusNoContent)
		}), ReadHeaderTimeout: 10 * time.Second}
		hl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("loadgen: webhook receiver: %w", err)
		}
		go hook.Serve(hl)
		data := filepath.Join(dir, "data")
		cfg := gatewayConfig(data, addr, admin, "http://"+hl.Addr().String()+"/hook", extraConfig)
		cfgPath := filepath.Join(dir, "gateway.yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			hook.Close()
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		p, err := startProc(ctx, exec.CommandContext(ctx, path, "-config", cfgPath), addr, filepath.Join(dir, "server.log"))
		if err != nil {
			hook.Close()
			return nil, err
		}
		p.Delivered = delivered.Load
		p.Allocated = func() (int64, error) { return gatewayAllocated(admin, filepath.Join(data, "admin-token")) }
		p.stop = hook.Close
		return p, nil
	}}
}

// gatewayAllocated reads go_memstats_alloc_bytes_total from the gateway's
// /metrics on admin, with the admin token in tokenFile.
func gatewayAllocated(admin, tokenFile string) (int64, error) {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return 0, fmt.Errorf("loadgen: admin token: %w", err)
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("loadgen: metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("loadgen: metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_alloc_bytes_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("loadgen: metrics: no go_memstats_alloc_bytes_total (%v)", sc.Err())
}

// gatewayConfig is the gateway's configuration for a benchmark: local mode
// on dataDir, SMTP on addr without TLS, the admin listener on admin (its
// metrics give allocations), no per-IP session bound (all load comes from
// 127.0.0.1), room for 64 MiB messages, and one webhook route to hookURL.
// Logging stays at the default (info, JSON).
func gatewayConfig(dataDir, addr, admin, hookURL, extra string) string {
	return fmt.Sprintf(`hostname: gw.bench.test
data_dir: %s
listeners: [{name: smtp, addr: "%s"}]
admin: {addr: "%s"}
tls: {disable: true}
limits: {max_sessions_per_ip: 1000, max_message_bytes: 67108864}
log: {level: info, format: json}
routes:
  - name: app
    match: {recipients: ["*"]}
    webhook: {url: "%s", secrets: ["bench-secret"], allow_private: true}
%s`, dataDir, addr, admin, hookURL, extra)
}
