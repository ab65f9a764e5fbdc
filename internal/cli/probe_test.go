package cli

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/oauthtok/googletest"
	"github.com/postern/postern/internal/relay/graphrelay/graphtest"
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
	// Until consent, Exchange lets the app do nothing with the mailbox.
	var consented atomic.Bool
	graph := graphtest.NewFolders(t, func(tok, _ string) (bool, graphtest.Access) {
		if consented.Load() {
			return ent.Valid(tok), graphtest.Granted
		}
		return ent.Valid(tok), graphtest.NoPermission
	})
	graph.AddMailbox(mbox)
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
      base_url: `+graph.URL+`
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

	// No admin consent yet: the token carries no roles.
	code, out, errs := runCLI(t, "", "check-config", "-probe", cfgPath)
	testSP := "Test-ServicePrincipalAuthorization -Identity " + client + " -Resource " + mbox
	want := graphHead + `  permission: FAILED: the token carries neither Mail.Send nor Mail.ReadWrite (roles: none); fix: grant both for ` + mbox +
		`, either in Exchange Online (RBAC for Applications: New-ManagementRoleAssignment -App ` + client + ` -Role "Application Mail.Send" -CustomResourceScope <the scope holding ` + mbox +
		`>; the same with "Application Mail.ReadWrite"; check with ` + testSP + `) or as Microsoft Graph application permissions with admin consent, restricted by an application access policy
  mailbox: FAILED: 403 ErrorAccessDenied: Access is denied. Check credentials and try again.: app ` + client + ` holds no mail permission Graph honours for ` + mbox +
		`; fix: grant Mail.Send and Mail.ReadWrite (see the permission line) and check with ` + testSP + `
` + gmail
	if code != 1 || !strings.HasPrefix(out, cfgPath+": OK\n") || probeLines(out) != want {
		t.Fatalf("before consent: exit %d, stderr %q, stdout\n%s\nwant the probe to print\n%s", code, errs, out, want)
	}

	ent.Grant(client, "https://graph.microsoft.com", "Mail.Send", "Mail.ReadWrite")
	consented.Store(true)
	code, out, errs = runCLI(t, "", "check-config", "-probe", cfgPath)
	want = graphHead + "  permission: ok: the token carries Mail.Send and Mail.ReadWrite (roles: Mail.Send, Mail.ReadWrite)\n" +
		"  mailbox: ok: " + mbox + " is an Exchange Online mailbox the app may use (Graph read its Drafts folder; nothing was sent)\n" + gmail
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
