package probe

import (
	"net/http"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/relay/graphrelay/graphtest"
)

// graph starts Graph's stand-in with the mailbox in Exchange Online; access
// decides what a valid token may do, as Exchange would.
func graph(t *testing.T, ent interface{ Valid(string) bool }, access graphtest.Access) *graphtest.Folders {
	f := graphtest.NewFolders(t, func(tok, _ string) (bool, graphtest.Access) { return ent.Valid(tok), access })
	f.AddMailbox(mbox)
	return f
}

const (
	consentFix = "Entra admin center > App registrations > " + client + " > API permissions > Add a permission > Microsoft Graph > Application permissions > "
	testSP     = "Test-ServicePrincipalAuthorization -Identity " + client + " -Resource " + mbox
	mailboxOK  = "  mailbox: ok: " + mbox + " is an Exchange Online mailbox the app may use (Graph read its Drafts folder; nothing was sent)"
	sendOnly   = "  mailbox: not checked: Graph gives an app holding only Mail.Send no way to look up " + mbox +
		" without sending; the first message shows an unknown mailbox (ErrorInvalidUser), one outside Exchange Online (MailboxNotEnabledForRESTAPI) or one the app's access policy excludes (ErrorAccessDenied) in the notice to the identity's owner"
)

func TestGraph(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		roles   []string
		access  graphtest.Access
		setup   func(r *config.Relay, f *graphtest.Folders)
		failed  bool
		perm    string
		mailbox string
	}{
		{name: "consent in Entra", roles: []string{"Mail.Send", "Mail.ReadWrite"},
			perm: "  permission: ok: the token carries Mail.Send and Mail.ReadWrite (roles: Mail.Send, Mail.ReadWrite)", mailbox: mailboxOK},
		{name: "RBAC for Applications", access: graphtest.Granted,
			perm: "  permission: not checked: the token carries no mail roles (roles: none), yet Graph lets the app read " + mbox +
				", so its permissions are granted in Exchange Online (RBAC for Applications), which tokens do not show; Mail.ReadWrite works; confirm Application Mail.Send with " + testSP,
			mailbox: mailboxOK},
		{name: "no permission", roles: []string{"User.Read.All"}, access: graphtest.NoPermission, failed: true,
			perm: "  permission: FAILED: the token carries neither Mail.Send nor Mail.ReadWrite (roles: User.Read.All); fix: grant both for " + mbox +
				", either in Exchange Online (RBAC for Applications: New-ManagementRoleAssignment -App " + client + " -Role \"Application Mail.Send\" -CustomResourceScope <the scope holding " + mbox +
				">; the same with \"Application Mail.ReadWrite\"; check with " + testSP + ") or as Microsoft Graph application permissions with admin consent, restricted by an application access policy",
			mailbox: "  mailbox: FAILED: 403 ErrorAccessDenied: Access is denied. Check credentials and try again.: app " + client + " holds no mail permission Graph honours for " + mbox +
				"; fix: grant Mail.Send and Mail.ReadWrite (see the permission line) and check with " + testSP},
		{name: "Mail.Send only", roles: []string{"Mail.Send"}, access: graphtest.NoPermission, failed: true,
			perm: "  permission: FAILED: the token carries Mail.Send but not Mail.ReadWrite (roles: Mail.Send), which the drafts every message goes through need (save_to_sent_items is false); fix: " +
				consentFix + "Mail.ReadWrite, then Grant admin consent",
			mailbox: sendOnly},
		{name: "Mail.Send only, saving to Sent Items", roles: []string{"Mail.Send"}, access: graphtest.NoPermission,
			setup: func(r *config.Relay, _ *graphtest.Folders) { r.SaveToSentItems = true },
			perm: "  permission: ok: the token carries Mail.Send (roles: Mail.Send); without Mail.ReadWrite a message over 3 MiB cannot be sent (it goes as a draft); to allow it: " +
				consentFix + "Mail.ReadWrite, then Grant admin consent",
			mailbox: sendOnly},
		{name: "Mail.ReadWrite only", roles: []string{"Mail.ReadWrite"}, failed: true,
			perm:    "  permission: FAILED: the token carries Mail.ReadWrite but not Mail.Send (roles: Mail.ReadWrite); fix: " + consentFix + "Mail.Send, then Grant admin consent",
			mailbox: mailboxOK},
		{name: "access policy leaves the mailbox out", roles: []string{"Mail.Send", "Mail.ReadWrite"}, access: graphtest.Excluded, failed: true,
			perm: "  permission: ok: the token carries Mail.Send and Mail.ReadWrite (roles: Mail.Send, Mail.ReadWrite)",
			mailbox: "  mailbox: FAILED: 403 ErrorAccessDenied: Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.: an application access policy leaves " + mbox +
				" out; fix: add it to the policy's group, then check with Test-ApplicationAccessPolicy -Identity " + mbox + " -AppId " + client + " (changes take a while to apply)"},
		{name: "RBAC scope leaves the mailbox out", roles: []string{"Mail.Send", "Mail.ReadWrite"}, failed: true,
			setup: func(_ *config.Relay, f *graphtest.Folders) { f.FailNext(graphtest.AccessDenied()) },
			perm:  "  permission: ok: the token carries Mail.Send and Mail.ReadWrite (roles: Mail.Send, Mail.ReadWrite)",
			mailbox: "  mailbox: FAILED: 403 ErrorAccessDenied: Access is denied. Check credentials and try again.: app " + client + " may not use " + mbox +
				"; fix: the mailbox must be in the app's application access policy or RBAC scope (" + testSP + "; changes take a while to apply)"},
		{name: "unknown mailbox", roles: []string{"Mail.Send", "Mail.ReadWrite"}, failed: true,
			setup:   func(r *config.Relay, _ *graphtest.Folders) { r.SendAs = "nobody@contoso.test" },
			perm:    "  permission: ok: the token carries Mail.Send and Mail.ReadWrite (roles: Mail.Send, Mail.ReadWrite)",
			mailbox: "  mailbox: FAILED: 404 ErrorInvalidUser: The requested user 'nobody@contoso.test' is invalid.: no such mailbox; fix: set routes[0].relay.send_as to the address of an Exchange Online mailbox"},
		{name: "mailbox on premises", roles: []string{"Mail.Send", "Mail.ReadWrite"}, failed: true,
			setup: func(r *config.Relay, f *graphtest.Folders) {
				r.SendAs = "old@contoso.test"
				f.AddOnPremises("old@contoso.test")
			},
			perm:    "  permission: ok: the token carries Mail.Send and Mail.ReadWrite (roles: Mail.Send, Mail.ReadWrite)",
			mailbox: "  mailbox: FAILED: 404 MailboxNotEnabledForRESTAPI: The mailbox is either inactive, soft-deleted, or is hosted on-premise.: old@contoso.test is not reachable through Graph (on-premises, inactive, soft-deleted or without an Exchange Online licence); fix: use a licensed Exchange Online mailbox, or for an on-premises one a relay of type smtp to your own server"},
		{name: "throttled", roles: []string{"Mail.Send", "Mail.ReadWrite"}, failed: true,
			setup:   func(_ *config.Relay, f *graphtest.Folders) { f.FailNext(graphtest.Unavailable(0)) },
			perm:    "  permission: ok: the token carries Mail.Send and Mail.ReadWrite (roles: Mail.Send, Mail.ReadWrite)",
			mailbox: "  mailbox: FAILED: 503 ServiceUnavailable: Service Unavailable: Graph is unavailable; try again later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ent := entra(t)
			if tc.roles != nil {
				ent.Grant(client, "https://graph.microsoft.com", tc.roles...)
			}
			f := graph(t, ent, tc.access)
			r := graphRelay(ent)
			r.BaseURL = f.URL
			if tc.setup != nil {
				tc.setup(r, f)
			}
			lines, failed := probe(t, r, nil)
			assertLines(t, lines, failed, tc.failed, "probe routes[0].relay (route scanners): graph as "+r.SendAs, graphTokenOK, tc.perm, tc.mailbox)
			// One read, with the token, and nothing else: no send, no draft.
			reqs := f.Requests()
			if len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].Path != "/v1.0/users/"+r.SendAs+"/mailFolders/drafts" || !ent.Valid(reqs[0].Token) {
				t.Fatalf("Graph saw %+v", reqs)
			}
			// Claims are printed, never the token or any part of it.
			for _, part := range strings.Split(reqs[0].Token, ".") {
				if strings.Contains(strings.Join(lines, "\n"), part) {
					t.Fatalf("the output holds part of the token: %q", part)
				}
			}
		})
	}
}

func TestGraphOpaqueToken(t *testing.T) {
	t.Parallel()
	// The plain stand-in issues opaque tokens: the roles cannot be read
	// and the probe says so, while the read still checks the mailbox.
	ent := entratest.New(t)
	ent.AddApp(tenant, client, secret)
	f := graph(t, ent, graphtest.Granted)
	r := &config.Relay{Type: "graph", SendAs: mbox, BaseURL: f.URL, OAuth: &config.OAuth{
		Provider: "entra", Tenant: tenant, ClientID: client, ClientSecret: secret, TokenURL: ent.TokenURL(tenant)}}
	lines, failed := probe(t, r, nil)
	assertLines(t, lines, failed, false, graphHeading, graphTokenOK,
		"  permission: not checked: the token is not a JWT, so its roles cannot be read; Mail.Send and Mail.ReadWrite are needed", mailboxOK)
}
