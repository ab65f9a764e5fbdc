// Package relayfn builds the relay stage and its transports (SMTP
// smarthost, SES v2, Microsoft Graph, the Gmail API, file) from the
// configuration, for the relay function
// (functions/relay), the dsn function (which sends through a transport
// too) and the local process alike.
package relayfn

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dkimsign"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/apirelay"
	"github.com/postern/postern/internal/relay/filerelay"
	"github.com/postern/postern/internal/relay/gmailrelay"
	"github.com/postern/postern/internal/relay/graphrelay"
	"github.com/postern/postern/internal/relay/sendas"
	"github.com/postern/postern/internal/relay/sesrelay"
	"github.com/postern/postern/internal/relay/smtprelay"
	"github.com/postern/postern/internal/secrets"
)

// NewTransport builds the relay transport a relay section describes; key
// names the section in errors. A secretsmanager: password or
// oauth.client_secret is read at run time through cache (see
// lambdafn.SecretCache), which must then be set; any other is read now.
// With auth_mechanism xoauth2 the tokens come from the process's one
// token cache.
//
// The transport sends as r says (send_as, from, original_from): only the
// copy sent changes, never the stored message.
//
// It does not sign: NewSignedTransport does, for the relays whose
// configuration asks for it.
func NewTransport(ctx context.Context, cfg *config.Config, key string, r *config.Relay, cache *secrets.Cache) (relay.Transport, error) {
	return NewSignedTransport(ctx, cfg, key, r, cache, nil)
}

// NewSignedTransport is NewTransport with each message DKIM-signed by dk
// (nil signs nothing). Signing is the last change to the bytes, inside
// the send_as and From rewrites, so the rewritten From picks the signing
// domain and nothing changes the message after the signature is made.
func NewSignedTransport(ctx context.Context, cfg *config.Config, key string, r *config.Relay, cache *secrets.Cache, dk *DKIM) (relay.Transport, error) {
	t, err := newTransport(ctx, cfg, key, r, cache)
	if err != nil {
		return nil, err
	}
	if dk != nil {
		t = dk.wrap(t)
	}
	return sendas.Wrap(t, sendas.Config{SendAs: r.SendAs, RewriteFrom: r.From == "rewrite",
		OriginalFrom: r.OriginalFrom, Mailbox: r.Mailbox()}), nil
}

// DKIM signs what one process's transports send with keys of dkim.keys:
// one is built per stage, shared by all its transports.
//
// env: and file: keys are read and parsed when it is built, so a missing
// or bad key stops the start, as a bad password does. secretsmanager:
// keys are read at each send through the secrets cache, as passwords are:
// a rotated key applies within the cache's TTL, and a Secrets Manager
// outage fails the send (the job is retried; the cache serves the last
// value through short outages) instead of the function's start.
type DKIM struct {
	static *dkimsign.Signer // every key read at build; nil when some are read at run time
	keys   []dkimKey
	cache  *secrets.Cache
	opts   dkimsign.Options

	// mu guards pems and signer: signer was built from pems, the key
	// texts as last read, in keys' order; both nil until the first send.
	mu     sync.Mutex
	pems   []string
	signer *dkimsign.Signer
}

// dkimKey is one dkim.keys entry: its PEM read at build, or ref, the
// secretsmanager: reference read at each send.
type dkimKey struct {
	name             string // "dkim.keys[i].key", for errors
	domain, selector string
	pem, ref         string
}

// DKIMKeyRefs lists the key references (as written) NewDKIM reads for
// domain, for finding secretsmanager: ones.
func DKIMKeyRefs(cfg *config.Config, domain string) []string {
	var refs []string
	for _, k := range cfg.DKIM.Keys {
		if signs(k.Domain, domain) {
			refs = append(refs, k.Key)
		}
	}
	return refs
}

// signs reports whether a key of keyDomain signs mail From domain: its
// own or a subdomain's ("" stands for every domain). Relays send From any
// domain, so they take every key; notices come From one, so the dsn stage
// reads (and may be granted) only that domain's keys.
func signs(keyDomain, domain string) bool {
	if domain == "" {
		return true
	}
	kd := strings.ToLower(strings.TrimSuffix(keyDomain, "."))
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	return d == kd || strings.HasSuffix(d, "."+kd)
}

// NewDKIM builds the signer over the dkim.keys that sign domain ("" for
// all), logging to log what it signs (and why not) per message. A
// secretsmanager: key needs cache; see DKIM for when keys are read.
func NewDKIM(cfg *config.Config, domain string, cache *secrets.Cache, log *slog.Logger) (*DKIM, error) {
	d := &DKIM{cache: cache, opts: dkimsign.Options{Logger: log}}
	lazy := false
	for i, k := range cfg.DKIM.Keys {
		if !signs(k.Domain, domain) {
			continue
		}
		dk := dkimKey{name: fmt.Sprintf("dkim.keys[%d].key", i), domain: k.Domain, selector: k.Selector}
		if lambdafn.UsesSecretsManager(k.Key) {
			if cache == nil {
				return nil, fmt.Errorf("config: %s: secretsmanager: secrets are read by the AWS functions only; set backend.type aws or write \"env:NAME\" or \"file:PATH\"", dk.name)
			}
			dk.ref, lazy = k.Key, true
		} else {
			pem, err := config.ResolveSecret(k.Key)
			if err != nil {
				return nil, fmt.Errorf("config: %s: %w", dk.name, err)
			}
			dk.pem = pem
		}
		d.keys = append(d.keys, dk)
	}
	if lazy {
		return d, nil
	}
	pems := make([]string, len(d.keys))
	for i, k := range d.keys {
		pems[i] = k.pem
	}
	s, err := d.build(pems)
	if err != nil {
		return nil, err
	}
	d.static = s
	return d, nil
}

// build parses pems, one per key, into a Signer.
func (d *DKIM) build(pems []string) (*dkimsign.Signer, error) {
	sels := make([]dkimsign.Selector, len(d.keys))
	for i, k := range d.keys {
		key, err := dkimsign.ParseKey([]byte(pems[i]))
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", k.name, err)
		}
		sels[i] = dkimsign.Selector{Domain: k.domain, Selector: k.selector, Key: key}
	}
	s, err := dkimsign.NewSigner(sels, d.opts)
	if err != nil {
		return nil, fmt.Errorf("config: dkim.keys: %w", err)
	}
	return s, nil
}

// current is the Signer over the keys as they are now: the one built at
// start, or one built from the secretsmanager: keys as the cache gives
// them, rebuilt only when one of them has changed.
func (d *DKIM) current(ctx context.Context) (*dkimsign.Signer, error) {
	if d.static != nil {
		return d.static, nil
	}
	pems := make([]string, len(d.keys))
	for i, k := range d.keys {
		if k.ref == "" {
			pems[i] = k.pem
			continue
		}
		p, err := d.cache.Resolve(ctx, k.ref)
		if err != nil {
			return nil, fmt.Errorf("dkim: %s: %w", k.name, err)
		}
		pems[i] = p
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.signer != nil && slices.Equal(pems, d.pems) {
		return d.signer, nil
	}
	s, err := d.build(pems)
	if err != nil {
		return nil, err
	}
	d.pems, d.signer = pems, s
	return s, nil
}

// wrap signs what t sends.
func (d *DKIM) wrap(t relay.Transport) relay.Transport {
	if d.static != nil {
		return dkimsign.WrapTransport(t, d.static)
	}
	return &lazySigned{dk: d, next: t}
}

// lazySigned signs with the keys as current gives them at each send.
type lazySigned struct {
	dk   *DKIM
	next relay.Transport
}

var _ relay.Transport = (*lazySigned)(nil)

// Send fails, as this side's fault (the job is retried), when a key
// cannot be read: sending unsigned would fail DMARC at receivers that
// the signature was configured for.
func (l *lazySigned) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	s, err := l.dk.current(ctx)
	if err != nil {
		return nil, err
	}
	return dkimsign.WrapTransport(l.next, s).Send(ctx, m)
}

func newTransport(ctx context.Context, cfg *config.Config, key string, r *config.Relay, cache *secrets.Cache) (relay.Transport, error) {
	switch r.Type {
	case "file":
		t, err := filerelay.New(cfg.Path(r.Path))
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", key, err)
		}
		return t, nil
	case "smtp":
		// ca_file's CAs in place of the system roots, when it is set.
		tc, err := r.SmarthostTLS()
		if err != nil {
			return nil, fmt.Errorf("config: %s.ca_file: %w", key, err)
		}
		sc := smtprelay.Config{
			Addr: r.Addr, TLS: smtprelay.TLSMode(r.TLS), TLSConfig: tc, Username: r.Username,
			AuthMechanism: r.AuthMechanism, AllowInsecureAuth: r.AllowInsecureAuth, LocalName: cfg.Hostname,
			Log: slog.Default(), // NewTransport takes no logger: the process default
		}
		if strings.EqualFold(r.AuthMechanism, smtprelay.AuthXOAUTH2) {
			if err := setTokenSource(&sc, key, r, cache); err != nil {
				return nil, err
			}
		}
		switch {
		case r.Password == "":
		case lambdafn.UsesSecretsManager(r.Password):
			if cache == nil {
				return nil, fmt.Errorf("config: %s.password: secretsmanager: secrets are read by the AWS functions only; set backend.type aws or write \"env:NAME\" or \"file:PATH\"", key)
			}
			ref := r.Password
			sc.PasswordSource = func(ctx context.Context) (string, error) { return cache.Resolve(ctx, ref) }
		default:
			pw, err := config.ResolveSecret(r.Password)
			if err != nil {
				return nil, fmt.Errorf("config: %s.password: %w", key, err)
			}
			sc.Password = pw
		}
		t, err := smtprelay.New(sc)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", key, err)
		}
		return t, nil
	case "graph", "gmail":
		api, err := apiConfig(key, r, cache)
		if err != nil {
			return nil, err
		}
		var t relay.Transport
		if r.Type == "graph" {
			t, err = graphrelay.New(graphrelay.Config{Config: api, SaveToSentItems: r.SaveToSentItems})
		} else {
			t, err = gmailrelay.New(api)
		}
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", key, err)
		}
		return apiGate.Wrap(t), nil
	case "ses":
		awsCfg, err := awsclient.LoadConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("config: %s: AWS configuration: %w", key, err)
		}
		return sesrelay.New(sesv2.NewFromConfig(awsCfg), sesrelay.Config{ConfigurationSet: r.ConfigurationSet, FromARN: r.FromARN}), nil
	}
	return nil, fmt.Errorf("config: %s.type: %q is not one of smtp, ses, graph, gmail, file", key, r.Type)
}

// tokens is the process's one OAuth token cache: every relay (routes and
// dsn.relay) signing in with the same app, tenant and scope shares one
// token and one renewal.
var tokens = oauthtok.NewCache()

// setTokenSource gives sc its XOAUTH2 tokens from r.OAuth through tokens.
// A token failure is the transport's to report, as apiConfig's.
func setTokenSource(sc *smtprelay.Config, key string, r *config.Relay, cache *secrets.Cache) error {
	f, err := TokenFetcher(key, r, cache)
	if err != nil {
		return err
	}
	sc.TokenSource = func(ctx context.Context) (string, error) {
		tok, err := tokens.Token(ctx, f)
		if err != nil {
			return "", err
		}
		return tok.AccessToken, nil
	}
	k := f.Key()
	sc.InvalidateToken = func(token string) { tokens.Invalidate(k, token) }
	return nil
}

// apiGate bounds what the Graph and Gmail transports, which hold each
// message whole (up to 150 MiB for Graph), hold at once in this process:
// half a Lambda function's memory, 1 GiB elsewhere.
var apiGate = relay.NewGate(apiMemoryBudget(os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")))

func apiMemoryBudget(lambdaMB string) int64 {
	if mb, err := strconv.ParseInt(lambdaMB, 10, 64); err == nil && mb > 0 {
		return mb << 20 / 2
	}
	return 1 << 30
}

// apiHTTPClient replaces http.DefaultClient for the Graph and Gmail APIs,
// in tests only.
var apiHTTPClient *http.Client

// apiConfig is the shared part of a Graph or Gmail API transport: the
// mailbox, and tokens from r.OAuth through tokens. A token failure is the
// transport's to report (a permanent one is a DSN with the provider's
// reason, a temporary one a retry).
func apiConfig(key string, r *config.Relay, cache *secrets.Cache) (apirelay.Config, error) {
	f, err := TokenFetcher(key, r, cache)
	if err != nil {
		return apirelay.Config{}, err
	}
	k := f.Key()
	return apirelay.Config{
		Mailbox: r.SendAs,
		TokenSource: func(ctx context.Context) (string, error) {
			tok, err := tokens.Token(ctx, f)
			if err != nil {
				return "", err
			}
			return tok.AccessToken, nil
		},
		InvalidateToken: func(token string) { tokens.Invalidate(k, token) },
		BaseURL:         r.BaseURL,
		HTTPClient:      apiHTTPClient,
		Log:             slog.Default(), // NewTransport takes no logger: the process default
	}, nil
}

// TokenFetcher builds the fetcher of r's access tokens from its oauth
// block: Entra ID client credentials with a client secret or a
// certificate, or a Google service account acting as the relay's mailbox;
// for oauth.scope or, when empty, the one r's type needs. Secrets are read
// as NewTransport says. It does not cache: callers go through a Cache.
func TokenFetcher(key string, r *config.Relay, cache *secrets.Cache) (oauthtok.Fetcher, error) {
	o := r.OAuth
	if o == nil {
		return nil, fmt.Errorf("config: %s.oauth: is missing; relay type %s needs oauth with provider entra or google", key, r.Type)
	}
	scope := o.Scope
	if scope == "" {
		scope = r.DefaultScope()
	}
	k := key + ".oauth"
	switch o.Provider {
	case "entra":
		f := &oauthtok.Entra{Tenant: o.Tenant, ClientID: o.ClientID, Scope: scope, TokenURL: o.TokenURL}
		if o.Certificate != "" {
			pem, err := secretSource(k+".certificate", o.Certificate, cache)
			if err != nil {
				return nil, err
			}
			f.Certificate = func(ctx context.Context) ([]byte, error) {
				s, err := pem(ctx)
				return []byte(s), err
			}
			return f, nil
		}
		secret, err := secretSource(k+".client_secret", o.ClientSecret, cache)
		if err != nil {
			return nil, err
		}
		f.Secret = secret
		return f, nil
	case "google":
		js, err := secretSource(k+".service_account_key", o.ServiceAccountKey, cache)
		if err != nil {
			return nil, err
		}
		return &oauthtok.Google{
			ServiceAccountJSON: func(ctx context.Context) ([]byte, error) {
				s, err := js(ctx)
				return []byte(s), err
			},
			Subject: r.Mailbox(), Scopes: strings.Fields(scope), TokenURL: o.TokenURL,
		}, nil
	}
	return nil, fmt.Errorf("config: %s.provider: %q is not one of entra, google", k, o.Provider)
}

// secretSource reads a secret written as config allows: a
// secretsmanager: one at each call through cache (which must then be
// set), any other once, now.
func secretSource(key, ref string, cache *secrets.Cache) (func(context.Context) (string, error), error) {
	if lambdafn.UsesSecretsManager(ref) {
		if cache == nil {
			return nil, fmt.Errorf("config: %s: secretsmanager: secrets are read by the AWS functions only; set backend.type aws or write \"env:NAME\" or \"file:PATH\"", key)
		}
		return func(ctx context.Context) (string, error) { return cache.Resolve(ctx, ref) }, nil
	}
	s, err := config.ResolveSecret(ref)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", key, err)
	}
	return func(context.Context) (string, error) { return s, nil }, nil
}

// Budgets per transport type: what one send may take before the record
// is better left for a later invocation. An SMTP transaction may wait on
// the smarthost's replies; an SES call is one HTTPS request; a file is a
// local write. With Margin each must fit in the dsn function's Timeout
// (60 s in template.yaml) less the adapter's margin, or a notice would
// never start: the awse2e template tests check it.
var transportBudget = map[string]time.Duration{"smtp": 30 * time.Second, "ses": 15 * time.Second,
	"graph": 30 * time.Second, "gmail": 30 * time.Second, "file": 5 * time.Second}

// Margin covers the rest of a relay job: reading the raw message and
// queueing a DSN.
const Margin = 10 * time.Second

// TransportBudget is the most one send through a transport of type typ
// takes, with Margin.
func TransportBudget(typ string) time.Duration {
	if d, ok := transportBudget[typ]; ok {
		return d + Margin
	}
	return transportBudget["smtp"] + Margin
}

// Routes builds a transport for each relay route (cache: see
// NewTransport); those with dkim_sign share one DKIM over every key.
func Routes(ctx context.Context, cfg *config.Config, cache *secrets.Cache) (map[string]relay.Route, error) {
	var dk *DKIM
	if routesSign(cfg) {
		var err error
		// NewTransport takes no logger: the process default.
		if dk, err = NewDKIM(cfg, "", cache, slog.Default()); err != nil {
			return nil, err
		}
	}
	relays := map[string]relay.Route{}
	for _, r := range cfg.Routes {
		if r.Relay == nil {
			continue
		}
		var sign *DKIM
		if r.Relay.DKIMSign {
			sign = dk
		}
		t, err := NewSignedTransport(ctx, cfg, "routes "+r.Name+" relay", r.Relay, cache, sign)
		if err != nil {
			return nil, err
		}
		relays[r.Name] = relay.Route{Transport: t, MaxAge: r.Relay.MaxAge.D(), DelayNotice: r.Relay.DelayNotice.D()}
	}
	return relays, nil
}

// routesSign reports whether some relay route has dkim_sign.
func routesSign(cfg *config.Config) bool {
	for _, r := range cfg.Routes {
		if r.Relay != nil && r.Relay.DKIMSign {
			return true
		}
	}
	return false
}

// New builds the relay stage over routes.
func New(d *lambdafn.Deps, routes map[string]relay.Route) *relay.Handler {
	return relay.New(d.Store, func(name string) (relay.Route, bool) {
		r, ok := routes[name]
		return r, ok
	}, d.Queues[lambdafn.QueueDSN], d.Log)
}

// Budget is the most a relay job takes: its route's transport budget.
func Budget(cfg *config.Config) func(body []byte) time.Duration {
	types := map[string]string{}
	for _, r := range cfg.Routes {
		if r.Relay != nil {
			types[r.Name] = r.Relay.Type
		}
	}
	return func(body []byte) time.Duration {
		var job struct {
			Route string `json:"route"`
		}
		if json.Unmarshal(body, &job) != nil {
			return Margin
		}
		typ, ok := types[job.Route]
		if !ok {
			return Margin
		}
		return TransportBudget(typ)
	}
}

// Build is the relay function's lambdafn.Build.
func Build(ctx context.Context, d *lambdafn.Deps) (lambdafn.Stage, error) {
	var err error
	var cache *secrets.Cache
	needCache := routesSign(d.Config) && lambdafn.UsesSecretsManager(DKIMKeyRefs(d.Config, "")...)
	for _, r := range d.Config.Routes {
		if r.Relay != nil && lambdafn.UsesSecretsManager(r.Relay.SecretRefs()...) {
			needCache = true
		}
	}
	if needCache {
		if cache, err = lambdafn.SecretCache(ctx, d.Config, d.Log); err != nil {
			return lambdafn.Stage{}, err
		}
	}
	routes, err := Routes(ctx, d.Config, cache)
	if err != nil {
		return lambdafn.Stage{}, err
	}
	// On Lambda each attempt is an EMF line on stdout: CloudWatch metrics
	// per route and outcome.
	h := New(d, routes).With(relay.WithObserver(relay.NewEMF(os.Stdout)))
	return lambdafn.Stage{Handler: h, Budget: Budget(d.Config)}, nil
}
