package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/egress"
)

// Validate checks every key and returns all problems at once, each naming
// the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	onAWS := c.Backend.Type == "aws"
	if c.Hostname == "" {
		bad("hostname", "is empty; set the name this gateway announces, e.g. mx.example.com")
	}
	if c.DataDir == "" {
		bad("data_dir", "is empty; set a directory for the local store and queue, e.g. ./data")
	}
	switch c.Backend.Type {
	case "local":
	case "aws":
		a := c.Backend.AWS
		if a.Bucket == "" {
			bad("backend.aws.bucket", "is empty; name the S3 bucket (or set POSTERN_BUCKET)")
		}
		for key, u := range map[string]string{"inbound": a.Queues.Inbound, "webhook": a.Queues.Webhook, "relay": a.Queues.Relay, "dsn": a.Queues.DSN} {
			if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
				bad("backend.aws.queues."+key, "%q is not an SQS queue URL; set it (or POSTERN_QUEUE_%s)", RedactURL(u), strings.ToUpper(key))
			}
		}
		switch a.SSE {
		case "", "AES256", "aws:kms":
		default:
			bad("backend.aws.sse", "%q is not one of \"\", AES256, aws:kms", a.SSE)
		}
	default:
		bad("backend.type", "%q is not supported; use \"local\" or \"aws\"", c.Backend.Type)
	}
	if len(c.Listeners) == 0 {
		bad("listeners", "none configured; add one, e.g. {name: smtp, addr: \"127.0.0.1:2525\"}")
	}
	names := map[string]bool{}
	for i, l := range c.Listeners {
		key := fmt.Sprintf("listeners[%d]", i)
		if l.Name == "" {
			bad(key+".name", "is empty; give each listener a name, e.g. smtp")
		} else if names[l.Name] {
			bad(key+".name", "%q is used twice; listener names must be unique", l.Name)
		}
		names[l.Name] = true
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			bad(key+".addr", "%q is not host:port; write e.g. \"127.0.0.1:2525\" or \":25\"", l.Addr)
		}
		switch l.Mode {
		case "", "smtp", "submission":
		case "smtps":
			if c.TLS.Disable {
				bad(key+".mode", "smtps needs TLS, but tls.disable is true; enable TLS or use mode smtp")
			}
		default:
			bad(key+".mode", "%q is not one of smtp, submission, smtps", l.Mode)
		}
		for j, n := range l.ProxyProtocol {
			if _, err := netip.ParsePrefix(n); err != nil {
				bad(fmt.Sprintf("%s.proxy_protocol[%d]", key, j), "%q is not a CIDR network; list the load balancers' networks, e.g. \"10.0.0.0/16\"", n)
			}
		}
		if l.TLSMinVersion != "" && !validTLSVersion(l.TLSMinVersion) {
			bad(key+".tls_min_version", "%q is not one of 1.0, 1.1, 1.2, 1.3", l.TLSMinVersion)
		}
	}
	if !validTLSVersion(c.TLS.MinVersion) {
		bad("tls.min_version", "%q is not one of 1.0, 1.1, 1.2, 1.3 (the default is 1.2)", c.TLS.MinVersion)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file go together; set both, or neither for a generated self-signed certificate")
	}
	if c.Admin.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Addr); err != nil {
			bad("admin.addr", "%q is not host:port; write e.g. \"127.0.0.1:8025\", or \"\" to disable", c.Admin.Addr)
		}
	}
	l := c.Limits
	if l.MaxMessageBytes < 1024 {
		bad("limits.max_message_bytes", "%d is too small; set at least 1024 (the default is 26214400, 25 MiB)", l.MaxMessageBytes)
	}
	if l.MaxRecipients < 1 || l.MaxRecipients > MaxRecipientsLimit {
		bad("limits.max_recipients", "%d must be between 1 and %d (the default is 100); clients send larger lists in several transactions after 452 4.5.3",
			l.MaxRecipients, MaxRecipientsLimit)
	}
	if l.MaxLineLength < 1000 {
		bad("limits.max_line_length", "%d is below RFC 5321's 1000; set at least 1000 (the default is 2000)", l.MaxLineLength)
	}
	for key, d := range map[string]Duration{"limits.command_timeout": l.CommandTimeout, "limits.data_timeout": l.DataTimeout, "limits.store_timeout": l.StoreTimeout} {
		if d <= 0 {
			bad(key, "must be a positive duration such as \"5m\"")
		}
	}
	for key, n := range map[string]int{"limits.max_sessions": l.MaxSessions, "limits.max_sessions_per_ip": l.MaxSessionsPerIP,
		"limits.max_auth_failures": l.MaxAuthFailures, "limits.max_received": l.MaxReceived} {
		if n < 1 {
			bad(key, "%d must be at least 1", n)
		}
	}
	if l.AuthFailureWindow <= 0 {
		bad("limits.auth_failure_window", "must be a positive duration such as \"15m\"")
	}
	if l.MaxHeaderBytes < 1024 {
		bad("limits.max_header_bytes", "%d is too small; set at least 1024 (the default is 1048576)", l.MaxHeaderBytes)
	}
	if l.MinFreeBytes < 0 {
		bad("limits.min_free_bytes", "%d must not be negative; set the free space data_dir must keep, e.g. 1073741824 (1 GiB, the default), or 0 to turn the check off", l.MinFreeBytes)
	}
	if c.Retention.D() < minRetention {
		bad("retention", "%s is too short; set how long local mode keeps messages, at least 1h, e.g. \"720h\" (30 days, the default)", c.Retention.D())
	}
	if len(c.Identities) == 0 {
		bad("identities", "none configured, so no client could send; add one, e.g. {name: local, networks: [\"127.0.0.0/8\"]}")
	}
	names = map[string]bool{}
	users := map[string]bool{}
	for i, id := range c.Identities {
		key := fmt.Sprintf("identities[%d]", i)
		if id.Name == "" {
			bad(key+".name", "is empty; name each identity (a device or an application)")
		} else if names[id.Name] {
			bad(key+".name", "%q is used twice; identity names must be unique", id.Name)
		}
		names[id.Name] = true
		if len(id.Networks) == 0 && id.PasswordHash == "" {
			bad(key, "has neither networks nor password_hash, so nothing could use it; add networks (CIDR) or a password_hash from `gateway hash-password`")
		}
		switch {
		case id.PasswordHash == "":
		case isLocalRef(id.PasswordHash) && onAWS:
			bad(key+".password_hash", "env: and file: are read by no process on AWS; write the hash from `gateway hash-password` itself (a hash is not a secret, but keep the file out of public repositories)")
		case isLocalRef(id.PasswordHash):
			if err := CheckSecretRef(id.PasswordHash); err != nil {
				bad(key+".password_hash", "%v", err)
			}
		default:
			if err := checkBcryptHash(id.PasswordHash); err != nil {
				bad(key+".password_hash", "%v; make one with `gateway hash-password`, or write \"env:NAME\" or \"file:PATH\" to read it from there", err)
			}
		}
		if id.MaxMessageBytes < 0 || id.MaxRecipients < 0 || id.MessagesPerMinute < 0 {
			bad(key, "limits must not be negative")
		}
		user := id.Username
		if user == "" {
			user = id.Name
		}
		if id.PasswordHash != "" {
			if users[user] {
				bad(key+".username", "%q is used by two identities; usernames must be unique", user)
			}
			users[user] = true
		}
		for j, n := range id.Networks {
			if _, err := netip.ParsePrefix(n); err != nil {
				bad(fmt.Sprintf("%s.networks[%d]", key, j), "%q is not a CIDR network; write e.g. \"192.168.1.0/24\" or \"10.0.0.7/32\"", n)
			}
		}
	}
	if len(c.Routes) == 0 {
		bad("routes", "none configured, so every recipient would be refused; add one, e.g. {name: default, match: {recipients: [\"*\"]}, directory: {path: outbox}}")
	}
	names = map[string]bool{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			bad(key+".name", "is empty; name each route (it appears in webhook ids and logs)")
		} else if names[r.Name] {
			bad(key+".name", "%q is used twice; route names must be unique", r.Name)
		} else if strings.ContainsAny(r.Name, " ./\\") {
			bad(key+".name", "%q may not contain spaces, dots or slashes", r.Name)
		}
		names[r.Name] = true
		n := 0
		if r.Webhook != nil {
			n++
			validateWebhook(key+".webhook", r.Webhook, onAWS, bad)
		}
		if r.Directory != nil {
			n++
			if r.Directory.Path == "" {
				bad(key+".directory.path", "is empty; set a directory (relative paths are under data_dir)")
			}
			switch r.Directory.Payload {
			case "", "json", "raw":
			default:
				bad(key+".directory.payload", "%q is not one of json, raw", r.Directory.Payload)
			}
		}
		if r.Relay != nil {
			n++
			validateRelay(key+".relay", r.Relay, onAWS, bad)
		}
		if r.Reject {
			n++
		}
		if n != 1 {
			bad(key, "needs exactly one target: webhook, directory, relay or reject: true (found %d)", n)
		}
		if r.Retention != 0 && r.Retention.D() < minRetention {
			bad(key+".retention", "%s is too short; set at least 1h, e.g. \"2160h\" (90 days), or leave it out for the top-level retention", r.Retention.D())
		}
		if len(r.Match.Recipients) == 0 && len(r.Match.Senders) == 0 && len(r.Match.Identities) == 0 && len(r.Match.Headers) == 0 &&
			len(r.Match.SPF) == 0 && len(r.Match.DKIM) == 0 && len(r.Match.DMARC) == 0 {
			bad(key+".match", "is empty; say what the route takes, e.g. {recipients: [\"*@example.com\"]} or [\"*\"] for everything")
		}
	}
	validateRelay("dsn.relay", &c.DSN.Relay, onAWS, bad)
	validateAuth(c, onAWS, bad)
	if c.DSN.MaxReturnBytes <= 0 {
		bad("dsn.max_return_bytes", "%d must be positive: the largest original a RET=FULL notice returns whole (larger ones go back as headers only); the default is 10485760 (10 MiB)", c.DSN.MaxReturnBytes)
	}
	if c.Delivery.BurstLag < 0 || c.Delivery.BurstLag.D() > time.Minute {
		bad("delivery.burst_lag", "%s must be between 0 (off) and 1m (the default is 5s)", c.Delivery.BurstLag.D())
	}
	if c.Delivery.StallAlarm.D() < time.Second || c.Delivery.StallAlarm <= c.Delivery.BurstLag {
		bad("delivery.stall_alarm", "%s must be at least 1s and longer than delivery.burst_lag (%s), which holds the spool's mover back on purpose; the default is 1m",
			c.Delivery.StallAlarm.D(), c.Delivery.BurstLag.D())
	}
	if c.Delivery.Workers < 1 || c.Delivery.Workers > 256 {
		bad("delivery.workers", "%d must be between 1 and 256 (the default is 4)", c.Delivery.Workers)
	}
	validatePublicURL(c, onAWS, bad)
	if c.Delivery.URLTTL.D() < time.Minute || c.Delivery.URLTTL.D() > 365*24*time.Hour {
		bad("delivery.url_ttl", "%s must be between 1m and 8760h (a year); the default is 168h (7 days)", c.Delivery.URLTTL.D())
	}
	if c.Delivery.InlineAttachmentBytes < 0 {
		bad("delivery.inline_attachment_bytes", "must not be negative")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format", "%q is not one of json, text", c.Log.Format)
	}
	return errors.Join(errs...)
}

// minRetention is the shortest retention accepted: anything shorter is
// more likely a unit slip ("30m" for 30 days) than a wish.
const minRetention = time.Hour

// validateRelay checks one relay section; onAWS adds what the Lambda
// functions cannot do.
func validateRelay(key string, r *Relay, onAWS bool, bad func(key, format string, args ...any)) {
	switch r.Type {
	case "smtp":
		if _, port, err := net.SplitHostPort(r.Addr); err != nil {
			bad(key+".addr", "%q is not host:port; write e.g. \"smtp.example.com:587\"", r.Addr)
		} else if onAWS && (port == "25" || port == "smtp") {
			// The relay and dsn stages run as Lambda functions there, and
			// a smarthost on 25 would time out on every message.
			bad(key+".addr", "%q: Lambda blocks outbound port 25; use 587 (STARTTLS) or 465 (implicit TLS), or type: ses", r.Addr)
		}
		switch r.TLS {
		case "", "starttls", "implicit":
		case "none":
			if r.Username != "" && !r.AllowInsecureAuth {
				bad(key+".tls", "none with a username would send the password in clear; use starttls or implicit, or set allow_insecure_auth for a trusted network")
			}
		default:
			bad(key+".tls", "%q is not one of starttls, implicit, none", r.TLS)
		}
		if r.Password != "" {
			checkSecret(key+".password", r.Password, onAWS, bad)
		}
		validateXOAUTH2(key, r, onAWS, bad)
		if r.CAFile != "" {
			if r.TLS == "none" {
				bad(key+".ca_file", "applies with tls: starttls or implicit only; remove it, or set tls")
			} else if _, err := CAPool(r.CAFile); err != nil {
				bad(key+".ca_file", "%v", err)
			}
		}
	case "graph", "gmail":
		for _, f := range []struct {
			name string
			set  bool
		}{{"addr", r.Addr != ""}, {"tls", r.TLS != ""}, {"username", r.Username != ""},
			{"password", r.Password != ""}, {"auth_mechanism", r.AuthMechanism != ""}} {
			if f.set {
				bad(key+"."+f.name, "applies to type: smtp only; %s signs in with oauth and sends as send_as: remove it", r.Type)
			}
		}
		provider, needs := "entra", "provider: entra, tenant, client_id and client_secret or certificate"
		if r.Type == "gmail" {
			provider, needs = "google", "provider: google and service_account_key"
		}
		if r.SendAs == "" {
			bad(key+".send_as", "is empty; %s sends as one mailbox: set its address, e.g. \"scanner@example.com\"", r.Type)
		}
		if r.OAuth == nil {
			bad(key+".oauth", "is missing; %s needs oauth with %s", r.Type, needs)
		} else {
			if r.OAuth.Provider != provider {
				bad(key+".oauth.provider", "%q does not serve type: %s; it takes provider: %s", r.OAuth.Provider, r.Type, provider)
			}
			validateOAuth(key+".oauth", r.OAuth, onAWS, bad)
		}
		if r.BaseURL != "" {
			checkURL(key+".base_url", r.BaseURL, "leave it out for the provider's own API", bad)
		}
	case "ses":
	case "file":
		if r.Path == "" {
			bad(key+".path", "is empty; set a directory (relative paths are under data_dir)")
		}
	default:
		bad(key+".type", "%q is not one of smtp, ses, graph, gmail, file", r.Type)
	}
	if r.Type != "smtp" && r.Type != "graph" && r.Type != "gmail" && r.OAuth != nil {
		bad(key+".oauth", "applies to type: graph, gmail, or smtp with auth_mechanism: xoauth2 only; remove it")
	}
	if r.Type != "graph" && r.SaveToSentItems {
		bad(key+".save_to_sent_items", "applies to type: graph only; remove it")
	}
	if r.Type != "smtp" && r.CAFile != "" {
		// graph and gmail reach Microsoft's and Google's public endpoints
		// (base_url is for national clouds and tests), which the system
		// roots trust.
		bad(key+".ca_file", "applies to type: smtp only; remove it")
	}
	if r.Type != "graph" && r.Type != "gmail" && r.BaseURL != "" {
		bad(key+".base_url", "applies to type: graph and gmail only; remove it")
	}
	validateSender(key, r, bad)
	if r.MaxAge < 0 || r.DelayNotice < 0 {
		bad(key, "max_age and delay_notice must not be negative")
	}
}

// validateSender checks send_as, from, original_from and send_as_also.
func validateSender(key string, r *Relay, bad func(key, format string, args ...any)) {
	if r.SendAs != "" {
		if a, err := mail.ParseAddress(r.SendAs); err != nil || a.Address != r.SendAs {
			bad(key+".send_as", "%q is not a bare mail address; write e.g. \"scanner@example.com\" (no display name or angle brackets)", r.SendAs)
		}
		if r.Type == "file" {
			bad(key+".send_as", "does not apply to type: file, which writes messages as they came; remove it")
		}
	}
	switch r.From {
	case "", "keep":
	case "rewrite":
		if r.Mailbox() == "" {
			bad(key+".from", "rewrite needs send_as, the address From becomes")
		}
	default:
		bad(key+".from", "%q is not one of keep, rewrite", r.From)
	}
	switch r.OriginalFrom {
	case "", "reply-to", "header":
		if r.OriginalFrom != "" && r.From != "rewrite" {
			bad(key+".original_from", "applies with from: rewrite only; remove it or set from: rewrite")
		}
	default:
		bad(key+".original_from", "%q is not one of reply-to, header", r.OriginalFrom)
	}
	for i, p := range r.SendAsAlso {
		if p == "" || strings.ContainsAny(p, " \t<>") {
			bad(fmt.Sprintf("%s.send_as_also[%d]", key, i), "%q is not an address pattern; write e.g. \"alerts@example.com\" or \"*@example.com\"", p)
		}
	}
	if len(r.SendAsAlso) > 0 && r.Mailbox() == "" {
		bad(key+".send_as_also", "needs send_as, the mailbox these addresses are aliases of")
	}
}

func checkURL(key, u, fix string, bad func(key, format string, args ...any)) {
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		bad(key, "%q is not an http(s) URL; %s", RedactURL(u), fix)
	}
}

// validateXOAUTH2 checks auth_mechanism: xoauth2 and its oauth block,
// which go together on an smtp relay.
func validateXOAUTH2(key string, r *Relay, onAWS bool, bad func(key, format string, args ...any)) {
	if !strings.EqualFold(r.AuthMechanism, "xoauth2") {
		if r.OAuth != nil {
			bad(key+".oauth", "is set but auth_mechanism is %q; set auth_mechanism: xoauth2 to sign in with its tokens, or remove oauth", r.AuthMechanism)
		}
		return
	}
	if r.Username == "" {
		bad(key+".username", "is empty; xoauth2 signs in as a mailbox: set the address the relay sends as, e.g. \"scanner@example.com\"")
	}
	if r.Password != "" {
		bad(key+".password", "is set with auth_mechanism: xoauth2, which signs in with a token from oauth; remove password")
	}
	if r.OAuth == nil {
		bad(key+".oauth", "is missing; xoauth2 needs oauth with provider: entra, tenant, client_id and client_secret or certificate (Microsoft 365), or provider: google and service_account_key (Google Workspace)")
		return
	}
	validateOAuth(key+".oauth", r.OAuth, onAWS, bad)
}

// oauthProviders are the known oauth.provider values.
var oauthProviders = []string{"entra", "google"}

// validateOAuth checks one oauth block (k is its key) for its provider.
func validateOAuth(k string, o *OAuth, onAWS bool, bad func(key, format string, args ...any)) {
	switch o.Provider {
	case "entra":
		if o.Tenant == "" {
			bad(k+".tenant", "is empty; set the Entra directory (tenant) id or its verified domain")
		}
		if o.ClientID == "" {
			bad(k+".client_id", "is empty; set the app registration's application (client) id")
		}
		switch {
		case o.ClientSecret != "" && o.Certificate != "":
			bad(k+".certificate", "is set with client_secret; the app signs in with one credential: keep one")
		case o.Certificate != "":
			checkSecret(k+".certificate", o.Certificate, onAWS, bad)
		default:
			checkSecret(k+".client_secret", o.ClientSecret, onAWS, bad)
		}
		if o.ServiceAccountKey != "" {
			bad(k+".service_account_key", "applies to provider: google only; remove it")
		}
	case "google":
		checkSecret(k+".service_account_key", o.ServiceAccountKey, onAWS, bad)
		for _, f := range []struct {
			name string
			set  bool
		}{{"tenant", o.Tenant != ""}, {"client_id", o.ClientID != ""}, {"client_secret", o.ClientSecret != ""}, {"certificate", o.Certificate != ""}} {
			if f.set {
				bad(k+"."+f.name, "applies to provider: entra only; a google service account's key file holds its id: remove it")
			}
		}
	default:
		bad(k+".provider", "%q is not one of %s", o.Provider, strings.Join(oauthProviders, ", "))
	}
	if o.TokenURL != "" {
		checkURL(k+".token_url", o.TokenURL, "leave it out for the provider's own endpoint", bad)
	}
	if o.Scope != "" && o.Provider == "entra" && strings.ContainsAny(o.Scope, " \t") {
		bad(k+".scope", "%q has white space; client credentials take one resource's /.default scope, e.g. %q", o.Scope, OutlookScope)
	}
}

func validTLSVersion(v string) bool {
	switch v {
	case "1.0", "1.1", "1.2", "1.3":
		return true
	}
	return false
}

func validateWebhook(key string, w *Webhook, onAWS bool, bad func(key, format string, args ...any)) {
	for i, e := range w.Allow {
		a, err := egress.ParseAllow([]string{e})
		if err != nil {
			bad(fmt.Sprintf("%s.allow[%d]", key, i), "%s", strings.TrimPrefix(err.Error(), "[0] "))
			continue
		}
		// Wider than 10.0.0.0/8 or fc00::/7, the widest private ranges, a
		// network is a way to switch the guard off, not an application's
		// address.
		for _, p := range a.Prefixes {
			if p.Addr().Is4() && p.Bits() < 8 || p.Addr().Is6() && p.Bits() < 7 {
				bad(fmt.Sprintf("%s.allow[%d]", key, i), "%q is wider than any private range; list the application's address or network, e.g. \"10.1.2.3\" or \"10.1.0.0/16\"", e)
			}
		}
	}
	policy := w.EgressAllow()
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad(key+".url", "%q is not an http(s) URL; write e.g. \"https://app.example.com/inbound\"", RedactURL(w.URL))
	} else {
		checkEgress(key+".url", key+".allow", u, policy, bad)
	}
	if len(w.Secrets) == 0 {
		bad(key+".secrets", "is empty; add a signing secret (e.g. \"env:POSTERN_WEBHOOK_SECRET\") so the application can verify requests")
	}
	for j, s := range w.Secrets {
		checkSecret(fmt.Sprintf("%s.secrets[%d]", key, j), s, onAWS, bad)
	}
	switch w.Payload {
	case "", "json", "raw":
	default:
		bad(key+".payload", "%q is not one of json, raw", w.Payload)
	}
	if w.Timeout < 0 {
		bad(key+".timeout", "must not be negative (the default is 30s)")
	}
	if w.MaxAge < 0 {
		bad(key+".max_age", "must not be negative (the default is 24h)")
	}
	if w.FailureURL != "" {
		if u, err := url.Parse(w.FailureURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(key+".failure_url", "%q is not an http(s) URL", RedactURL(w.FailureURL))
		} else {
			checkEgress(key+".failure_url", key+".allow", u, policy, bad)
		}
	}
}

// checkEgress refuses a URL the webhook's egress rules would refuse at
// every attempt: a literal address of a refused class, or localhost, which
// resolves to loopback (127.0.0.1 and often ::1, each of which must be
// allowed). Other names are judged when they are resolved, at connect
// time; they are not looked up here.
func checkEgress(key, allowKey string, u *url.URL, policy egress.Allow, bad func(key, format string, args ...any)) {
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	}
	for _, a := range addrs {
		err := policy.Permits(host, a)
		var re *egress.RefusedError
		if !errors.As(err, &re) {
			continue
		}
		shown := RedactURL(u.String())
		switch {
		case !re.Class.Allowable():
			bad(key, "%q is a %s address, which is never reached whatever %s says; point the webhook at the application's own address", shown, re.Class, allowKey)
		case host == "localhost" || strings.HasSuffix(host, ".localhost"):
			bad(key, "%q names %s, which resolves to the loopback address %s, and %s does not allow it; add %q to %s (or \"127.0.0.1\" and \"::1\")", shown, host, a, allowKey, host, allowKey)
		default:
			bad(key, "%q is a %s address, which the egress rules refuse, so every delivery would fail until max_age; add %q to %s", shown, re.Class, a.WithZone("").Unmap().String(), allowKey)
		}
		return
	}
}

// checkSecret is CheckSecretRef for the secret at key, plus the rule that
// only the AWS functions can read Secrets Manager.
func checkSecret(key, s string, onAWS bool, bad func(key, format string, args ...any)) {
	if err := CheckSecretRef(s); err != nil {
		bad(key, "%v", err)
		return
	}
	if _, ok := SecretsManagerID(s); ok && !onAWS {
		bad(key, "secretsmanager: secrets are read at run time by the AWS functions, and backend.type is not aws; write the secret, \"env:NAME\" or \"file:PATH\" instead")
	}
}

// SecretsManagerPrefix marks a secret kept in AWS Secrets Manager:
// "secretsmanager:<secret ARN or name>". Such a secret is not resolved at
// start: the stage that uses it reads it at run time through a cache with
// a TTL (package secrets), so a rotation applies without a redeploy and no
// function's environment holds it.
const SecretsManagerPrefix = "secretsmanager:"

// SecretsManagerID returns the secret id (ARN or name) of a secret written
// "secretsmanager:ID", and whether it is written so. It does not check the
// id; CheckSecretRef does.
func SecretsManagerID(s string) (id string, ok bool) {
	return strings.CutPrefix(s, SecretsManagerPrefix)
}

// Secrets Manager's forms of a secret id: a full or partial ARN, or a
// name of 1 to 512 characters from its documented set.
var (
	secretARN  = regexp.MustCompile(`^arn:aws(-[a-z]+)*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$`)
	secretName = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)
)

// CheckSecretRef checks how a secret is written without reading it, so a
// process that never uses a secret (the parse function, the gateway) need
// not be given it, and check-config needs no AWS access. ResolveSecret (or
// the secrets cache for secretsmanager:), where the secret is used,
// reports a missing variable, file or secret.
func CheckSecretRef(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("is empty; write the secret, \"env:NAME\", \"file:PATH\" or \"secretsmanager:NAME\"")
	case s == "env:":
		return fmt.Errorf("\"env:\" names no variable; write e.g. \"env:POSTERN_WEBHOOK_SECRET\"")
	case s == "file:":
		return fmt.Errorf("\"file:\" names no file; write e.g. \"file:/run/secrets/webhook\"")
	}
	if id, ok := SecretsManagerID(s); ok {
		switch {
		case id == "":
			return fmt.Errorf("\"secretsmanager:\" names no secret; write e.g. \"secretsmanager:postern/webhook/app\" or the secret's ARN")
		case strings.HasPrefix(id, "arn:"):
			if !secretARN.MatchString(id) {
				return fmt.Errorf("%q is not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME); copy it from the console or `aws secretsmanager describe-secret`", id)
			}
		case !secretName.MatchString(id):
			return fmt.Errorf("%q is not a Secrets Manager secret name (1 to 512 of A-Z a-z 0-9 / _ + = . @ -); write the name or the secret's ARN", id)
		}
	}
	return nil
}

// ResolveSecret returns the text of a secret written as a literal,
// "env:NAME" or "file:PATH". The value itself never appears in errors.
func ResolveSecret(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, "env:"):
		name := strings.TrimPrefix(s, "env:")
		v := os.Getenv(name)
		if v == "" {
			return "", fmt.Errorf("environment variable %s is not set; export it or write the secret another way", name)
		}
		return v, nil
	case strings.HasPrefix(s, "file:"):
		p := filepath.Clean(strings.TrimPrefix(s, "file:"))
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("cannot read secret file %s: %v", p, errors.Unwrap(err))
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", p)
		}
		return v, nil
	case s == "":
		return "", fmt.Errorf("is empty; write the secret, \"env:NAME\" or \"file:PATH\"")
	case strings.HasPrefix(s, SecretsManagerPrefix):
		// Resolving it here would freeze a rotating secret at start.
		return "", fmt.Errorf("secretsmanager: secrets are read at run time by the AWS functions' secrets cache, not at start; here write the secret as \"env:NAME\" or \"file:PATH\"")
	}
	return s, nil
}

// Path resolves p against the data directory unless it is absolute.
func (c *Config) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.DataDir, p)
}

// SmarthostTLS is the TLS configuration for an smtp relay's smarthost:
// nil (the system roots) without ca_file; with it, ca_file's certificates
// in place of the system roots, as Postfix's smtp_tls_CAfile is used by
// default (tls_append_default_CA = no): a smarthost with a private CA
// needs only that CA, and no public CA is then trusted to vouch for it.
// The smarthost's name is checked as without it (smtprelay takes it from
// addr). The error is CAPool's; callers name the key.
func (r *Relay) SmarthostTLS() (*tls.Config, error) {
	if r.CAFile == "" {
		return nil, nil
	}
	pool, err := CAPool(r.CAFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// CAPool reads a relay's ca_file: the CA certificates in it, of which
// there must be at least one. Its errors say what is wrong and how to fix
// it, for Validate (so start and check-config refuse a bad file) and for
// the relay that uses the pool.
func CAPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w; name a PEM file of the smarthost's CA certificates", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w; export the CA certificate again as PEM", path, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----); name the file of the smarthost's CA certificate, e.g. one exported with `openssl x509 -outform PEM`", path)
	}
	return pool, nil
}

// validatePublicURL checks delivery.public_url: the http(s) base of the
// signed links the admin listener serves on one machine.
func validatePublicURL(c *Config, onAWS bool, bad func(key, format string, args ...any)) {
	s := c.Delivery.PublicURL
	if s == "" {
		return
	}
	const key = "delivery.public_url"
	switch u, err := url.Parse(s); {
	case onAWS:
		bad(key, "is for backend.type local only: on aws the payload's links are pre-signed S3 URLs; remove it")
	case c.Admin.Addr == "":
		bad(key, "the links it names are served by the admin listener, which admin.addr \"\" turns off; set admin.addr or remove %s", key)
	case err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "":
		bad(key, "%q is not an http or https URL; write the base applications reach the admin listener at, e.g. \"https://postern.example.com\" or \"http://10.0.0.5:8025\"", s)
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		bad(key, "must be a base URL without user, query or fragment, e.g. \"https://postern.example.com\"")
	case u.Port() != "" && !validPort(u.Port()):
		bad(key, "port %q is not a port number", u.Port())
	}
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 65536
}
