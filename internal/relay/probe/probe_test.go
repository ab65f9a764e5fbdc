package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/oauthtok/googletest"
	"github.com/postern/postern/internal/relay/graphrelay/graphtest"
	"github.com/postern/postern/internal/relay/relaytest"
)

const (
	tenant = "contoso.test"
	client = "11111111-2222-3333-4444-555555555555"
	secret = "s3cret~value"
	mbox   = "scanner@contoso.test"
)

// fetcher builds fetchers as relayfn.TokenFetcher does, with the
// credentials written literally in the test's config.
func fetcher(key string, r *config.Relay) (oauthtok.Fetcher, error) {
	o := r.OAuth
	scope := o.Scope
	if scope == "" {
		scope = r.DefaultScope()
	}
	switch o.Provider {
	case "entra":
		f := &oauthtok.Entra{Tenant: o.Tenant, ClientID: o.ClientID, Scope: scope, TokenURL: o.TokenURL,
			Secret: func(context.Context) (string, error) { return o.ClientSecret, nil }}
		if o.Certificate != "" {
			f.Secret, f.Certificate = nil, func(context.Context) ([]byte, error) { return []byte(o.Certificate), nil }
		}
		return f, nil
	case "google":
		return &oauthtok.Google{Subject: r.Mailbox(), Scopes: strings.Fields(scope), TokenURL: o.TokenURL,
			ServiceAccountJSON: func(context.Context) ([]byte, error) { return []byte(o.ServiceAccountKey), nil }}, nil
	}
	return nil, errors.New("config: " + key + ".oauth.provider: unknown")
}

// probe runs the probe over one route's relay and returns the lines it prints.
func probe(t *testing.T, r *config.Relay, clientTLS *tls.Config) (lines []string, failed bool) {
	t.Helper()
	cfg := &config.Config{Routes: []config.Route{{Name: "scanners", Relay: r}}}
	reps := Run(context.Background(), Targets(cfg), Options{Fetcher: fetcher, SMTPTLS: clientTLS, LocalName: "probe.test"})
	var b bytes.Buffer
	Write(&b, reps)
	for _, rep := range reps {
		failed = failed || rep.Failed()
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n"), failed
}

func assertLines(t *testing.T, got []string, failed, wantFailed bool, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") || failed != wantFailed {
		t.Errorf("failed %v (want %v), got\n%s\nwant\n%s", failed, wantFailed, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func entra(t *testing.T) *entratest.JWTServer {
	ent := entratest.NewJWT(t)
	ent.AddApp(tenant, client, secret)
	return ent
}

func graphRelay(ent *entratest.JWTServer) *config.Relay {
	return &config.Relay{Type: "graph", SendAs: mbox, OAuth: &config.OAuth{
		Provider: "entra", Tenant: tenant, ClientID: client, ClientSecret: secret, TokenURL: ent.TokenURL(tenant)}}
}

const graphHeading = "probe routes[0].relay (route scanners): graph as " + mbox
const graphTokenOK = "  token: ok: entra app " + client + " in tenant " + tenant + ", scope https://graph.microsoft.com/.default, valid 3600 s"

func TestEntraTokenFailures(t *testing.T) {
	t.Parallel()
	where := "Entra admin center > App registrations > " + client
	for _, tc := range []struct {
		name  string
		setup func(ent *entratest.JWTServer, r *config.Relay)
		want  string
	}{
		{"wrong secret", func(_ *entratest.JWTServer, r *config.Relay) { r.OAuth.ClientSecret = "the-secret-id" },
			"AADSTS7000215: the client secret is wrong; fix: put the Value (not the Secret ID) of a current client secret of app " + client +
				" (" + where + " > Certificates & secrets) in routes[0].relay.oauth.client_secret"},
		{"secret expired", func(ent *entratest.JWTServer, _ *config.Relay) {
			ent.FailNext(entratest.Failure{Status: http.StatusUnauthorized, Error: "invalid_client", Codes: []int{7000222},
				Description: "AADSTS7000222: The provided client secret keys for app '" + client + "' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."})
		}, "AADSTS7000222: the client secret has expired; fix: add a new client secret to app " + client + " (" + where +
			" > Certificates & secrets) and put its Value in routes[0].relay.oauth.client_secret"},
		{"app not in tenant", func(_ *entratest.JWTServer, r *config.Relay) {
			r.OAuth.ClientID = "99999999-0000-0000-0000-000000000000"
		},
			"AADSTS700016: app 99999999-0000-0000-0000-000000000000 is not found in tenant " + tenant +
				"; fix: set routes[0].relay.oauth.client_id to the app's Application (client) ID and routes[0].relay.oauth.tenant to the Directory (tenant) ID it is registered in"},
		{"tenant not found", func(ent *entratest.JWTServer, _ *config.Relay) {
			ent.FailNext(entratest.Failure{Status: http.StatusBadRequest, Error: "invalid_request", Codes: []int{90002},
				Description: "AADSTS90002: Tenant '" + tenant + "' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."})
		}, "AADSTS90002: tenant " + tenant + " is not found; fix: set routes[0].relay.oauth.tenant to your Directory (tenant) ID or one of the tenant's verified domains"},
		{"no consent", func(ent *entratest.JWTServer, _ *config.Relay) { ent.FailNext(entratest.NoConsent(client)) },
			"AADSTS65001: admin consent for Mail.Send is not granted to app " + client + "; fix: grant admin consent for Mail.Send: " + where +
				" > API permissions > Add a permission > Microsoft Graph > Application permissions > Mail.Send, then Grant admin consent"},
		{"permission not in registration", func(ent *entratest.JWTServer, _ *config.Relay) {
			ent.FailNext(entratest.Failure{Status: http.StatusBadRequest, Error: "invalid_client", Codes: []int{650057},
				Description: "AADSTS650057: Invalid resource. The client has requested access to a resource which is not listed in the requested permissions in the client's application registration."})
		}, "AADSTS650057: admin consent for Mail.Send is not granted to app " + client + "; fix: grant admin consent for Mail.Send: " + where +
			" > API permissions > Add a permission > Microsoft Graph > Application permissions > Mail.Send, then Grant admin consent"},
		{"certificate not registered", func(ent *entratest.JWTServer, _ *config.Relay) {
			ent.FailNext(entratest.Failure{Status: http.StatusUnauthorized, Error: "invalid_client", Codes: []int{700027},
				Description: "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found.]"})
		}, "AADSTS700027: the certificate is not registered with app " + client + "; fix: upload the certificate of routes[0].relay.oauth.certificate (its public part, .cer or .pem) to " +
			where + " > Certificates & secrets > Certificates"},
		{"other code", func(ent *entratest.JWTServer, _ *config.Relay) {
			ent.FailNext(entratest.Failure{Status: http.StatusBadRequest, Error: "invalid_request", Codes: []int{53003},
				Description: "AADSTS53003: Access has been blocked by Conditional Access policies."})
		}, "oauthtok: entra token endpoint: HTTP 400 invalid_request: AADSTS53003: Access has been blocked by Conditional Access policies. (trace @) ; fix: see https://login.microsoftonline.com/error?code=53003"},
		{"unavailable", func(ent *entratest.JWTServer, _ *config.Relay) { ent.FailNext(entratest.Unavailable()) },
			"the entra token endpoint is unavailable (HTTP 503); nothing is wrong with the configuration as far as this shows; try again later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ent := entra(t)
			ent.Grant(client, "https://graph.microsoft.com", "Mail.Send")
			r := graphRelay(ent)
			tc.setup(ent, r)
			lines, failed := probe(t, r, nil)
			if len(lines) == 2 {
				// The trace id is random: compare without it.
				if i, j := strings.Index(lines[1], "(trace "), strings.Index(lines[1], ");"); i >= 0 && j > i {
					lines[1] = lines[1][:i] + "(trace @) " + lines[1][j+1:]
				}
			}
			assertLines(t, lines, failed, true, graphHeading, "  token: FAILED: "+tc.want)
		})
	}
}

func TestFetcherError(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Routes: []config.Route{{Name: "scanners", Relay: &config.Relay{Type: "gmail", SendAs: mbox}}}}
	reps := Run(context.Background(), Targets(cfg), Options{Fetcher: func(key string, r *config.Relay) (oauthtok.Fetcher, error) {
		return nil, errors.New("config: " + key + ".oauth.service_account_key: env:SA_KEY is not set; export it or write file:PATH")
	}})
	var b bytes.Buffer
	Write(&b, reps)
	want := "probe routes[0].relay (route scanners): gmail as " + mbox + "\n" +
		"  token: FAILED: config: routes[0].relay.oauth.service_account_key: env:SA_KEY is not set; export it or write file:PATH\n"
	if b.String() != want || !reps[0].Failed() {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestTargets(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{
		Routes: []config.Route{
			{Name: "hook", Webhook: &config.Webhook{}},
			{Name: "plain", Relay: &config.Relay{Type: "smtp", Addr: "mail.test:587", Username: "u", Password: "p"}},
			{Name: "m365", Relay: &config.Relay{Type: "smtp", Addr: "smtp.office365.com:587", AuthMechanism: "xoauth2", OAuth: &config.OAuth{Provider: "entra"}}},
			{Name: "g", Relay: &config.Relay{Type: "gmail"}},
		},
		DSN: config.DSN{Relay: config.Relay{Type: "graph"}},
	}
	var got []string
	for _, tg := range Targets(cfg) {
		got = append(got, tg.Key+"="+tg.Route)
	}
	if strings.Join(got, " ") != "routes[2].relay=m365 routes[3].relay=g dsn.relay=" {
		t.Fatalf("targets %q", got)
	}
}

// exchangeRelay is smtp with XOAUTH2 to the smarthost h, signing in as the mailbox.
func exchangeRelay(ent *entratest.JWTServer, addr string) *config.Relay {
	return &config.Relay{Type: "smtp", Addr: addr, Username: mbox, AuthMechanism: "xoauth2", OAuth: &config.OAuth{
		Provider: "entra", Tenant: tenant, ClientID: client, ClientSecret: secret, TokenURL: ent.TokenURL(tenant)}}
}

const outlookChallenge = `{"status":"401","schemes":"Bearer","scope":"https://outlook.office.com/.default"}`

func TestExchangeSMTP(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := relaytest.TLSConfigs(t)
	heading := func(addr string) string {
		return "probe routes[0].relay (route scanners): smtp " + addr + " with XOAUTH2 as " + mbox
	}
	const tokenOK = "  token: ok: entra app " + client + " in tenant " + tenant + ", scope https://outlook.office365.com/.default, valid 3600 s"
	const permOK = "  permission: ok: the token carries SMTP.SendAsApp (roles: SMTP.SendAsApp)"
	unsuccessful := &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3}, Message: "Authentication unsuccessful [SN4PR0601CA0001.namprd06.prod.outlook.com]"}

	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		ent := entra(t)
		ent.Grant(client, "https://outlook.office365.com", "SMTP.SendAsApp")
		h := newSmarthost(t, serverTLS, mbox, func(tok string) bool {
			is, ok := ent.Lookup(tok)
			return ok && is.Scope == oauthtok.ScopeOutlook
		}, unsuccessful, outlookChallenge)
		lines, failed := probe(t, exchangeRelay(ent, h.addr), clientTLS)
		assertLines(t, lines, failed, false, heading(h.addr), tokenOK, permOK,
			"  mailbox: ok: "+h.addr+" accepted AUTH XOAUTH2 as "+mbox+" (no MAIL sent)")
		if authed, mails := h.counts(); authed != 1 || mails != 0 {
			t.Fatalf("smarthost saw %d AUTH, %d MAIL; want 1, 0", authed, mails)
		}
	})
	t.Run("service principal not given the mailbox", func(t *testing.T) {
		t.Parallel()
		ent := entra(t)
		ent.Grant(client, "https://outlook.office365.com", "SMTP.SendAsApp")
		// Exchange knows no service principal with access to the mailbox:
		// every token, valid or not, is refused.
		h := newSmarthost(t, serverTLS, mbox, func(string) bool { return false }, unsuccessful, outlookChallenge)
		lines, failed := probe(t, exchangeRelay(ent, h.addr), clientTLS)
		assertLines(t, lines, failed, true, heading(h.addr), tokenOK, permOK,
			"  mailbox: FAILED: 535 5.7.3 Authentication unsuccessful [SN4PR0601CA0001.namprd06.prod.outlook.com]: Exchange Online does not let app "+client+" send as "+mbox+
				"; fix (Exchange Online PowerShell): register the app's service principal, New-ServicePrincipal -AppId "+client+
				" -ObjectId <Object ID of its Enterprise application>; give it the mailbox, Add-MailboxPermission -Identity "+mbox+
				" -User <that service principal's Id> -AccessRights FullAccess; and keep SMTP AUTH on for the mailbox, Set-CASMailbox -Identity "+mbox+
				" -SmtpClientAuthenticationDisabled $false")
	})
	t.Run("SMTP AUTH disabled", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct{ msg, want string }{
			{"Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
				": SMTP AUTH is off for " + mbox + "; fix (Exchange Online PowerShell): Set-CASMailbox -Identity " + mbox + " -SmtpClientAuthenticationDisabled $false"},
			{"Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
				": SMTP AUTH is off for the tenant; fix (Exchange Online PowerShell): turn it on for this mailbox only, Set-CASMailbox -Identity " + mbox + " -SmtpClientAuthenticationDisabled $false"},
			{"Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator.",
				": Microsoft refused the sign-in for " + mbox + " (account disabled or blocked, security defaults, Conditional Access); fix: check the account in the Entra admin center > Users and its sign-in logs"},
		} {
			ent := entra(t)
			ent.Grant(client, "https://outlook.office365.com", "SMTP.SendAsApp")
			refusal := &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 139}, Message: tc.msg}
			h := newSmarthost(t, serverTLS, mbox, func(string) bool { return false }, refusal, outlookChallenge)
			lines, failed := probe(t, exchangeRelay(ent, h.addr), clientTLS)
			assertLines(t, lines, failed, true, heading(h.addr), tokenOK, permOK, "  mailbox: FAILED: 535 5.7.139 "+tc.msg+tc.want)
		}
	})
	t.Run("no SMTP.SendAsApp", func(t *testing.T) {
		t.Parallel()
		ent := entra(t)
		ent.Grant(client, "https://graph.microsoft.com", "Mail.Send")
		h := newSmarthost(t, serverTLS, mbox, func(string) bool { return false }, unsuccessful, outlookChallenge)
		lines, failed := probe(t, exchangeRelay(ent, h.addr), clientTLS)
		if len(lines) != 4 || failed != true || lines[2] != "  permission: FAILED: the token for https://outlook.office365.com does not carry SMTP.SendAsApp (roles: none); fix: Entra admin center > App registrations > "+client+
			" > API permissions > Add a permission > APIs my organization uses > Office 365 Exchange Online > Application permissions > SMTP.SendAsApp, then Grant admin consent" {
			t.Fatalf("got\n%s", strings.Join(lines, "\n"))
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		ent := entra(t)
		ent.Grant(client, "https://outlook.office365.com", "SMTP.SendAsApp")
		// A smarthost that speaks no STARTTLS: the token must not go out.
		h := newSmarthost(t, nil, mbox, func(string) bool { return true }, unsuccessful, outlookChallenge)
		lines, failed := probe(t, exchangeRelay(ent, h.addr), clientTLS)
		if len(lines) != 4 || !failed || !strings.HasPrefix(lines[3], "  mailbox: FAILED: cannot reach or secure "+h.addr+": ") ||
			!strings.HasSuffix(lines[3], "; fix: check routes[0].relay.addr and routes[0].relay.tls (starttls for port 587, implicit for 465) and that this host may connect to it") {
			t.Fatalf("got\n%s", strings.Join(lines, "\n"))
		}
		if authed, _ := h.counts(); authed != 0 {
			t.Fatal("AUTH without TLS")
		}
	})
}

// google sets up the Google stand-in with a service account delegated for
// scopes and the mailbox as a user of the domain.
func google(t *testing.T, scopes ...string) (*googletest.Server, *googletest.Account) {
	g := googletest.New(t)
	a := g.NewAccount(t, "postern-relay@postern-test.iam.gserviceaccount.com")
	g.Delegate(a, scopes...)
	g.AddUser(mbox)
	return g, a
}

func gmailRelay(g *googletest.Server, a *googletest.Account) *config.Relay {
	return &config.Relay{Type: "gmail", SendAs: mbox, OAuth: &config.OAuth{
		Provider: "google", ServiceAccountKey: string(g.KeyJSON(a))}}
}

const gmailHeading = "probe routes[0].relay (route scanners): gmail as " + mbox

func TestGmail(t *testing.T) {
	t.Parallel()
	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		g, a := google(t, oauthtok.ScopeGmailSend)
		lines, failed := probe(t, gmailRelay(g, a), nil)
		assertLines(t, lines, failed, false, gmailHeading,
			"  token: ok: google, acting as "+mbox+", scope https://www.googleapis.com/auth/gmail.send, valid 3599 s",
			"  permission: ok: domain-wide delegation covers https://www.googleapis.com/auth/gmail.send (Google issued the token)",
			"  mailbox: ok: Google issued a token acting as "+mbox+", so the mailbox is a user of the domain and delegation reaches it")
	})
	t.Run("not delegated", func(t *testing.T) {
		t.Parallel()
		g, a := google(t, "https://mail.google.com/") // another scope than the relay's
		lines, failed := probe(t, gmailRelay(g, a), nil)
		assertLines(t, lines, failed, true, gmailHeading,
			"  token: FAILED: unauthorized_client: domain-wide delegation is not granted to service account "+a.Email+
				" for https://www.googleapis.com/auth/gmail.send; fix: Google Admin console > Security > Access and data control > API controls > Manage Domain Wide Delegation > Add new: client ID "+
				a.ClientID+", OAuth scopes https://www.googleapis.com/auth/gmail.send")
	})
	t.Run("unknown mailbox", func(t *testing.T) {
		t.Parallel()
		g, a := google(t, oauthtok.ScopeGmailSend)
		r := gmailRelay(g, a)
		r.SendAs = "nobody@contoso.test"
		lines, failed := probe(t, r, nil)
		assertLines(t, lines, failed, true, "probe routes[0].relay (route scanners): gmail as nobody@contoso.test",
			"  token: FAILED: invalid_grant: nobody@contoso.test is not a user of the Workspace domain; fix: set routes[0].relay.send_as to an existing mailbox")
	})
	t.Run("key revoked", func(t *testing.T) {
		t.Parallel()
		g, a := google(t, oauthtok.ScopeGmailSend)
		r := gmailRelay(g, a)
		// A new key for the same account replaces the one in the config,
		// as deleting the old key in the Cloud console does.
		b := g.NewAccount(t, a.Email)
		g.Delegate(b, oauthtok.ScopeGmailSend)
		lines, failed := probe(t, r, nil)
		assertLines(t, lines, failed, true, gmailHeading,
			"  token: FAILED: invalid_grant: the key of service account "+a.Email+
				" was deleted or revoked; fix: create a new JSON key (Google Cloud console > IAM & Admin > Service accounts > "+a.Email+
				" > Keys) and put it in routes[0].relay.oauth.service_account_key")
	})
}

func TestGmailSMTP(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := relaytest.TLSConfigs(t)
	g, a := google(t, "https://mail.google.com/", oauthtok.ScopeGmailSend)
	badCreds := &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Username and Password not accepted. For more information, go to https://support.google.com/mail/?p=BadCredentials"}
	h := newSmarthost(t, serverTLS, mbox, func(tok string) bool {
		is, ok := g.Lookup(tok)
		return ok && is.Subject == mbox && strings.Contains(" "+is.Scope+" ", " https://mail.google.com/ ")
	}, badCreds, `{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`)
	r := &config.Relay{Type: "smtp", Addr: h.addr, Username: mbox, AuthMechanism: "xoauth2", OAuth: &config.OAuth{
		Provider: "google", ServiceAccountKey: string(g.KeyJSON(a))}}
	lines, failed := probe(t, r, clientTLS)
	heading := "probe routes[0].relay (route scanners): smtp " + h.addr + " with XOAUTH2 as " + mbox
	assertLines(t, lines, failed, false, heading,
		"  token: ok: google, acting as "+mbox+", scope https://mail.google.com/, valid 3599 s",
		"  permission: ok: domain-wide delegation covers https://mail.google.com/ (Google issued the token)",
		"  mailbox: ok: "+h.addr+" accepted AUTH XOAUTH2 as "+mbox+" (no MAIL sent)")

	// The relay's ca_file, not a process-wide setting, trusts the
	// smarthost's private CA: the probe checks what the relay would use.
	r.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(r.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverTLS.Certificates[0].Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	lines, failed = probe(t, r, nil)
	assertLines(t, lines, failed, false, heading,
		"  token: ok: google, acting as "+mbox+", scope https://mail.google.com/, valid 3599 s",
		"  permission: ok: domain-wide delegation covers https://mail.google.com/ (Google issued the token)",
		"  mailbox: ok: "+h.addr+" accepted AUTH XOAUTH2 as "+mbox+" (no MAIL sent)")
	r.CAFile = ""

	// The API's scope is delegated too, but smtp.gmail.com wants mail.google.com.
	r.OAuth.Scope = oauthtok.ScopeGmailSend
	lines, failed = probe(t, r, clientTLS)
	assertLines(t, lines, failed, true, heading,
		"  token: ok: google, acting as "+mbox+", scope https://www.googleapis.com/auth/gmail.send, valid 3599 s",
		"  permission: ok: domain-wide delegation covers https://www.googleapis.com/auth/gmail.send (Google issued the token)",
		"  mailbox: FAILED: 535 5.7.8 Username and Password not accepted. For more information, go to https://support.google.com/mail/?p=BadCredentials: Gmail did not take the token for "+mbox+
			"; fix: routes[0].relay.oauth.scope must be https://mail.google.com/ (leave it empty for that default) and routes[0].relay.username the mailbox the token acts as")
	if _, mails := h.counts(); mails != 0 {
		t.Fatalf("%d MAIL commands", mails)
	}
}

func TestEntraCertificate(t *testing.T) {
	t.Parallel()
	pemBytes, cert := entratest.NewCertificate(t)
	other, _ := entratest.NewCertificate(t)
	where := "Entra admin center > App registrations > " + client
	for _, tc := range []struct {
		name       string
		register   bool
		credential []byte
		want       string
	}{
		{"registered", true, pemBytes, ""},
		{"not registered", false, pemBytes, "  token: FAILED: AADSTS700027: the certificate is not registered with app " + client +
			"; fix: upload the certificate of routes[0].relay.oauth.certificate (its public part, .cer or .pem) to " + where + " > Certificates & secrets > Certificates"},
		// oauthtok refuses a key that does not match its certificate before
		// asking, so Entra's answer to one is scripted below.
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ent := entratest.NewJWT(t)
			ent.Grant(client, "https://graph.microsoft.com", "Mail.Send", "Mail.ReadWrite")
			if tc.register {
				ent.AddCertificate(tenant, client, cert)
			} else {
				ent.AddCertificate(tenant, client, mustCert(t, other))
			}
			f := graph(t, ent, graphtest.Granted)
			r := &config.Relay{Type: "graph", SendAs: mbox, BaseURL: f.URL, OAuth: &config.OAuth{
				Provider: "entra", Tenant: tenant, ClientID: client, Certificate: string(tc.credential), TokenURL: ent.TokenURL(tenant)}}
			lines, failed := probe(t, r, nil)
			if tc.want == "" {
				assertLines(t, lines, failed, false, graphHeading, graphTokenOK,
					"  permission: ok: the token carries Mail.Send and Mail.ReadWrite (roles: Mail.Send, Mail.ReadWrite)", mailboxOK)
				return
			}
			assertLines(t, lines, failed, true, graphHeading, tc.want)
		})
	}
	t.Run("key does not match", func(t *testing.T) {
		t.Parallel()
		ent := entratest.NewJWT(t)
		ent.AddCertificate(tenant, client, cert)
		ent.FailNext(entratest.BadAssertionSignature("ABCDEF", cert))
		r := &config.Relay{Type: "graph", SendAs: mbox, OAuth: &config.OAuth{
			Provider: "entra", Tenant: tenant, ClientID: client, Certificate: string(pemBytes), TokenURL: ent.TokenURL(tenant)}}
		lines, failed := probe(t, r, nil)
		assertLines(t, lines, failed, true, graphHeading,
			"  token: FAILED: AADSTS700027: the private key in routes[0].relay.oauth.certificate does not match the certificate registered with app "+client+
				"; fix: put the certificate and its own private key together in routes[0].relay.oauth.certificate, or upload the certificate that goes with the key to "+
				where+" > Certificates & secrets > Certificates")
	})
}

// mustCert parses the certificate in a PEM from entratest.NewCertificate.
func mustCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(pemBytes)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
