package packaging_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// envInstall lets a developer run the install test on a machine of their
// own (as root); CI runs it always.
const envInstall = "POSTERN_PACKAGE_TEST"

// The .deb as an admin meets it: dpkg -i installs the binary, the config
// and the unit and makes the user and data_dir; the packaged binary runs as
// postern with the unit's ExecStart, capabilities and working directory
// and binds a privileged port; mail flows while a newer package is
// installed over it and the service restarts (a drain, then the new
// binary replays the spool), and every message that got 250 reaches its
// route; the admin's config is kept and the new default put beside it;
// remove keeps the data and purge alone deletes it.
//
// systemd does not run here (nor in CI), so the test plays its part: it
// starts and stops the unit's ExecStart the way systemd would (the user,
// the ambient capability, NOTIFY_SOCKET, SIGTERM within TimeoutStopSec),
// at the points where postinst's try-restart would.
func TestDebInstallUpgradeKeepsMail(t *testing.T) {
	if os.Getenv(envInstall) != "1" && !required() {
		t.Skipf("installs a package, a user and /var/lib/postern on this machine: set %s=1 (as root) to run it; CI runs it", envInstall)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the install test needs root (dpkg -i, useradd)")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "setpriv", "systemd-analyze", "getent", "useradd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found on PATH; the install test needs it", tool)
		}
	}
	needTool(t, "go", "install the Go go.mod names")
	// One install test at a time on a machine (two suites may run at once):
	// the lock is released when the test's process ends, however it ends.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "postern-package-test.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if st := dpkgStatus(t); st != "" {
		if !strings.Contains(st, "~test") {
			t.Fatalf("a postern package (%s) is installed on this machine; the test would replace it", st)
		}
		run(t, "dpkg", "--purge", "postern") // left by an earlier run of this test
	}
	if _, err := os.Stat("/usr/bin/postern"); err == nil {
		t.Fatal("/usr/bin/postern exists outside a package; the test would overwrite it")
	}
	_, userErr := user.Lookup("postern")
	hadUser := userErr == nil
	t.Cleanup(func() {
		if dpkgStatus(t) != "" {
			run(t, "dpkg", "--purge", "postern")
		}
		os.RemoveAll("/var/lib/postern")
		os.RemoveAll("/etc/postern")
		if !hadUser {
			exec.Command("userdel", "postern").Run()
			exec.Command("groupdel", "postern").Run()
		}
	})

	// Two builds, the second with a changed default config.
	root := repoRoot(t)
	work := t.TempDir()
	newConfig := filepath.Join(work, "postern-v2.yaml")
	orig, err := os.ReadFile(filepath.Join(root, "packaging", "postern.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newConfig, append(orig, "# a default changed in 0.0.2\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	debV1 := release(t, root, "0.0.1~test1", filepath.Join(work, "v1"), filepath.Join(root, "packaging", "postern.yaml"))
	debV2 := release(t, root, "0.0.2~test2", filepath.Join(work, "v2"), newConfig)

	// Install.
	run(t, "dpkg", "-i", debV1)
	checkInstalled(t, "0.0.1~test1")
	if out, err := exec.Command("systemd-analyze", "verify", "--man=no", "/usr/lib/systemd/system/postern.service").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
	}

	// The admin's edit: SMTP on a free privileged port (25 unless taken),
	// the admin listener on any free port.
	port := freePrivilegedPort(t)
	smtpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	const cfgPath = "/etc/postern/postern.yaml"
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(cfg), `addr: "127.0.0.1:25"`, `addr: "`+smtpAddr+`"`, 1)
	edited = strings.Replace(edited, `addr: "127.0.0.1:8025"`, `addr: "127.0.0.1:0"`, 1)
	if edited == string(cfg) {
		t.Fatal("the packaged config has no listener on 127.0.0.1:25 and admin on 127.0.0.1:8025 to edit")
	}
	edited += "# edited by the admin\n"
	if err := os.WriteFile(cfgPath, []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}

	svc := unitSection(t, readInstalledUnit(t), "Service")

	// Without the unit's ambient capability the unprivileged user cannot
	// bind the port: it is the capability that makes port 25 work.
	if out, err := startCmd(svc, false, nil).CombinedOutput(); err == nil || !strings.Contains(string(out), "permission denied") {
		t.Errorf("postern without CAP_NET_BIND_SERVICE on port %d: %v, want permission denied\n%s", port, err, out)
	}

	// Start, as systemd would, and send mail from now to the end.
	g1 := startService(t, svc)
	g1.waitReady(t)
	if v := g1.startedVersion(t); v != "0.0.1~test1" {
		t.Errorf("startup line names version %q, want 0.0.1~test1", v)
	}
	mail := startMail(smtpAddr, 3)
	defer mail.stop()
	mail.waitAcked(t, 20)

	// The upgrade: dpkg unpacks the new package while the old gateway
	// serves, then postinst restarts it (try-restart: stop, which drains,
	// then start, which replays the spool before READY).
	before := mail.count()
	run(t, "dpkg", "-i", "--force-confold", debV2)
	during := mail.count() - before
	g1.stop(t, svc)
	g2 := startService(t, svc)
	g2.waitReady(t)
	if v := g2.startedVersion(t); v != "0.0.2~test2" {
		t.Errorf("after the upgrade the startup line names version %q, want 0.0.2~test2", v)
	}
	// systemctl reload: the unit's ExecReload, as systemd runs it.
	reload := strings.ReplaceAll(unitValue(svc, "ExecReload"), "$MAINPID", strconv.Itoa(g2.cmd.Process.Pid))
	run(t, "sh", "-c", reload)
	g2.waitFor(t, "RELOADING=1", 10*time.Second)
	g2.waitFor(t, "READY=1", 10*time.Second)
	mail.waitAcked(t, mail.count()+20)
	ids, refusals := mail.stop()
	t.Logf("%d messages acknowledged (%d while dpkg unpacked the upgrade), %d connections refused or answered 4xx around the restart, on port %d", len(ids), during, refusals, port)
	if during == 0 {
		t.Error("no message was acknowledged while dpkg -i ran: the upgrade did not happen with mail in flight")
	}

	// Every 250 reached its route: the default route's outbox file.
	waitDelivered(t, ids, 90*time.Second)

	// The admin's config stayed; the changed default went beside it.
	if got, _ := os.ReadFile(cfgPath); string(got) != edited {
		t.Errorf("the upgrade changed the admin's %s", cfgPath)
	}
	if dist, err := os.ReadFile(cfgPath + ".dpkg-dist"); err != nil || !strings.Contains(string(dist), "# a default changed in 0.0.2") {
		t.Errorf("the new default is not beside the config as %s.dpkg-dist: %v", cfgPath, err)
	}
	checkInstalled(t, "0.0.2~test2")

	// Remove keeps the data and the config; purge alone deletes them.
	g2.stop(t, svc)
	run(t, "dpkg", "--remove", "postern")
	if _, err := os.Stat("/usr/bin/postern"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("/usr/bin/postern after dpkg --remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/var/lib/postern/outbox", ids[0]+".default.json")); err != nil {
		t.Errorf("dpkg --remove lost the data: %v", err)
	}
	if _, err := os.Stat(cfgPath); err != nil {
		t.Errorf("dpkg --remove lost the config: %v", err)
	}
	run(t, "dpkg", "--purge", "postern")
	for _, p := range []string{"/var/lib/postern", "/etc/postern", "/usr/lib/systemd/system/postern.service"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after dpkg --purge: %v", p, err)
		}
	}
	if st := dpkgStatus(t); st != "" {
		t.Errorf("dpkg still knows postern after purge: %s", st)
	}
}

// release runs scripts/release for linux/amd64 .deb only and returns the
// package's path.
func release(t *testing.T, root, version, out, config string) string {
	t.Helper()
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "scripts", "release"), "--version", version, "--out", out,
		"--targets", "linux/amd64", "--packagers", "deb", "--config", config)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release --version %s: %v\n%s", version, err, b)
	}
	t.Logf("scripts/release --version %s: %s", version, time.Since(start).Round(100*time.Millisecond))
	debs, _ := filepath.Glob(filepath.Join(out, "postern_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("scripts/release made %v, want one .deb", debs)
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil || !strings.Contains(string(sums), filepath.Base(debs[0])) {
		t.Errorf("SHA256SUMS does not list %s: %v", filepath.Base(debs[0]), err)
	}
	return debs[0]
}

// run runs a command that must succeed.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// dpkgStatus is the installed postern version, or "" when none is.
func dpkgStatus(t *testing.T) string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", "postern").Output()
	if err != nil {
		return ""
	}
	st, v, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if st == "not-installed" || st == "" {
		return ""
	}
	return st + " " + v
}

// checkInstalled checks what the package lays down and makes.
func checkInstalled(t *testing.T, version string) {
	t.Helper()
	if out := run(t, "/usr/bin/postern", "version"); !strings.Contains(out, "postern "+version+" ") {
		t.Errorf("postern version says %q, want %s", out, version)
	}
	u, err := user.Lookup("postern")
	if err != nil {
		t.Fatalf("no postern user: %v", err)
	}
	if ent := run(t, "getent", "passwd", "postern"); !strings.HasSuffix(strings.TrimSpace(ent), ":/var/lib/postern:/usr/sbin/nologin") {
		t.Errorf("postern user: %q, want home /var/lib/postern and shell nologin", ent)
	}
	uid, _ := strconv.Atoi(u.Uid)
	g, err := user.LookupGroup("postern")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	for _, f := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{"/usr/bin/postern", 0o755, 0, 0},
		{"/etc/postern", os.ModeDir | 0o750, 0, gid},
		{"/etc/postern/postern.yaml", 0o640, 0, gid},
		{"/var/lib/postern", os.ModeDir | 0o700, uid, gid},
		{"/usr/lib/systemd/system/postern.service", 0o644, 0, 0},
	} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != f.mode || int(st.Uid) != f.uid || int(st.Gid) != f.gid {
			t.Errorf("%s: %s %d:%d, want %s %d:%d", f.path, fi.Mode(), st.Uid, st.Gid, f.mode, f.uid, f.gid)
		}
	}
}

func readInstalledUnit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/usr/lib/systemd/system/postern.service")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// freePrivilegedPort is 25 if nothing listens there, else another free
// port under 1024.
func freePrivilegedPort(t *testing.T) int {
	t.Helper()
	for _, p := range append([]int{25, 587, 465}, func() []int {
		var ps []int
		for p := 1023; p >= 900; p-- {
			ps = append(ps, p)
		}
		return ps
	}()...) {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port under 1024 on 127.0.0.1")
	return 0
}

// startCmd is the unit's ExecStart as systemd runs it: as User and Group,
// with the ambient capability (when caps), UMask, WorkingDirectory and a
// plain environment.
func startCmd(svc [][2]string, caps bool, extraEnv []string) *exec.Cmd {
	args := []string{
		"--reuid=" + unitValue(svc, "User"), "--regid=" + unitValue(svc, "Group"), "--init-groups", "--no-new-privs",
	}
	if caps {
		c := strings.ToLower(strings.TrimPrefix(unitValue(svc, "AmbientCapabilities"), "CAP_"))
		args = append(args, "--inh-caps=+"+c, "--ambient-caps=+"+c, "--bounding-set=-all,+"+c)
	} else {
		args = append(args, "--bounding-set=-all")
	}
	args = append(args, "--")
	args = append(args, strings.Fields(unitValue(svc, "ExecStart"))...)
	umask := unitValue(svc, "UMask")
	cmd := exec.Command("sh", append([]string{"-c", "umask " + umask + " && exec setpriv \"$@\"", "sh"}, args...)...)
	cmd.Dir = unitValue(svc, "WorkingDirectory")
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}, extraEnv...)
	return cmd
}

// service is one run of the packaged gateway.
type service struct {
	cmd    *exec.Cmd
	notify *net.UnixConn
	states chan string // each datagram sent to NOTIFY_SOCKET
	exited chan error
	mu     sync.Mutex
	log    bytes.Buffer // stdout and stderr
}

func startService(t *testing.T, svc [][2]string) *service {
	t.Helper()
	// NOTIFY_SOCKET, where the unprivileged process can reach it.
	dir, err := os.MkdirTemp("", "postern-notify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(sock, 0o666)
	s := &service{notify: nc, states: make(chan string, 16), exited: make(chan error, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nc.Read(buf)
			if err != nil {
				close(s.states)
				return
			}
			s.states <- string(buf[:n])
		}
	}()
	s.cmd = startCmd(svc, true, []string{"NOTIFY_SOCKET=" + sock})
	pr, pw := io.Pipe()
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.log.Write(sc.Bytes())
			s.log.WriteByte('\n')
			s.mu.Unlock()
		}
	}()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait(); pw.Close(); nc.Close() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("gateway output (last 4 KiB):\n%s", s.tail())
		}
	})
	return s
}

func (s *service) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.log.Bytes()
	return string(b[max(0, len(b)-4096):])
}

// waitFor waits for a datagram holding assignment.
func (s *service) waitFor(t *testing.T, assignment string, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case st, ok := <-s.states:
			if !ok {
				t.Fatalf("the gateway exited before it sent %s", assignment)
			}
			if strings.Contains("\n"+st, "\n"+assignment+"\n") {
				return
			}
		case err := <-s.exited:
			s.exited <- err
			t.Fatalf("the gateway exited (%v) before it sent %s", err, assignment)
		case <-timeout:
			t.Fatalf("no %s from the gateway within %s", assignment, d)
		}
	}
}

func (s *service) waitReady(t *testing.T) {
	t.Helper()
	s.waitFor(t, "READY=1", 2*time.Minute)
}

// startedVersion is the version the postern started line names. The line
// is logged before READY=1 is sent, but its pipe is read on its own: wait
// for it a little.
func (s *service) startedVersion(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		out := s.log.String()
		s.mu.Unlock()
		for _, l := range strings.Split(out, "\n") {
			var rec struct{ Msg, Version string }
			if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "postern started" {
				return rec.Version
			}
		}
	}
	t.Fatal("no postern started line")
	return ""
}

// stop is systemctl stop: SIGTERM, then the gateway must say STOPPING=1
// and exit 0 within TimeoutStopSec.
func (s *service) stop(t *testing.T, svc [][2]string) {
	t.Helper()
	limit, err := time.ParseDuration(unitValue(svc, "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopping := false
	timeout := time.After(limit)
	for {
		select {
		case st, ok := <-s.states:
			if !ok {
				s.states = nil
				continue
			}
			if strings.HasPrefix(st, "STOPPING=1\n") {
				stopping = true
			}
		case err := <-s.exited:
			if err != nil {
				t.Errorf("the gateway exited with %v on SIGTERM", err)
			}
			if !stopping {
				t.Error("the gateway stopped without STOPPING=1")
			}
			t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
			return
		case <-timeout:
			t.Fatalf("the gateway did not stop within TimeoutStopSec=%s", limit)
		}
	}
}

// mailFlow is devices sending mail as fast as one message per connection
// and a short pause allow, each message retried (as an MTA would) until it
// gets 250.
type mailFlow struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	ids      []string // message ids from the 250 replies
	refusals int      // failed connections and 4xx replies
}

func startMail(addr string, senders int) *mailFlow {
	ctx, cancel := context.WithCancel(context.Background())
	m := &mailFlow{cancel: cancel}
	for i := range senders {
		m.wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				for ctx.Err() == nil {
					id, err := sendOne(addr, fmt.Sprintf("device-%d message %d", i, n))
					if err == nil {
						m.mu.Lock()
						m.ids = append(m.ids, id)
						m.mu.Unlock()
						break
					}
					m.mu.Lock()
					m.refusals++
					m.mu.Unlock()
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	return m
}

func (m *mailFlow) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ids)
}

func (m *mailFlow) waitAcked(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for m.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages acknowledged", m.count(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the flow (a message in flight is finished or dropped unacked)
// and returns what was acknowledged.
func (m *mailFlow) stop() ([]string, int) {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.ids...), m.refusals
}

// sendOne sends one message on a new connection and returns the id from
// the 250 reply to its DATA.
func sendOne(addr, subject string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	tp := textproto.NewConn(c)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return "", err
	}
	for _, step := range []struct {
		cmd  string
		code int
	}{
		{"EHLO printer.lan.test", 250},
		{"MAIL FROM:<printer@lan.test>", 250},
		{"RCPT TO:<scans@example.com>", 250},
		{"DATA", 354},
	} {
		if err := tp.PrintfLine("%s", step.cmd); err != nil {
			return "", err
		}
		if _, _, err := tp.ReadResponse(step.code); err != nil {
			return "", fmt.Errorf("%s: %w", step.cmd, err)
		}
	}
	w := tp.DotWriter()
	fmt.Fprintf(w, "From: printer@lan.test\r\nTo: scans@example.com\r\nSubject: %s\r\n\r\nscan attached (not really)\r\n", subject)
	if err := w.Close(); err != nil {
		return "", err
	}
	_, msg, err := tp.ReadResponse(250)
	if err != nil {
		return "", err
	}
	f := strings.Fields(msg)
	if len(f) == 0 {
		return "", fmt.Errorf("250 without an id: %q", msg)
	}
	id := strings.Trim(f[len(f)-1], "<>")
	tp.PrintfLine("QUIT")
	return id, nil
}

// waitDelivered waits until the default route has written every message's
// payload to data_dir/outbox.
func waitDelivered(t *testing.T, ids []string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	missing := ids
	for {
		var still []string
		for _, id := range missing {
			b, err := os.ReadFile(filepath.Join("/var/lib/postern/outbox", id+".default.json"))
			if err != nil || !bytes.Contains(b, []byte(id)) {
				still = append(still, id)
			}
		}
		missing = still
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages never reached the route (first: %v)", len(missing), len(ids), missing[:min(5, len(missing))])
		}
		time.Sleep(200 * time.Millisecond)
	}
}
