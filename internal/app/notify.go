package app

import "log/slog"

// Notifier hears when the gateway starts serving and when it begins to
// drain: a service manager (systemd's sd_notify, package sdnotify) that
// must not count the service up before mail can be taken, nor route
// around it only after it is gone. An error is logged and changes nothing.
type Notifier interface {
	// Ready: every listener accepts and the spool has been replayed.
	Ready() error
	// Stopping: the drain has begun (new clients get 421 4.3.2).
	Stopping() error
}

// WithNotifier tells n when the gateway is ready and when it drains.
func WithNotifier(n Notifier) Option {
	return func(o *options) { o.notifier = n }
}

// notify calls f (a Notifier method) and logs its failure.
func (a *App) notify(what string, f func() error) {
	if f == nil {
		return
	}
	if err := f(); err != nil {
		a.log.Warn("service manager not told", slog.String("stage", "gateway"), slog.String("state", what), slog.String("error", err.Error()))
	}
}

// notifyReady and notifyStopping tell the Notifier, if there is one.
func (a *App) notifyReady() {
	if a.notifier != nil {
		a.notify("ready", a.notifier.Ready)
	}
}

func (a *App) notifyStopping() {
	if a.notifier != nil {
		a.notify("stopping", a.notifier.Stopping)
	}
}
