package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/relay/graphrelay"
)

// graphAnswer is Graph's answer to the read the probe makes.
type graphAnswer struct {
	status        int
	code, message string
	err           error // the request did not get an answer
}

// readDrafts asks Graph for the mailbox's Drafts folder: the one read that
// proves the mailbox is in Exchange Online and that the app may use it
// (it needs Mail.ReadWrite or a read permission, which the draft path
// needs anyway; Mail.Send alone reads nothing). It changes nothing.
func readDrafts(ctx context.Context, t Target, tok string, hc *http.Client) graphAnswer {
	base := t.Relay.BaseURL
	if base == "" {
		base = graphrelay.DefaultBaseURL
	}
	u := strings.TrimSuffix(base, "/") + "/users/" + url.PathEscape(t.Relay.Mailbox()) + "/mailFolders/drafts?$select=id"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return graphAnswer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return graphAnswer{err: err}
	}
	defer resp.Body.Close()
	a := graphAnswer{status: resp.StatusCode}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(body, &e) == nil {
		a.code, a.message = e.Error.Code, e.Error.Message
	}
	return a
}

func (a graphAnswer) String() string {
	s := fmt.Sprintf("%d %s", a.status, a.code)
	if a.message != "" {
		s += ": " + a.message
	}
	return s
}

// graphChecks are the permission and mailbox checks of a Graph relay. The
// relay sends through drafts (Mail.ReadWrite) besides sendMail (Mail.Send);
// both may be granted in Entra (then the token's roles show them) or in
// Exchange Online with RBAC for Applications (then only Exchange knows, and
// only what Graph lets the app do shows it).
func graphChecks(ctx context.Context, t Target, k oauthtok.Key, tok string, o Options) (perm, mbox Check) {
	hc := o.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	m := t.Relay.Mailbox()
	c, isJWT := claims(tok)
	send, rw := slices.Contains(c.Roles, "Mail.Send"), slices.Contains(c.Roles, "Mail.ReadWrite")
	roles := "none"
	if len(c.Roles) > 0 {
		roles = strings.Join(c.Roles, ", ")
	}
	consent := "Entra admin center > App registrations > " + k.Client + " > API permissions > Add a permission > Microsoft Graph > Application permissions > "
	rbac := "New-ManagementRoleAssignment -App " + k.Client + " -Role \"Application %s\" -CustomResourceScope <the scope holding " + m + ">"
	test := "Test-ServicePrincipalAuthorization -Identity " + k.Client + " -Resource " + m

	a := readDrafts(ctx, t, tok, hc)
	read := a.err == nil && a.status == http.StatusOK

	switch {
	case !isJWT:
		perm = Check{CheckPermission, NotChecked, "the token is not a JWT, so its roles cannot be read; Mail.Send and Mail.ReadWrite are needed"}
	case send && rw:
		perm = Check{CheckPermission, OK, "the token carries Mail.Send and Mail.ReadWrite (roles: " + roles + ")"}
	case send && t.Relay.SaveToSentItems:
		perm = Check{CheckPermission, OK, "the token carries Mail.Send (roles: " + roles + "); without Mail.ReadWrite a message over 3 MiB cannot be sent (it goes as a draft); to allow it: " + consent + "Mail.ReadWrite, then Grant admin consent"}
	case send:
		perm = Check{CheckPermission, Failed, "the token carries Mail.Send but not Mail.ReadWrite (roles: " + roles + "), which the drafts every message goes through need (save_to_sent_items is false); fix: " + consent + "Mail.ReadWrite, then Grant admin consent"}
	case rw:
		perm = Check{CheckPermission, Failed, "the token carries Mail.ReadWrite but not Mail.Send (roles: " + roles + "); fix: " + consent + "Mail.Send, then Grant admin consent"}
	case read:
		// No mail role in the token, yet Graph let the app read the
		// mailbox: the grant is in Exchange (RBAC for Applications),
		// which shows Mail.ReadWrite but not Mail.Send.
		perm = Check{CheckPermission, NotChecked, "the token carries no mail roles (roles: " + roles + "), yet Graph lets the app read " + m +
			", so its permissions are granted in Exchange Online (RBAC for Applications), which tokens do not show; Mail.ReadWrite works; confirm Application Mail.Send with " + test}
	default:
		perm = Check{CheckPermission, Failed, "the token carries neither Mail.Send nor Mail.ReadWrite (roles: " + roles + "); fix: grant both for " + m +
			", either in Exchange Online (RBAC for Applications: " + fmt.Sprintf(rbac, "Mail.Send") + "; the same with \"Application Mail.ReadWrite\"; check with " + test +
			") or as Microsoft Graph application permissions with admin consent, restricted by an application access policy"}
	}

	switch {
	case a.err != nil:
		mbox = Check{CheckMailbox, Failed, "Graph did not answer: " + a.err.Error() + "; fix: check " + t.Key + ".base_url and that this host may reach it"}
	case read:
		mbox = Check{CheckMailbox, OK, m + " is an Exchange Online mailbox the app may use (Graph read its Drafts folder; nothing was sent)"}
	case a.code == "ErrorInvalidUser":
		mbox = Check{CheckMailbox, Failed, a.String() + ": no such mailbox; fix: set " + t.Key + ".send_as to the address of an Exchange Online mailbox"}
	case a.code == "MailboxNotEnabledForRESTAPI":
		mbox = Check{CheckMailbox, Failed, a.String() + ": " + m + " is not reachable through Graph (on-premises, inactive, soft-deleted or without an Exchange Online licence); fix: use a licensed Exchange Online mailbox, or for an on-premises one a relay of type smtp to your own server"}
	case a.status == http.StatusForbidden && strings.Contains(a.message, "AccessPolicy"):
		mbox = Check{CheckMailbox, Failed, a.String() + ": an application access policy leaves " + m + " out; fix: add it to the policy's group, then check with Test-ApplicationAccessPolicy -Identity " + m + " -AppId " + k.Client + " (changes take a while to apply)"}
	case a.status == http.StatusForbidden && send && !rw:
		// Mail.Send reads nothing: this refusal says nothing about the mailbox.
		mbox = Check{CheckMailbox, NotChecked, "Graph gives an app holding only Mail.Send no way to look up " + m +
			" without sending; the first message shows an unknown mailbox (ErrorInvalidUser), one outside Exchange Online (MailboxNotEnabledForRESTAPI) or one the app's access policy excludes (ErrorAccessDenied) in the notice to the identity's owner"}
	case a.status == http.StatusForbidden && rw:
		mbox = Check{CheckMailbox, Failed, a.String() + ": app " + k.Client + " may not use " + m + "; fix: the mailbox must be in the app's application access policy or RBAC scope (" + test + "; changes take a while to apply)"}
	case a.status == http.StatusForbidden:
		mbox = Check{CheckMailbox, Failed, a.String() + ": app " + k.Client + " holds no mail permission Graph honours for " + m + "; fix: grant Mail.Send and Mail.ReadWrite (see the permission line) and check with " + test}
	case a.status == http.StatusUnauthorized:
		mbox = Check{CheckMailbox, Failed, a.String() + ": Graph refused the token just issued; fix: check that " + t.Key + ".oauth.tenant and " + t.Key + ".base_url are of the same cloud"}
	case a.status == http.StatusTooManyRequests || a.status >= 500:
		mbox = Check{CheckMailbox, Failed, a.String() + ": Graph is unavailable; try again later"}
	default:
		mbox = Check{CheckMailbox, Failed, a.String() + ": unexpected answer reading " + m + "'s Drafts folder"}
	}
	return perm, mbox
}
