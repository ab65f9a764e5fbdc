// Package sdnotify tells systemd how a Type=notify service is doing, as
// sd_notify(3) does: one datagram of NAME=value lines to the unix socket
// that NOTIFY_SOCKET names. Outside systemd (no NOTIFY_SOCKET) it does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// EnvSocket names the socket systemd listens on for this service.
const EnvSocket = "NOTIFY_SOCKET"

// Notifier sends state changes to the service manager. The zero value (and
// a nil *Notifier) sends nothing.
type Notifier struct {
	addr string // a path, or "@name" for an abstract socket (Go maps @ to the leading NUL)
}

// New returns a Notifier for the socket getenv(NOTIFY_SOCKET) names, or one
// that sends nothing when it names none.
func New(getenv func(string) string) *Notifier {
	return &Notifier{addr: getenv(EnvSocket)}
}

// Enabled reports whether a service manager listens.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != "" }

// Send sends the assignments (e.g. "READY=1", "STATUS=serving") as one
// datagram. With no service manager it does nothing and returns nil.
func (n *Notifier) Send(state ...string) error {
	if !n.Enabled() {
		return nil
	}
	for _, s := range state {
		if !strings.Contains(s, "=") || strings.Contains(s, "\n") {
			return fmt.Errorf("sdnotify: %q is not one NAME=value assignment", s)
		}
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	// A datagram socket whose reader is gone or full blocks; systemd reads
	// at once, so a second is plenty and keeps a wedged manager from
	// holding up start or shutdown.
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(strings.Join(state, "\n") + "\n")); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Ready says the service is up (READY=1): call it once every listener
// accepts and recovered state has been replayed.
func (n *Notifier) Ready() error { return n.Send("READY=1", "STATUS=accepting mail") }

// Stopping says the service has begun to shut down (STOPPING=1).
func (n *Notifier) Stopping() error {
	return n.Send("STOPPING=1", "STATUS=draining: new connections get 421, uploads in progress may finish")
}

// Reloading says a reload has begun (RELOADING=1, with the CLOCK_MONOTONIC
// time systemd 253 and later want); send Ready when it is done.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return n.Send("RELOADING=1")
	}
	return n.Send("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", ts.Nano()/1000))
}
