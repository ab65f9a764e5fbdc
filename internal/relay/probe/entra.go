package probe

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/postern/postern/internal/oauthtok"
)

// tokenFailure says what a failed fetch means and how to fix it.
func tokenFailure(ctx context.Context, t Target, f oauthtok.Fetcher, err error) string {
	var oe *oauthtok.Error
	if !errors.As(err, &oe) {
		// A secret that could not be read, a key file that is no key, or
		// the endpoint out of reach: the error names the cause.
		return err.Error()
	}
	if oe.Status == 429 || oe.Status >= 500 || oe.Code == "temporarily_unavailable" {
		return fmt.Sprintf("the %s token endpoint is unavailable (HTTP %d); nothing is wrong with the configuration as far as this shows; try again later", oe.Provider, oe.Status)
	}
	if oe.Provider == "google" {
		return googleTokenFailure(ctx, t, f, oe)
	}
	return entraTokenFailure(t, f.Key(), oe)
}

// entraTokenFailure maps the AADSTS codes a misconfigured app registration
// draws to their fix.
func entraTokenFailure(t Target, k oauthtok.Key, oe *oauthtok.Error) string {
	o := t.Key + ".oauth"
	app := "app " + k.Client
	where := "Entra admin center > App registrations > " + k.Client
	var what, fix string
	switch oe.ProviderCode {
	case "AADSTS7000215":
		what = "the client secret is wrong"
		fix = "put the Value (not the Secret ID) of a current client secret of " + app + " (" + where + " > Certificates & secrets) in " + o + ".client_secret"
	case "AADSTS7000222":
		what = "the client secret has expired"
		fix = "add a new client secret to " + app + " (" + where + " > Certificates & secrets) and put its Value in " + o + ".client_secret"
	case "AADSTS700016":
		what = app + " is not found in tenant " + k.Tenant
		fix = "set " + o + ".client_id to the app's Application (client) ID and " + o + ".tenant to the Directory (tenant) ID it is registered in"
	case "AADSTS90002":
		what = "tenant " + k.Tenant + " is not found"
		fix = "set " + o + ".tenant to your Directory (tenant) ID or one of the tenant's verified domains"
	case "AADSTS65001", "AADSTS650057":
		perm, api := needed(t, k.Scope)
		what = "admin consent for " + perm + " is not granted to " + app
		fix = "grant admin consent for " + perm + ": " + where + " > API permissions > Add a permission > " + api + " > Application permissions > " + perm + ", then Grant admin consent"
	case "AADSTS700027":
		// One code, three causes; Entra's reason tells them apart.
		switch d := oe.Description; {
		case strings.Contains(d, "signature validation"):
			what = "the private key in " + o + ".certificate does not match the certificate registered with " + app
			fix = "put the certificate and its own private key together in " + o + ".certificate, or upload the certificate that goes with the key to " + where + " > Certificates & secrets > Certificates"
		case strings.Contains(d, "expired"):
			what = "the certificate of " + app + " has expired"
			fix = "make a new certificate, upload it to " + where + " > Certificates & secrets > Certificates and put it with its key in " + o + ".certificate"
		default:
			what = "the certificate is not registered with " + app
			fix = "upload the certificate of " + o + ".certificate (its public part, .cer or .pem) to " + where + " > Certificates & secrets > Certificates"
		}
	default:
		what = oe.Error()
		if n, ok := strings.CutPrefix(oe.ProviderCode, "AADSTS"); ok {
			fix = "see https://login.microsoftonline.com/error?code=" + n
		}
		if fix == "" {
			return what
		}
		return what + "; fix: " + fix
	}
	return oe.ProviderCode + ": " + what + "; fix: " + fix
}

// needed is the application permission the relay's token must carry, and
// the API that offers it, by the token's resource.
func needed(t Target, scope string) (perm, api string) {
	if strings.HasPrefix(scope, "https://outlook.") || (t.Relay.Type == "smtp" && !strings.Contains(scope, "graph.")) {
		return "SMTP.SendAsApp", "APIs my organization uses > Office 365 Exchange Online"
	}
	return "Mail.Send", "Microsoft Graph"
}

// appClaims are the claims of an Entra app token the probe reads.
type appClaims struct {
	Aud   string   `json:"aud"`
	AppID string   `json:"appid"` // v1.0 tokens
	AzP   string   `json:"azp"`   // v2.0 tokens
	Tid   string   `json:"tid"`
	Roles []string `json:"roles"`
}

// claims decodes a JWT's payload without verifying it: the token came to
// us over TLS from the token endpoint itself, and Microsoft documents its
// resource tokens as opaque to clients, so the signature is not ours to
// check.
func claims(tok string) (appClaims, bool) {
	var c appClaims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return c, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, false
	}
	return c, true
}

// entraPermission checks the token's roles claim for the permission the
// relay needs.
func entraPermission(t Target, k oauthtok.Key, tok string) Check {
	perm, api := needed(t, k.Scope)
	c, ok := claims(tok)
	if !ok {
		return Check{Name: CheckPermission, Status: NotChecked,
			Text: "the token is not a JWT, so its roles cannot be read; " + perm + " is needed"}
	}
	roles := "none"
	if len(c.Roles) > 0 {
		roles = strings.Join(c.Roles, ", ")
	}
	if slices.Contains(c.Roles, perm) {
		return Check{Name: CheckPermission, Status: OK, Text: "the token carries " + perm + " (roles: " + roles + ")"}
	}
	fix := "fix: Entra admin center > App registrations > " + k.Client + " > API permissions > Add a permission > " + api +
		" > Application permissions > " + perm + ", then Grant admin consent"
	if perm == "Mail.Send" {
		// RBAC for Applications grants in Exchange, not in Entra: the
		// token cannot show such a grant, so say so rather than guess.
		fix += " (a grant made only in Exchange Online RBAC for Applications does not show in the token)"
	}
	return Check{Name: CheckPermission, Status: Failed,
		Text: "the token for " + c.Aud + " does not carry " + perm + " (roles: " + roles + "); " + fix}
}
