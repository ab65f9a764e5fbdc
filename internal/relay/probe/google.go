package probe

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/postern/postern/internal/oauthtok"
)

// serviceAccount reads the client id and e-mail of the fetcher's service
// account from its key file (never anything else of it: it holds the
// private key); empty when they cannot be had.
func serviceAccount(ctx context.Context, f oauthtok.Fetcher) (clientID, email string) {
	g, ok := f.(*oauthtok.Google)
	if !ok || g.ServiceAccountJSON == nil {
		return "", ""
	}
	js, err := g.ServiceAccountJSON(ctx)
	if err != nil {
		return "", ""
	}
	var k struct {
		ClientID    string `json:"client_id"`
		ClientEmail string `json:"client_email"`
	}
	if json.Unmarshal(js, &k) != nil {
		return "", ""
	}
	return k.ClientID, k.ClientEmail
}

// googleTokenFailure maps Google's answers to a service account's
// jwt-bearer grant to their fix.
func googleTokenFailure(ctx context.Context, t Target, f oauthtok.Fetcher, oe *oauthtok.Error) string {
	k := f.Key()
	id, email := serviceAccount(ctx, f)
	acct := "the service account"
	if email != "" {
		acct = "service account " + email
	}
	o := t.Key + ".oauth"
	mbox := t.Relay.Mailbox()
	switch oe.Code {
	case "unauthorized_client":
		client := "the service account's client ID"
		if id != "" {
			client = "client ID " + id
		}
		return "unauthorized_client: domain-wide delegation is not granted to " + acct + " for " + k.Scope +
			"; fix: Google Admin console > Security > Access and data control > API controls > Manage Domain Wide Delegation > Add new: " +
			client + ", OAuth scopes " + strings.ReplaceAll(k.Scope, " ", ",")
	case "invalid_grant":
		switch {
		case strings.Contains(oe.Description, "Invalid email or User ID"):
			return "invalid_grant: " + mbox + " is not a user of the Workspace domain; fix: set " + mailboxKey(t) + " to an existing mailbox"
		case strings.Contains(oe.Description, "Invalid JWT Signature"):
			return "invalid_grant: the key of " + acct + " was deleted or revoked; fix: create a new JSON key (Google Cloud console > IAM & Admin > Service accounts > " +
				orDefault(email, "the account") + " > Keys) and put it in " + o + ".service_account_key"
		}
		return "invalid_grant: " + oe.Description + ": the mailbox " + mbox + " is unknown or the key revoked; fix: check " +
			mailboxKey(t) + ", or create a new JSON key for " + acct + " and put it in " + o + ".service_account_key"
	}
	return oe.Error()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
