package oauthtok

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/postern/postern/internal/postern"
)

// ScopeGmailSend lets a token send mail as the delegated user and nothing else.
const ScopeGmailSend = "https://www.googleapis.com/auth/gmail.send"

// Google fetches tokens for a Google Workspace mailbox with a service
// account's key and domain-wide delegation: a JWT signed with the key,
// naming the mailbox as "sub", exchanged at the token endpoint
// (RFC 7523 jwt-bearer grant).
type Google struct {
	// ServiceAccountJSON returns the service account's key file (JSON, type
	// "service_account"); called on each fetch so a rotated key is picked up
	// without a restart.
	ServiceAccountJSON func(ctx context.Context) ([]byte, error)
	Subject            string   // the mailbox to act as (JWT "sub")
	Scopes             []string // default ScopeGmailSend
	// TokenURL overrides the key file's token_uri (default
	// https://oauth2.googleapis.com/token); it is also the JWT's "aud".
	TokenURL   string
	HTTPClient *http.Client // default http.DefaultClient
}

func (g *Google) scopes() []string {
	if len(g.Scopes) == 0 {
		return []string{ScopeGmailSend}
	}
	return g.Scopes
}

// Key implements Fetcher. The service account is not part of the key (it is
// only known once the key file is read): tokens are per mailbox and scopes,
// so two service accounts delegated for the same mailbox share one token.
func (g *Google) Key() Key {
	return Key{Provider: "google", Client: g.Subject, Scope: strings.Join(g.scopes(), " ")}
}

// Fetch implements Fetcher. A key file that cannot be used is permanent;
// endpoint errors are classified as for Entra: unauthorized_client (no
// domain-wide delegation for these scopes) and invalid_grant (unknown
// mailbox, revoked key) are permanent, 429/5xx temporary.
func (g *Google) Fetch(ctx context.Context) (*oauth2.Token, error) {
	if g.ServiceAccountJSON == nil {
		return nil, postern.Permanent(fmt.Errorf("oauthtok: google mailbox %s: no service account key configured", g.Subject))
	}
	if g.Subject == "" {
		return nil, postern.Permanent(errors.New("oauthtok: google: no mailbox (subject) configured for domain-wide delegation"))
	}
	js, err := g.ServiceAccountJSON(ctx)
	if err != nil {
		return nil, fmt.Errorf("oauthtok: google mailbox %s: service account key: %w", g.Subject, err)
	}
	conf, err := jwtConfig(js, g.scopes())
	if err != nil {
		return nil, postern.Permanent(fmt.Errorf("oauthtok: google mailbox %s: service account key file: %w", g.Subject, err))
	}
	// The jwt package parses the key only when fetching and its error would
	// look temporary; a malformed key never heals.
	if err := checkKey(conf.PrivateKey); err != nil {
		return nil, postern.Permanent(fmt.Errorf("oauthtok: google service account %s: private_key: %v", conf.Email, err))
	}
	conf.Subject = g.Subject
	if g.TokenURL != "" {
		conf.TokenURL = g.TokenURL
	}
	if g.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, g.HTTPClient)
	}
	tok, err := conf.TokenSource(ctx).Token()
	if err != nil {
		return nil, classify("google", withOAuthError(err))
	}
	if tok.ExpiresIn == 0 {
		if v, ok := tok.Extra("expires_in").(float64); ok {
			tok.ExpiresIn = int64(v)
		}
	}
	return tok, nil
}

// jwtConfig reads a service account key file as
// golang.org/x/oauth2/google.JWTConfigFromJSON does; that package would pull
// in the GCE metadata client, which a key-file-only relay never uses.
func jwtConfig(js []byte, scopes []string) (*jwt.Config, error) {
	var f struct {
		Type         string `json:"type"`
		ClientEmail  string `json:"client_email"`
		PrivateKeyID string `json:"private_key_id"`
		PrivateKey   string `json:"private_key"`
		TokenURI     string `json:"token_uri"`
	}
	if err := json.Unmarshal(js, &f); err != nil {
		// Never include the file's text: it holds the private key.
		return nil, redactJSONErr(err)
	}
	if f.Type != "service_account" {
		return nil, fmt.Errorf("\"type\" is %q, want \"service_account\" (download a JSON key of the service account)", f.Type)
	}
	if f.ClientEmail == "" || f.PrivateKey == "" {
		return nil, errors.New("\"client_email\" or \"private_key\" is missing")
	}
	c := &jwt.Config{
		Email: f.ClientEmail, PrivateKey: []byte(f.PrivateKey), PrivateKeyID: f.PrivateKeyID,
		Scopes: scopes, TokenURL: f.TokenURI,
	}
	if c.TokenURL == "" {
		c.TokenURL = GoogleTokenURL
	}
	return c, nil
}

// GoogleTokenURL is Google's OAuth 2.0 token endpoint.
const GoogleTokenURL = "https://oauth2.googleapis.com/token"

// redactJSONErr keeps a JSON syntax error's position but not the text
// around it, which could be part of the key.
func redactJSONErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errors.New("not valid JSON at offset " + strconv.FormatInt(se.Offset, 10))
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q has the wrong type", te.Field)
	}
	return err
}

func checkKey(b []byte) error {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return errors.New("no PEM block")
	}
	if _, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		return nil
	}
	if _, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
		return errors.New("not a PKCS#8 or PKCS#1 RSA key")
	}
	return nil
}

// withOAuthError fills the OAuth error code and description, which the jwt
// package leaves in the body, so classify sees them.
func withOAuthError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "" {
		return err
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(re.Body, &body) != nil {
		return err
	}
	c := *re
	c.ErrorCode, c.ErrorDescription = body.Error, body.Description
	return &c
}
