// Package oauthtok fetches and caches OAuth2 access tokens for relaying into
// mail providers: Microsoft Entra ID client credentials (a client secret or a
// certificate) and Google service accounts. Endpoint errors are classified
// for the retry/DSN machinery: configuration and consent failures are
// permanent and keep the provider's code and text; throttling, 5xx and
// network failures are temporary and carry Retry-After.
package oauthtok

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/postern/postern/internal/postern"
)

// Scopes for Entra client credentials: one resource, always /.default (the
// app's granted application permissions).
const (
	ScopeGraph   = "https://graph.microsoft.com/.default"
	ScopeOutlook = "https://outlook.office365.com/.default" // SMTP XOAUTH2
)

// Key identifies one cached token.
type Key struct {
	Provider, Tenant, Client, Scope string
}

// Fetcher obtains a fresh token from a provider's endpoint, without caching.
type Fetcher interface {
	Key() Key
	Fetch(ctx context.Context) (*oauth2.Token, error)
}

// Entra fetches tokens with the client credentials grant from the Microsoft
// identity platform v2.0 token endpoint, authenticating the app with a client
// secret or with a certificate (a client assertion JWT signed by its key).
type Entra struct {
	Tenant   string // directory (tenant) id or verified domain
	ClientID string // application (client) id
	// Secret returns the client secret; called on each fetch so a rotated
	// secret is picked up without a restart.
	Secret func(ctx context.Context) (string, error)
	// Certificate returns PEM holding the app's certificate and its private key; when set, it is used instead of Secret.
	Certificate func(ctx context.Context) ([]byte, error)
	Scope       string       // e.g. ScopeGraph
	TokenURL    string       // default https://login.microsoftonline.com/<Tenant>/oauth2/v2.0/token
	HTTPClient  *http.Client // default http.DefaultClient

	now func() time.Time // signs client assertions; time.Now unless a test sets it
}

// Key implements Fetcher.
func (e *Entra) Key() Key {
	return Key{Provider: "entra", Tenant: e.Tenant, Client: e.ClientID, Scope: e.Scope}
}

func (e *Entra) tokenURL() string {
	if e.TokenURL != "" {
		return e.TokenURL
	}
	return "https://login.microsoftonline.com/" + url.PathEscape(e.Tenant) + "/oauth2/v2.0/token"
}

// Fetch implements Fetcher. Errors are *Error from the endpoint (permanent or
// temporary as classified), or temporary transport errors. A certificate PEM
// that cannot be used (no certificate or key, a key that does not match, an
// encrypted or non-RSA key, an expired certificate) is permanent.
func (e *Entra) Fetch(ctx context.Context) (*oauth2.Token, error) {
	conf := clientcredentials.Config{
		ClientID: e.ClientID,
		TokenURL: e.tokenURL(),
		Scopes:   []string{e.Scope},
		// Entra takes client_id and the credential in the form body; fixing
		// the style also avoids oauth2's probe with Basic auth first.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	switch {
	case e.Certificate != nil:
		a, err := e.clientAssertion(ctx, conf.TokenURL)
		if err != nil {
			return nil, err
		}
		conf.EndpointParams = url.Values{"client_assertion_type": {ClientAssertionType}, "client_assertion": {a}}
	case e.Secret != nil:
		secret, err := e.Secret(ctx)
		if err != nil {
			return nil, fmt.Errorf("oauthtok: entra app %s: client secret: %w", e.ClientID, err)
		}
		conf.ClientSecret = secret
	default:
		return nil, postern.Permanent(fmt.Errorf("oauthtok: entra app %s: no client secret or certificate configured", e.ClientID))
	}
	if e.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, e.HTTPClient)
	}
	tok, err := conf.Token(ctx)
	if err != nil {
		return nil, classify("entra", err)
	}
	// clientcredentials leaves ExpiresIn unset; the cache wants the wire
	// value to time renewal on its own clock.
	if tok.ExpiresIn == 0 {
		switch v := tok.Extra("expires_in").(type) {
		case float64:
			tok.ExpiresIn = int64(v)
		case string: // some gateways send it quoted
			tok.ExpiresIn, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return tok, nil
}

// clientAssertion reads the certificate PEM (each fetch, so a rotated
// certificate is picked up without a restart) and signs an assertion for aud.
func (e *Entra) clientAssertion(ctx context.Context, aud string) (string, error) {
	data, err := e.Certificate(ctx)
	if err != nil {
		return "", fmt.Errorf("oauthtok: entra app %s: certificate: %w", e.ClientID, err)
	}
	now := time.Now()
	if e.now != nil {
		now = e.now()
	}
	cred, err := parseCertificatePEM(data, now)
	if err != nil {
		err = fmt.Errorf("oauthtok: entra app %s: certificate: %w", e.ClientID, err)
		if errors.Is(err, errNotYetValid) {
			return "", err
		}
		return "", postern.Permanent(err)
	}
	a, err := cred.assertion(e.ClientID, aud, now)
	if err != nil {
		// Signing with a parsed key fails only for keys crypto/rsa refuses
		// (under 1024 bits): the same on every retry.
		return "", postern.Permanent(fmt.Errorf("oauthtok: entra app %s: certificate: %w", e.ClientID, err))
	}
	return a, nil
}

// Error is an error answer from a token endpoint.
type Error struct {
	Provider     string
	Status       int
	Code         string // OAuth error, e.g. invalid_client
	ProviderCode string // e.g. AADSTS7000215
	Description  string // first line of error_description
	TraceID      string
	Correlation  string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "oauthtok: %s token endpoint: HTTP %d", e.Provider, e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	} else if e.ProviderCode != "" {
		b.WriteString(": " + e.ProviderCode)
	}
	if e.TraceID != "" {
		b.WriteString(" (trace " + e.TraceID + ")")
	}
	return b.String()
}

// permanentCodes are OAuth errors no retry can fix: the app registration,
// secret, scope or consent must change.
var permanentCodes = map[string]bool{
	"invalid_client": true, "unauthorized_client": true, "invalid_scope": true,
	"invalid_grant": true, "invalid_request": true, "unsupported_grant_type": true,
	"consent_required": true, "access_denied": true,
}

func classify(provider string, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		// Transport failure or unparsable answer: temporary.
		return fmt.Errorf("oauthtok: %s token endpoint: %w", provider, err)
	}
	e := &Error{Provider: provider, Status: re.Response.StatusCode, Code: re.ErrorCode}
	var body struct {
		Description   string `json:"error_description"`
		Codes         []int  `json:"error_codes"`
		TraceID       string `json:"trace_id"`
		CorrelationID string `json:"correlation_id"`
	}
	if json.Unmarshal(re.Body, &body) == nil {
		e.TraceID, e.Correlation = body.TraceID, body.CorrelationID
		if len(body.Codes) > 0 {
			e.ProviderCode = "AADSTS" + strconv.Itoa(body.Codes[0])
		}
	}
	desc := re.ErrorDescription
	if desc == "" {
		desc = body.Description
	}
	// Entra appends trace, correlation and timestamp lines; keep the message.
	desc, _, _ = strings.Cut(desc, "\r\n")
	e.Description = strings.TrimSpace(strings.SplitN(desc, "\n", 2)[0])
	if e.ProviderCode == "" {
		if c, _, ok := strings.Cut(e.Description, ":"); ok && strings.HasPrefix(c, "AADSTS") {
			e.ProviderCode = c
		}
	}

	switch s := e.Status; {
	case s == http.StatusTooManyRequests || s >= 500 || e.Code == "temporarily_unavailable":
		if d, ok := retryAfter(re.Response.Header.Get("Retry-After"), time.Now()); ok {
			return postern.RetryAfter(e, d)
		}
		return e
	case e.ProviderCode == "AADSTS700024":
		// The assertion's time range: this host's clock is off, which
		// the operator fixes (NTP) without touching the app; retried,
		// the mail goes out then instead of bouncing meanwhile.
		return e
	case s >= 400 && s < 500 && (e.Code != "" || s == http.StatusUnauthorized || s == http.StatusForbidden):
		return postern.Permanent(e)
	}
	return e
}

// retryAfter parses Retry-After as seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
