package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/oauthtok/googletest"
)

func TestCheckConfigProbe(t *testing.T) {
	t.Parallel()
	const (
		tenant = "contoso.test"
		client = "11111111-2222-3333-4444-555555555555"
		mbox   = "scanner@contoso.test"
	)
	ent := entratest.NewJWT(t)
	ent.AddApp(tenant, client, "s3cret~value")
	g := googletest.New(t)
	acct := g.NewAccount(t, "relay@postern-test.iam.gserviceaccount.com")
	g.Delegate(acct, oauthtok.ScopeGmailSend)
	g.AddUser(mbox)

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := write("secret", "s3cret~value")
	key := write("sa.json", string(g.KeyJSON(acct)))
	cfgPath := write("m365.yaml", `routes:
  - name: scanners
    match: {recipients: ["*@contoso.test"]}
    relay:
      type: graph
      send_as: `+mbox+`
      oauth:
        provider: entra
        tenant: `+tenant+`
        client_id: `+client+`
        client_secret: file:`+secret+`
        token_url: `+ent.TokenURL(tenant)+`
  - name: workspace
    match: {recipients: ["*"]}
    relay:
      type: gmail
      send_as: `+mbox+`
      oauth:
        provider: google
        service_account_key: file:`+key+`
        token_url: `+g.TokenURL()+`
`)
	probeLines := func(out string) string {
		_, rest, _ := strings.Cut(out, "\nprobe ")
		return "probe " + rest
	}
	gmail := `probe routes[1].relay (route workspace): gmail as ` + mbox + `
  token: ok: google, acting as ` + mbox + `, scope https://www.googleapis.com/auth/gmail.send, valid 3599 s
  permission: ok: domain-wide delegation covers https://www.googleapis.com/auth/gmail.send (Google issued the token)
  mailbox: ok: Google issued a token acting as ` + mbox + `, so the mailbox is a user of the domain and delegation reaches it
`
	graphHead := `probe routes[0].relay (route scanners): graph as ` + mbox + `
  token: ok: entra app ` + client + ` in tenant ` + tenant + `, scope https://graph.microsoft.com/.default, valid 3600 s
`
	graphMailbox := `  mailbox: not checked: Graph gives an app holding only Mail.Send no way to look up ` + mbox + ` without sending; the first message shows an unknown mailbox (ErrorInvalidUser), one outside Exchange Online (MailboxNotEnabledForRESTAPI) or one the app's access policy excludes (ErrorAccessDenied) in the notice to the identity's owner
`

	// No admin consent yet: the token carries no roles.
	code, out, errs := runCLI(t, "", "check-config", "-probe", cfgPath)
	want := graphHead + `  permission: FAILED: the token for https://graph.microsoft.com does not carry Mail.Send (roles: none); fix: Entra admin center > App registrations > ` + client +
		` > API permissions > Add a permission > Microsoft Graph > Application permissions > Mail.Send, then Grant admin consent (a grant made only in Exchange Online RBAC for Applications does not show in the token)
` + graphMailbox + gmail
	if code != 1 || !strings.HasPrefix(out, cfgPath+": OK\n") || probeLines(out) != want {
		t.Fatalf("before consent: exit %d, stderr %q, stdout\n%s\nwant the probe to print\n%s", code, errs, out, want)
	}

	ent.Grant(client, "https://graph.microsoft.com", "Mail.Send")
	code, out, errs = runCLI(t, "", "check-config", "-probe", cfgPath)
	want = graphHead + "  permission: ok: the token carries Mail.Send (roles: Mail.Send)\n" + graphMailbox + gmail
	if code != 0 || probeLines(out) != want {
		t.Fatalf("after consent: exit %d, stderr %q, stdout\n%s\nwant the probe to print\n%s", code, errs, out, want)
	}

	// Without -probe nothing is fetched.
	before := len(ent.Requests())
	if code, out, _ := runCLI(t, "", "check-config", cfgPath); code != 0 || strings.Contains(out, "probe ") || len(ent.Requests()) != before {
		t.Fatalf("check-config without -probe: exit %d, fetched %d, %q", code, len(ent.Requests())-before, out)
	}
}

func TestCheckConfigProbeNothingToProbe(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("routes:\n  - name: all\n    match: {recipients: [\"*\"]}\n    directory: {path: out}\n"), 0o600)
	code, out, errs := runCLI(t, "", "check-config", "-probe", p)
	if code != 0 || !strings.HasSuffix(out, "probe: no relay signs in with oauth; nothing to probe\n") {
		t.Fatalf("exit %d %q %q", code, out, errs)
	}
}
