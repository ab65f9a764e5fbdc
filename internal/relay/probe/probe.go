// Package probe checks, without sending mail, that each relay signing in
// with OAuth can deliver: it fetches a token, reads the permissions the
// token carries, and checks the mailbox as far as the provider allows,
// saying for each what is missing and the fix (gateway check-config -probe).
package probe

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/oauthtok"
)

// Status is the outcome of one check.
type Status int

const (
	OK         Status = iota
	Failed            // something is missing; the text says what and the fix
	NotChecked        // the provider offers no way to check it; the text says why
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Failed:
		return "FAILED"
	}
	return "not checked"
}

// Check names, in report order.
const (
	CheckToken      = "token"
	CheckPermission = "permission"
	CheckMailbox    = "mailbox"
)

// Check is one finding about one relay.
type Check struct {
	Name   string // CheckToken, CheckPermission or CheckMailbox
	Status Status
	Text   string // what was found; for Failed, what is wrong and the fix
}

// Report is the findings about one relay.
type Report struct {
	Target Target
	Checks []Check
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Failed {
			return true
		}
	}
	return false
}

// Target is a relay that signs in with OAuth.
type Target struct {
	Key   string // its configuration key: routes[N].relay or dsn.relay
	Route string // the route's name; empty for dsn.relay
	Relay *config.Relay
}

// Targets lists the relays of cfg that use OAuth, routes first in order,
// then dsn.relay.
func Targets(cfg *config.Config) []Target {
	var ts []Target
	for i, r := range cfg.Routes {
		if r.Relay != nil && usesOAuth(r.Relay) {
			ts = append(ts, Target{Key: fmt.Sprintf("routes[%d].relay", i), Route: r.Name, Relay: r.Relay})
		}
	}
	if usesOAuth(&cfg.DSN.Relay) {
		ts = append(ts, Target{Key: "dsn.relay", Relay: &cfg.DSN.Relay})
	}
	return ts
}

func usesOAuth(r *config.Relay) bool {
	return r.Type == "graph" || r.Type == "gmail" || r.OAuth != nil ||
		strings.EqualFold(r.AuthMechanism, "xoauth2")
}

// Options configure Run.
type Options struct {
	// Fetcher builds the token fetcher of the relay at key (in the gateway,
	// relayfn.TokenFetcher); its error names the key and the fix.
	Fetcher func(key string, r *config.Relay) (oauthtok.Fetcher, error)
	// LocalName is the EHLO name for smarthosts; "localhost" when empty.
	LocalName string
	// HTTPClient reads Graph; http.DefaultClient when nil.
	HTTPClient *http.Client
	// SMTPTLS replaces the system roots for smarthosts, for tests.
	SMTPTLS *tls.Config
	// Timeout bounds the probe of one relay; 30 s when zero.
	Timeout time.Duration
}

// Run probes every target in order. It sends no mail.
func Run(ctx context.Context, targets []Target, o Options) []Report {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	reps := make([]Report, 0, len(targets))
	for _, t := range targets {
		reps = append(reps, probeOne(ctx, t, o))
	}
	return reps
}

func probeOne(ctx context.Context, t Target, o Options) Report {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	rep := Report{Target: t}
	add := func(c Check) { rep.Checks = append(rep.Checks, c) }
	f, err := o.Fetcher(t.Key, t.Relay)
	if err != nil {
		add(Check{Name: CheckToken, Status: Failed, Text: err.Error()})
		return rep
	}
	// Fetch, not Cache.Token: a token cached by an earlier call would
	// hide a secret revoked or a consent withdrawn since.
	tok, err := f.Fetch(ctx)
	if err != nil {
		add(Check{Name: CheckToken, Status: Failed, Text: tokenFailure(ctx, t, f, err)})
		return rep
	}
	add(Check{Name: CheckToken, Status: OK, Text: tokenOK(t, f, tok.ExpiresIn)})
	if t.Relay.Type == "graph" {
		perm, mbox := graphChecks(ctx, t, f.Key(), tok.AccessToken, o)
		add(perm)
		add(mbox)
		return rep
	}
	add(permission(t, f, tok.AccessToken))
	add(mailbox(ctx, t, f, tok.AccessToken, o))
	return rep
}

// Write prints reports, a heading per relay and a line per check.
func Write(w io.Writer, reps []Report) {
	for _, r := range reps {
		fmt.Fprintln(w, Heading(r.Target))
		for _, c := range r.Checks {
			fmt.Fprintln(w, Line(c))
		}
	}
}

// Heading names a relay: its key, route, type and mailbox.
func Heading(t Target) string {
	h := "probe " + t.Key
	if t.Route != "" {
		h += " (route " + t.Route + ")"
	}
	h += ": " + t.Relay.Type
	m := t.Relay.Mailbox()
	if t.Relay.Type == "smtp" {
		h += " " + t.Relay.Addr + " with XOAUTH2"
		m = t.Relay.Username // the AUTH identity
	}
	if m != "" {
		h += " as " + m
	}
	return sanitize(h)
}

// Line is one check as printed: "  name: status: text".
func Line(c Check) string {
	return sanitize("  " + c.Name + ": " + c.Status.String() + ": " + c.Text)
}

// sanitize keeps provider text (which reaches a terminal) to one line of
// printable characters.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// provider is the OAuth provider of t's relay.
func provider(t Target) string {
	if t.Relay.OAuth == nil {
		return ""
	}
	return t.Relay.OAuth.Provider
}

// mailboxKey is the key that names the relay's mailbox.
func mailboxKey(t Target) string {
	if t.Relay.Type == "smtp" && t.Relay.SendAs == "" {
		return t.Key + ".username"
	}
	return t.Key + ".send_as"
}

func tokenOK(t Target, f oauthtok.Fetcher, expiresIn int64) string {
	k := f.Key()
	var who string
	switch provider(t) {
	case "google":
		who = "google, acting as " + k.Client
	default:
		who = "entra app " + k.Client + " in tenant " + k.Tenant
	}
	s := who + ", scope " + k.Scope
	if expiresIn > 0 {
		s += fmt.Sprintf(", valid %d s", expiresIn)
	}
	return s
}
