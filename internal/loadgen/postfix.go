package loadgen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// PostfixTarget runs a private Postfix instance (binary "postfix" at path)
// that accepts mail on loopback into its queue and keeps it there: every
// message is put on hold, so it is written and fsynced into the queue as
// any accepted message is, and then nothing else happens to it. This is the
// reliability peer: an MTA that answers 250 only once the message is safe.
//
// The instance has its own configuration, queue and data directories under
// the target's directory and does not touch the system's Postfix. Postfix's
// master must start as root (it then runs its daemons as mail_owner), so
// the target needs root and an existing "postfix" user; CanRunPostfix says
// whether this machine qualifies.
func PostfixTarget(path string) Target {
	return Target{Name: "postfix", Forks: true, Start: func(ctx context.Context, dir string) (*Proc, error) {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		etc, err := setupPostfix(ctx, path, dir, addr)
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, path, "-c", etc, "start-fg")
		p, err := startProc(ctx, cmd, addr, filepath.Join(dir, "server.log"))
		if err != nil {
			return nil, err
		}
		p.stop = func() error {
			// The queue holds files owned by postfix; removing dir is the
			// caller's, this only makes sure no daemon is left.
			out, err := exec.Command(path, "-c", etc, "abort").CombinedOutput()
			if err != nil && !strings.Contains(string(out), "not running") {
				return fmt.Errorf("loadgen: postfix abort: %w: %s", err, out)
			}
			return nil
		}
		return p, nil
	}}
}

// CanRunPostfix reports why a private Postfix instance cannot run here, or
// nil if it can.
func CanRunPostfix(path string) error {
	if os.Geteuid() != 0 {
		return errors.New("Postfix's master must be started as root")
	}
	if _, err := user.Lookup("postfix"); err != nil {
		return fmt.Errorf("no postfix user: %w", err)
	}
	if _, err := exec.LookPath(path); err != nil {
		return fmt.Errorf("postfix not installed (scripts/ci/install-smtp-sink.sh): %w", err)
	}
	return nil
}

// postfixMain is the instance's main.cf. Notable settings: HOLD on every
// message (accept into the queue, deliver nothing); in_flow_delay = 0, since
// no queue manager runs to hand out the flow-control tokens smtpd would
// otherwise wait up to a second for; no per-client connection limit, since
// all load comes from 127.0.0.1; no peer name lookup.
const postfixMain = `compatibility_level = 3.6
queue_directory = {{dir}}/spool
data_directory = {{dir}}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_data_restrictions = check_client_access static:HOLD
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_peername_lookup = no
in_flow_delay = 0
message_size_limit = 67108864
default_process_limit = 200
maillog_file = {{dir}}/maillog
maillog_file_prefixes = {{dir}}
biff = no
`

// postfixMaster is the instance's master.cf: an SMTP listener on addr and
// the daemons accepting mail needs. No qmgr: nothing is delivered.
const postfixMaster = `{{addr}} inet n - n - 100 smtpd
cleanup   unix  n - n - 0 cleanup
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
proxymap  unix  - - n - - proxymap
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`

// setupPostfix writes the instance's configuration under dir, creates its
// queue with Postfix's own tool, and returns the configuration directory.
func setupPostfix(ctx context.Context, path, dir, addr string) (string, error) {
	u, err := user.Lookup("postfix")
	if err != nil {
		return "", fmt.Errorf("loadgen: postfix user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	etc := filepath.Join(dir, "etc")
	for _, d := range []string{etc, filepath.Join(dir, "spool"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("loadgen: %w", err)
		}
	}
	// Postfix's daemons run as the postfix user and must reach their
	// queue through dir and every directory above it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("loadgen: %w", err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return "", fmt.Errorf("loadgen: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return "", fmt.Errorf("loadgen: postfix cannot reach its queue under %s: %s is not searchable by others", dir, d)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	if err := os.Chown(filepath.Join(dir, "data"), uid, -1); err != nil {
		return "", fmt.Errorf("loadgen: %w", err)
	}
	r := strings.NewReplacer("{{dir}}", dir, "{{addr}}", addr)
	if err := os.WriteFile(filepath.Join(etc, "main.cf"), []byte(r.Replace(postfixMain)), 0o644); err != nil {
		return "", fmt.Errorf("loadgen: %w", err)
	}
	if err := os.WriteFile(filepath.Join(etc, "master.cf"), []byte(r.Replace(postfixMaster)), 0o644); err != nil {
		return "", fmt.Errorf("loadgen: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, path, "-c", etc, "check").CombinedOutput(); err != nil {
		return "", fmt.Errorf("loadgen: postfix check: %w: %s", err, out)
	}
	return etc, nil
}
