// Package config is Postern's typed configuration: one YAML file (strict:
// unknown keys are errors) plus POSTERN_* environment overrides, validated
// once at start with errors that name the key and the fix.
package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postern/postern/internal/egress"
)

// Config is the whole configuration.
type Config struct {
	// Hostname names this gateway in the greeting, Received headers and DSNs.
	Hostname string `yaml:"hostname"`
	// DataDir holds the local store and queue (embedded default).
	DataDir    string     `yaml:"data_dir"`
	Backend    Backend    `yaml:"backend"`
	Listeners  []Listener `yaml:"listeners"`
	TLS        TLS        `yaml:"tls"`
	Admin      Admin      `yaml:"admin"`
	Limits     Limits     `yaml:"limits"`
	Identities []Identity `yaml:"identities"`
	Routes     []Route    `yaml:"routes"`
	DSN        DSN        `yaml:"dsn"`
	Delivery   Delivery   `yaml:"delivery"`
	Log        Log        `yaml:"log"`
	// Retention is how long local mode keeps a message's objects (raw,
	// envelope, parsed form, attachments, trace) and its webhook and DSN
	// outbox files, counted from when it was received; routes[].retention
	// overrides it per route. Messages still referenced by a queued or
	// dead-lettered job are kept whatever their age. On AWS, S3 lifecycle
	// rules do this instead.
	Retention Duration `yaml:"retention"`
	// DNS is the resolver for sender authentication (SPF, DKIM, DMARC).
	DNS DNS `yaml:"dns"`
	// DKIM holds the keys Postern signs with (dsn.dkim_sign, a relay's
	// dkim_sign).
	DKIM DKIM `yaml:"dkim"`
}

// DNS configures the one resolver the sender-authentication checks share.
type DNS struct {
	// Servers are "host:port" of the resolvers to ask; empty: the
	// system's (/etc/resolv.conf).
	Servers []string `yaml:"servers"`
	// Timeout bounds one lookup across servers; default 3s. A lookup
	// that times out gives temperror, never a delay of delivery.
	Timeout Duration `yaml:"timeout"`
}

// DKIM holds signing keys, one per domain and selector.
type DKIM struct {
	Keys []DKIMKey `yaml:"keys"`
}

// DKIMKey is one signing key: a message whose From is in Domain (or a
// subdomain with no key of its own) is signed with it.
type DKIMKey struct {
	Domain   string `yaml:"domain"`
	Selector string `yaml:"selector"`
	// Key is the private key PEM (RSA of 2048 bits or more, or Ed25519;
	// from `gateway dkim-keygen`): env:NAME, file:PATH or secretsmanager:ID.
	Key string `yaml:"key"`
}

// Backend selects where messages and jobs are kept.
type Backend struct {
	// Type is "local" (a directory and an on-disk queue under data_dir, and
	// every stage in-process) or "aws" (S3 and SQS; the stages run as
	// Lambda functions).
	Type string `yaml:"type"`
	AWS  AWS    `yaml:"aws"`
}

// AWS locates the bucket and queues of the aws backend. Credentials come
// from the default chain (environment, ECS task role, Lambda role).
type AWS struct {
	Region      string `yaml:"region"`
	Bucket      string `yaml:"bucket"`
	Prefix      string `yaml:"prefix"`
	SSE         string `yaml:"sse"` // "" (bucket default) | AES256 | aws:kms
	KMSKeyID    string `yaml:"kms_key_id"`
	S3Endpoint  string `yaml:"s3_endpoint"`   // stand-ins and VPC endpoints; AWS_ENDPOINT_URL_S3 works too
	S3PathStyle bool   `yaml:"s3_path_style"` // needed by most S3 stand-ins
	SQSEndpoint string `yaml:"sqs_endpoint"`
	Queues      Queues `yaml:"queues"`
	// DeadLetter names each queue's dead-letter queue. The functions send
	// jobs that can never succeed there at once instead of letting them
	// cycle until the redrive policy's count.
	DeadLetter Queues `yaml:"dead_letter"`
	// LogGroups are the functions' CloudWatch Logs groups, where they log
	// each job's outcome: `gateway trace` reads a message's timeline there
	// (on AWS no trace objects are kept in S3).
	LogGroups []string `yaml:"log_groups"`
}

// Queues are SQS queue URLs.
type Queues struct {
	Inbound string `yaml:"inbound"`
	Webhook string `yaml:"webhook"`
	Relay   string `yaml:"relay"`
	DSN     string `yaml:"dsn"`
}

// Listener is one SMTP listening address.
type Listener struct {
	Name string `yaml:"name"`
	Addr string `yaml:"addr"`
	// Mode is "smtp" (plain with STARTTLS, 25-style), "submission"
	// (STARTTLS, AUTH required, 587-style) or "smtps" (implicit TLS,
	// 465-style).
	Mode string `yaml:"mode"`
	// TLSMinVersion overrides tls.min_version on this listener, e.g. "1.0"
	// for a dedicated port for legacy devices.
	TLSMinVersion string `yaml:"tls_min_version"`
	// ProxyProtocol lists the load balancers (CIDR) that put a PROXY
	// protocol v1/v2 header before each connection (AWS NLB target groups
	// with proxy protocol v2). Their connections must carry one; nobody
	// else's may.
	ProxyProtocol []string `yaml:"proxy_protocol"`
	// DMARCReject refuses at the end of DATA (550 5.7.1), and does not
	// keep, mail from internet identities whose DMARC verdict is fail
	// under a p=reject policy (RFC 7489 section 6.6.3). The check runs
	// before the reply, so such mail waits for DNS; without it the
	// verdicts come after the 250 and routes act on them.
	DMARCReject bool `yaml:"dmarc_reject"`
}

// TLS is the server certificate. With no files, a self-signed certificate
// is generated (and kept under data_dir) so STARTTLS works out of the box.
type TLS struct {
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	MinVersion string `yaml:"min_version"` // 1.0 | 1.1 | 1.2 | 1.3
	// Disable turns TLS off entirely (no STARTTLS, no smtps listeners).
	Disable bool `yaml:"disable"`
}

// Admin is the HTTP listener for health checks, metrics and operations.
type Admin struct {
	// Addr is host:port; "" disables the admin listener.
	Addr string `yaml:"addr"`
	// Token guards the operations API (/v1/...): a literal, env:NAME or
	// file:PATH. Without one, only loopback clients may use it.
	Token string `yaml:"token"`
	// PProf serves /debug/pprof (behind the admin token) for profiling a
	// live gateway; off by default, since profiles expose memory and code.
	PProf bool `yaml:"pprof"`
}

// MaxRecipientsLimit bounds limits.max_recipients. The one-machine
// gateway's spool holds a message's envelope and job (each listing every
// recipient) in one frame of at most 4 MiB. At 1000 recipients with RFC 5321
// paths (256 octets) and ORCPT values of that size, both copies take under
// 1.5 MiB; only envelopes beyond RFC sizes can pass 4 MiB, and those get
// 451 4.3.0 instead of a frame the spool could not read back.
const MaxRecipientsLimit = 1000

// Limits bound what one client can make the gateway do.
type Limits struct {
	MaxMessageBytes int64    `yaml:"max_message_bytes"`
	MaxRecipients   int      `yaml:"max_recipients"`
	MaxLineLength   int      `yaml:"max_line_length"`
	CommandTimeout  Duration `yaml:"command_timeout"`
	DataTimeout     Duration `yaml:"data_timeout"`
	StoreTimeout    Duration `yaml:"store_timeout"`
	// MaxSessions and MaxSessionsPerIP bound concurrent connections; more
	// get 421 4.7.0 at connect.
	MaxSessions      int `yaml:"max_sessions"`
	MaxSessionsPerIP int `yaml:"max_sessions_per_ip"`
	// MaxAuthFailures failed AUTH attempts for one username from one client
	// address within AuthFailureWindow lock that username out from there
	// (421 4.7.0 and the session ends); four times as many from one address
	// (IPv6: one /64) lock the address out of AUTH. Devices that send by
	// network identity are never refused. Each failure is answered slowly.
	MaxAuthFailures   int      `yaml:"max_auth_failures"`
	AuthFailureWindow Duration `yaml:"auth_failure_window"`
	// MaxHeaderBytes bounds the header block of a message; MaxReceived the
	// Received: hops it may carry (more means a mail loop: 554 5.4.6).
	MaxHeaderBytes int64 `yaml:"max_header_bytes"`
	MaxReceived    int   `yaml:"max_received"`
	// MinFreeBytes is the free space data_dir must keep: below it the
	// gateway answers MAIL with 452 4.3.1 and /readyz fails, instead of
	// accepting mail it may not be able to keep (Postfix's queue_minfree).
	// 0 turns the check off.
	MinFreeBytes int64 `yaml:"min_free_bytes"`
}

// Identity is a device or application allowed to send.
type Identity struct {
	Name string `yaml:"name"`
	// Username and PasswordHash (bcrypt, from `gateway hash-password`) let
	// the identity authenticate with AUTH PLAIN or LOGIN. Username defaults
	// to Name. On one machine the hash may be "env:NAME" or "file:PATH",
	// read where it is used (ResolvedPasswordHash), so configuration files
	// kept in git hold no hash.
	Username     string `yaml:"username"`
	PasswordHash string `yaml:"password_hash"`
	// Networks admit clients by source address (CIDR). Without a password,
	// any client in them is this identity (devices that cannot
	// authenticate); with one, they restrict where it may log in from.
	Networks []string `yaml:"networks"`
	// AllowPlaintext lets this identity's clients authenticate and send
	// without TLS (legacy devices on a trusted LAN).
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// AllowedSenders and AllowedRecipients are glob patterns on envelope
	// addresses (case-insensitive, * and ?); empty means any.
	AllowedSenders    []string `yaml:"allowed_senders"`
	AllowedRecipients []string `yaml:"allowed_recipients"`
	// RefuseUndeliverableSenders refuses at MAIL (550 5.7.1) an envelope
	// sender that no route this identity can reach could send as (a relay
	// with send_as and from: keep takes only the mailbox and send_as_also),
	// and at RCPT a recipient whose route cannot; instead of accepting mail
	// the provider would refuse later.
	RefuseUndeliverableSenders bool `yaml:"refuse_undeliverable_senders"`
	// Internet marks an identity that admits mail from the open internet
	// (networks such as 0.0.0.0/0 and ::/0 on a port 25 listener): its
	// messages get SPF, DKIM and DMARC verdicts. Mail from any other
	// identity is trusted: verdicts "none", reason "trusted", no DNS asked.
	Internet bool `yaml:"internet"`
	// Owner receives failure notices for this identity's mail.
	Owner string `yaml:"owner"`
	// Per-identity limits; zero means the global limit (or none for rate).
	MaxMessageBytes   int64 `yaml:"max_message_bytes"`
	MaxRecipients     int   `yaml:"max_recipients"`
	MessagesPerMinute int   `yaml:"messages_per_minute"`
	// Transcript logs this identity's SMTP commands and replies (AUTH
	// payloads redacted, no bodies), to debug one device.
	Transcript bool `yaml:"transcript"`
}

// Route is one rule of the ordered route table.
type Route struct {
	Name      string     `yaml:"name"`
	Match     Match      `yaml:"match"`
	Webhook   *Webhook   `yaml:"webhook"`
	Directory *Directory `yaml:"directory"`
	Relay     *Relay     `yaml:"relay"`
	Reject    bool       `yaml:"reject"`
	// Retention overrides the top-level retention for messages this route
	// took; a message that went to several routes is kept for the longest
	// of theirs. 0 means the top-level retention.
	Retention Duration `yaml:"retention"`
}

// Relay is a route target that sends mail onward, or the way DSNs go out.
type Relay struct {
	// Type is "smtp" (a smarthost), "ses" (Amazon SES v2), "graph"
	// (Microsoft Graph sendMail as a Microsoft 365 mailbox), "gmail" (the
	// Gmail API as a Google Workspace mailbox) or "file" (write each
	// message as an .eml file under Path: the embedded default).
	Type string `yaml:"type"`

	Addr              string `yaml:"addr"` // smtp: host:port
	TLS               string `yaml:"tls"`  // smtp: starttls (default) | implicit | none
	Username          string `yaml:"username"`
	Password          string `yaml:"password"`       // literal, env:NAME, file:PATH or secretsmanager:ID
	AuthMechanism     string `yaml:"auth_mechanism"` // plain | login | xoauth2 (with oauth); default PLAIN when offered, else LOGIN
	AllowInsecureAuth bool   `yaml:"allow_insecure_auth"`
	// CAFile (smtp) is a PEM file of the CA certificates the smarthost's
	// certificate must chain to, for a smarthost with a private CA. They
	// replace the system roots for this relay only, as Postfix's
	// smtp_tls_CAfile does (tls_append_default_CA defaults to no); the
	// certificate must still name the host of Addr. A relative path is
	// from the working directory, as tls.cert_file's is. Empty: the
	// system roots.
	CAFile string `yaml:"ca_file"`
	// OAuth is where access tokens come from: for graph and gmail always,
	// for smtp with auth_mechanism xoauth2 (Username is then the mailbox
	// the relay signs in as).
	OAuth *OAuth `yaml:"oauth"`

	// SendAs is the mailbox the route sends as: the Graph user or Gmail
	// account (required there), and for smtp the envelope sender every
	// message gets (default: the sender as received). Mailbox providers
	// accept only what the signed-in mailbox may send as.
	SendAs string `yaml:"send_as"`
	// From says what becomes of the message's From field: "keep" (the
	// default: sent as the device wrote it) or "rewrite" (From becomes
	// SendAs, and the device's From is kept as OriginalFrom says). Only
	// the copy sent changes; the stored message never does.
	From string `yaml:"from"`
	// OriginalFrom is where a rewritten From's old value goes:
	// "reply-to" (the default; added only when the message has no
	// Reply-To) or "header" (an X-Original-From field).
	OriginalFrom string `yaml:"original_from"`
	// SendAsAlso lists further From addresses (glob patterns) the mailbox
	// may send as with from: keep (its aliases, or mailboxes it has Send
	// As rights on); identities with refuse_undeliverable_senders refuse
	// other senders at MAIL.
	SendAsAlso []string `yaml:"send_as_also"`
	// SaveToSentItems keeps a copy of each message in the mailbox's Sent
	// Items (graph; default false). Gmail always keeps one.
	SaveToSentItems bool `yaml:"save_to_sent_items"`
	// BaseURL overrides the API root (graph, gmail): national clouds, tests.
	BaseURL string `yaml:"base_url"`

	ConfigurationSet string `yaml:"configuration_set"` // ses
	FromARN          string `yaml:"from_arn"`          // ses

	Path string `yaml:"path"` // file: directory, relative to data_dir

	MaxAge      Duration `yaml:"max_age"`      // default 24h
	DelayNotice Duration `yaml:"delay_notice"` // 0: no delay notices

	// DKIMSign signs each message sent with the dkim key of its From
	// domain (after any From rewrite), when there is one.
	DKIMSign bool `yaml:"dkim_sign"`
}

// Mailbox is the mailbox a relay signs in or sends as: SendAs, or for
// smtp with xoauth2 Username when SendAs is empty.
func (r *Relay) Mailbox() string {
	if r.SendAs != "" || r.Type != "smtp" {
		return r.SendAs
	}
	return r.Username
}

// OAuth is an OAuth 2.0 client that gets access tokens for a relay.
type OAuth struct {
	// Provider is "entra" (Microsoft Entra ID client credentials) or
	// "google" (a service account with domain-wide delegation, acting as
	// the relay's mailbox).
	Provider string `yaml:"provider"`
	// entra: the app registration, and one of its credentials.
	Tenant       string `yaml:"tenant"`        // directory (tenant) id or verified domain
	ClientID     string `yaml:"client_id"`     // application (client) id
	ClientSecret string `yaml:"client_secret"` // literal, env:NAME, file:PATH or secretsmanager:ID
	// Certificate is the app's certificate credential instead of a client
	// secret: PEM holding the certificate and its unencrypted private key
	// (env:NAME, file:PATH or secretsmanager:ID). Tokens are then asked
	// for with a client assertion signed by the key.
	Certificate string `yaml:"certificate"`
	// ServiceAccountKey is the google service account's JSON key file
	// (env:NAME, file:PATH or secretsmanager:ID).
	ServiceAccountKey string `yaml:"service_account_key"`
	// Scope defaults to what the relay type needs: Graph's or Exchange
	// Online's /.default for entra, gmail.send (API) or
	// https://mail.google.com/ (SMTP) for google.
	Scope string `yaml:"scope"`
	// TokenURL overrides the provider's token endpoint (national clouds,
	// tests).
	TokenURL string `yaml:"token_url"`
}

// Scopes the relay types need by default.
const (
	OutlookScope    = "https://outlook.office365.com/.default" // Exchange Online SMTP XOAUTH2
	GraphScope      = "https://graph.microsoft.com/.default"
	GmailSendScope  = "https://www.googleapis.com/auth/gmail.send"
	GoogleMailScope = "https://mail.google.com/" // Gmail SMTP XOAUTH2
)

// DefaultScope is the scope r's tokens are for when oauth.scope is empty.
func (r *Relay) DefaultScope() string {
	google := r.OAuth != nil && r.OAuth.Provider == "google"
	switch {
	case r.Type == "graph":
		return GraphScope
	case r.Type == "gmail":
		return GmailSendScope
	case google:
		return GoogleMailScope
	}
	return OutlookScope
}

// SecretRefs lists the relay's secrets as written (password and the
// oauth credentials), for finding secretsmanager: ones.
func (r *Relay) SecretRefs() []string {
	refs := []string{r.Password}
	if r.OAuth != nil {
		refs = append(refs, r.OAuth.ClientSecret, r.OAuth.Certificate, r.OAuth.ServiceAccountKey)
	}
	return refs
}

// DSN configures delivery status notifications (bounces) for mail that was
// accepted but could not be delivered.
type DSN struct {
	// Domain of MAILER-DAEMON@domain; hostname when empty.
	Domain string `yaml:"domain"`
	// OwnerOnly sends notices to the identity's owner instead of the
	// envelope sender (devices often use senders nobody reads).
	OwnerOnly bool `yaml:"owner_only"`
	// MaxReturnBytes bounds the original returned with RET=FULL; a larger
	// one is returned as its header only (RFC 3461 section 4.3).
	MaxReturnBytes int64 `yaml:"max_return_bytes"`
	// Relay is how notices are sent; default: files under data_dir/dsn-outbox.
	Relay Relay `yaml:"relay"`
	// DKIMSign signs notices with the dkim key of Domain.
	DKIMSign bool `yaml:"dkim_sign"`
}

// Match holds a route's conditions; every condition given must hold.
type Match struct {
	Recipients []string          `yaml:"recipients"`
	Senders    []string          `yaml:"senders"`
	Identities []string          `yaml:"identities"`
	Headers    map[string]string `yaml:"headers"`
	// SPF, DKIM and DMARC match the message's verdicts (pass, fail,
	// softfail, neutral, none, temperror, permerror; policy for DKIM);
	// a route with one matches only mail from internet identities. DKIM
	// matches when any signature's result is listed.
	SPF   []string `yaml:"spf"`
	DKIM  []string `yaml:"dkim"`
	DMARC []string `yaml:"dmarc"`
}

// Webhook is a route target that POSTs signed JSON.
type Webhook struct {
	URL string `yaml:"url"`
	// Secrets sign each request (several during key rotation). Each is a
	// literal ("whsec_<base64>" or plain text), "env:NAME", "file:PATH" or,
	// with backend.type aws, "secretsmanager:<secret ARN or name>" (read at
	// run time and re-read as it rotates).
	Secrets    []string `yaml:"secrets"`
	Payload    string   `yaml:"payload"` // json | raw
	Timeout    Duration `yaml:"timeout"`
	MaxAge     Duration `yaml:"max_age"`
	FailureURL string   `yaml:"failure_url"`
	// Allow lists what url and failure_url may reach besides public
	// addresses: CIDR networks ("10.1.0.0/16"), addresses ("127.0.0.1")
	// and host names ("app.internal", "*.corp.example": the addresses
	// those names resolve to). It is checked on the address each
	// connection is made to, after DNS. Link-local and cloud metadata
	// addresses are refused whatever it says.
	Allow []string `yaml:"allow"`
	// AllowPrivate: true is shorthand for allowing every loopback, private
	// and shared (CGNAT) address; prefer allow, which opens only the
	// application's own.
	AllowPrivate bool `yaml:"allow_private"`
}

// EgressAllow is the webhook's address policy (package egress): allow and
// allow_private together. Entries Validate refuses are left out.
func (w *Webhook) EgressAllow() egress.Allow {
	var a egress.Allow
	for _, e := range w.Allow {
		if one, err := egress.ParseAllow([]string{e}); err == nil {
			a.Prefixes = append(a.Prefixes, one.Prefixes...)
			a.Hosts = append(a.Hosts, one.Hosts...)
		}
	}
	a.Private = w.AllowPrivate
	return a
}

// Directory is a route target that writes each webhook payload to a
// directory instead of POSTing it: useful to try Postern out.
type Directory struct {
	Path string `yaml:"path"`
	// Payload is json (the email.received event, <webhook-id>.json) or
	// raw (the message, <webhook-id>.eml, with its envelope beside it in
	// <webhook-id>.envelope.json).
	Payload string `yaml:"payload"`
}

// Delivery tunes the stages behind the queue.
type Delivery struct {
	// Workers is the number of concurrent jobs per stage.
	Workers int `yaml:"workers"`
	// InlineAttachmentBytes is the size under which attachments travel
	// inline (base64) in the webhook payload.
	InlineAttachmentBytes int64 `yaml:"inline_attachment_bytes"`
	// BurstLag is how long the one-machine gateway's stages may hold back
	// while SMTP clients are uploading, so that a burst of mail is
	// acknowledged at the speed of the disk instead of sharing the CPUs
	// with parsing and delivery. A job older than this is processed at
	// once, so under sustained load nothing waits longer. 0 turns it off.
	BurstLag Duration `yaml:"burst_lag"`
	// StallAlarm is how long the one-machine gateway's spool mover may fail,
	// or leave acknowledged messages unmoved, before /readyz reports it.
	StallAlarm Duration `yaml:"stall_alarm"`
	// PublicURL is the base URL applications reach the admin listener at,
	// where the one-machine gateway serves the signed links of webhook
	// payloads; "" means http://<the admin listener's address> (the
	// hostname in place of a wildcard host).
	PublicURL string `yaml:"public_url"`
	// URLTTL is how long such a link works after the attempt that made it.
	URLTTL Duration `yaml:"url_ttl"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | text
}

// Duration is a time.Duration written as "30s", "5m", "24h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as \"30s\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration; write e.g. \"30s\", \"5m\" or \"24h\"", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default is the embedded default: SMTP on 127.0.0.1:2525 open to loopback
// clients, data under ./data, every message written as a webhook payload to
// ./data/outbox.
func Default() *Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return &Config{
		Hostname:  host,
		DataDir:   "./data",
		Backend:   Backend{Type: "local"},
		Listeners: []Listener{{Name: "smtp", Addr: "127.0.0.1:2525", Mode: "smtp"}},
		TLS:       TLS{MinVersion: "1.2"},
		Admin:     Admin{Addr: "127.0.0.1:8025"},
		Limits: Limits{
			MaxMessageBytes: 25 << 20,
			MaxRecipients:   100,
			MaxLineLength:   2000,
			CommandTimeout:  Duration(5 * time.Minute),
			DataTimeout:     Duration(10 * time.Minute),
			StoreTimeout:    Duration(60 * time.Second),

			MaxSessions:       1000,
			MaxSessionsPerIP:  20,
			MaxAuthFailures:   5,
			AuthFailureWindow: Duration(15 * time.Minute),
			MaxHeaderBytes:    1 << 20,
			MaxReceived:       50,
			MinFreeBytes:      1 << 30,
		},
		Identities: []Identity{{Name: "local", Networks: []string{"127.0.0.0/8", "::1/128"}, AllowPlaintext: true}},
		Routes: []Route{{
			Name:      "default",
			Match:     Match{Recipients: []string{"*"}},
			Directory: &Directory{Path: "outbox"},
		}},
		DSN:      DSN{MaxReturnBytes: 10 << 20, Relay: Relay{Type: "file", Path: "dsn-outbox"}},
		Delivery: Delivery{Workers: 4, InlineAttachmentBytes: 256 << 10, BurstLag: Duration(5 * time.Second), StallAlarm: Duration(time.Minute), URLTTL: Duration(DefaultURLTTL)},
		Log:      Log{Level: "info", Format: "json"},

		Retention: Duration(DefaultRetention),
	}
}

// DefaultURLTTL is how long a link in a local webhook payload works: 7
// days, as long as S3 lets a pre-signed URL live on AWS.
const DefaultURLTTL = 7 * 24 * time.Hour

// DefaultRetention is how long local mode keeps messages unless told
// otherwise: 30 days.
const DefaultRetention = 30 * 24 * time.Hour

// Load reads the file at path over the defaults (lists in the file replace
// the default lists), applies environment overrides and validates.
func Load(path string, getenv func(string) string) (*Config, error) {
	c := Default()
	if inline := getenvOr(getenv, "POSTERN_CONFIG_YAML"); path == "" && inline != "" {
		// Lambda functions get their configuration inline from the template.
		if err := decodeInto(c, "POSTERN_CONFIG_YAML", []byte(inline), true); err != nil {
			return nil, err
		}
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
		if err := decodeInto(c, path, b, true); err != nil {
			return nil, err
		}
	}
	return c.finish(getenv)
}

// Parse is Load for a configuration already read (the AWS functions fetch
// theirs from S3 or SSM at cold start, see package configsrc): data over
// the defaults, then the environment overrides, then validation. source
// names where data came from (an s3:// or ssm: URI) in errors.
func Parse(source string, data []byte, getenv func(string) string) (*Config, error) {
	c := Default()
	if err := decodeInto(c, source, data, true); err != nil {
		return nil, err
	}
	return c.finish(getenv)
}

// finish applies the environment overrides and validates.
func (c *Config) finish(getenv func(string) string) (*Config, error) {
	if err := c.applyEnv(getenv); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := c.checkStrength(); err != nil {
		return nil, err
	}
	return c, nil
}

// Env overrides, applied after the file.
var envKeys = []struct {
	name, key string
	set       func(c *Config, v string) error
}{
	{"POSTERN_HOSTNAME", "hostname", func(c *Config, v string) error { c.Hostname = v; return nil }},
	{"POSTERN_DATA_DIR", "data_dir", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"POSTERN_SMTP_ADDR", "listeners[0].addr", func(c *Config, v string) error {
		if len(c.Listeners) == 0 {
			c.Listeners = []Listener{{Name: "smtp"}}
		}
		c.Listeners[0].Addr = v
		return nil
	}},
	{"POSTERN_BACKEND", "backend.type", func(c *Config, v string) error { c.Backend.Type = v; return nil }},
	{"POSTERN_AWS_REGION", "backend.aws.region", func(c *Config, v string) error { c.Backend.AWS.Region = v; return nil }},
	{"POSTERN_BUCKET", "backend.aws.bucket", func(c *Config, v string) error { c.Backend.AWS.Bucket = v; return nil }},
	{"POSTERN_S3_ENDPOINT", "backend.aws.s3_endpoint", func(c *Config, v string) error { c.Backend.AWS.S3Endpoint = v; return nil }},
	{"POSTERN_S3_PATH_STYLE", "backend.aws.s3_path_style", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		c.Backend.AWS.S3PathStyle = b
		return nil
	}},
	{"POSTERN_SQS_ENDPOINT", "backend.aws.sqs_endpoint", func(c *Config, v string) error { c.Backend.AWS.SQSEndpoint = v; return nil }},
	{"POSTERN_QUEUE_INBOUND", "backend.aws.queues.inbound", func(c *Config, v string) error { c.Backend.AWS.Queues.Inbound = v; return nil }},
	{"POSTERN_QUEUE_WEBHOOK", "backend.aws.queues.webhook", func(c *Config, v string) error { c.Backend.AWS.Queues.Webhook = v; return nil }},
	{"POSTERN_QUEUE_RELAY", "backend.aws.queues.relay", func(c *Config, v string) error { c.Backend.AWS.Queues.Relay = v; return nil }},
	{"POSTERN_QUEUE_DSN", "backend.aws.queues.dsn", func(c *Config, v string) error { c.Backend.AWS.Queues.DSN = v; return nil }},
	{"POSTERN_DLQ_INBOUND", "backend.aws.dead_letter.inbound", func(c *Config, v string) error { c.Backend.AWS.DeadLetter.Inbound = v; return nil }},
	{"POSTERN_DLQ_WEBHOOK", "backend.aws.dead_letter.webhook", func(c *Config, v string) error { c.Backend.AWS.DeadLetter.Webhook = v; return nil }},
	{"POSTERN_DLQ_RELAY", "backend.aws.dead_letter.relay", func(c *Config, v string) error { c.Backend.AWS.DeadLetter.Relay = v; return nil }},
	{"POSTERN_DLQ_DSN", "backend.aws.dead_letter.dsn", func(c *Config, v string) error { c.Backend.AWS.DeadLetter.DSN = v; return nil }},
	{"POSTERN_LOG_GROUPS", "backend.aws.log_groups", func(c *Config, v string) error {
		c.Backend.AWS.LogGroups = nil
		for _, g := range strings.Split(v, ",") {
			if g = strings.TrimSpace(g); g != "" {
				c.Backend.AWS.LogGroups = append(c.Backend.AWS.LogGroups, g)
			}
		}
		return nil
	}},
	{"POSTERN_ADMIN_ADDR", "admin.addr", func(c *Config, v string) error { c.Admin.Addr = v; return nil }},
	{"POSTERN_LOG_LEVEL", "log.level", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"POSTERN_LOG_FORMAT", "log.format", func(c *Config, v string) error { c.Log.Format = v; return nil }},
	{"POSTERN_MAX_MESSAGE_BYTES", "limits.max_message_bytes", func(c *Config, v string) error {
		var n int64
		if _, err := fmt.Sscan(v, &n); err != nil {
			return fmt.Errorf("want a whole number of bytes")
		}
		c.Limits.MaxMessageBytes = n
		return nil
	}},
}

func (c *Config) applyEnv(getenv func(string) string) error {
	if getenv == nil {
		return nil
	}
	var errs []error // every bad override, not only the first
	for _, e := range envKeys {
		v := getenv(e.name)
		if v == "" {
			continue
		}
		if err := e.set(c, v); err != nil {
			errs = append(errs, fmt.Errorf("config: %s (overrides %s): %w", e.name, e.key, err))
		}
	}
	return errors.Join(errs...)
}

func getenvOr(getenv func(string) string, k string) string {
	if getenv == nil {
		return ""
	}
	return getenv(k)
}

// EnvNames lists the environment overrides and the keys they set, for help
// texts.
func EnvNames() [][2]string {
	out := make([][2]string, len(envKeys))
	for i, e := range envKeys {
		out[i] = [2]string{e.name, e.key}
	}
	return out
}
