package probe

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/relay/smtprelay"
)

// permission checks what the token allows.
func permission(t Target, f oauthtok.Fetcher, tok string) Check {
	k := f.Key()
	if provider(t) == "google" {
		// Google issues the token only when delegation covers every scope
		// asked for, so the token is the proof.
		return Check{Name: CheckPermission, Status: OK,
			Text: "domain-wide delegation covers " + k.Scope + " (Google issued the token)"}
	}
	return entraPermission(t, k, tok)
}

// mailbox checks the mailbox the relay sends as, as far as the transport
// allows without sending.
func mailbox(ctx context.Context, t Target, f oauthtok.Fetcher, tok string, o Options) Check {
	switch t.Relay.Type {
	case "smtp":
		return smtpMailbox(ctx, t, f, tok, o)
	case "gmail":
		return Check{Name: CheckMailbox, Status: OK,
			Text: "Google issued a token acting as " + t.Relay.Mailbox() + ", so the mailbox is a user of the domain and delegation reaches it"}
	}
	return Check{Name: CheckMailbox, Status: NotChecked, Text: "relay type " + t.Relay.Type + " has no mailbox check"}
}

// smtpMailbox signs in to the smarthost with the token and quits: EHLO,
// STARTTLS (or implicit TLS), AUTH XOAUTH2, QUIT, never MAIL.
func smtpMailbox(ctx context.Context, t Target, f oauthtok.Fetcher, tok string, o Options) Check {
	r := t.Relay
	tc := o.SMTPTLS
	if r.CAFile != "" {
		var err error
		if tc, err = r.SmarthostTLS(); err != nil {
			return Check{Name: CheckMailbox, Status: Failed, Text: "config: " + t.Key + ".ca_file: " + err.Error()}
		}
	}
	tr, err := smtprelay.New(smtprelay.Config{
		Addr: r.Addr, TLS: smtprelay.TLSMode(r.TLS), TLSConfig: tc,
		Username: r.Username, AuthMechanism: smtprelay.AuthXOAUTH2, AllowInsecureAuth: r.AllowInsecureAuth,
		TokenSource: func(context.Context) (string, error) { return tok, nil },
		LocalName:   o.LocalName,
	})
	if err != nil {
		return Check{Name: CheckMailbox, Status: Failed, Text: "config: " + t.Key + ": " + err.Error()}
	}
	err = tr.Probe(ctx)
	if err == nil {
		return Check{Name: CheckMailbox, Status: OK,
			Text: r.Addr + " accepted AUTH XOAUTH2 as " + r.Username + " (no MAIL sent)"}
	}
	var pe *smtprelay.ProbeError
	if !errors.As(err, &pe) {
		return Check{Name: CheckMailbox, Status: Failed, Text: err.Error()}
	}
	if pe.Step == smtprelay.ProbeConnect {
		return Check{Name: CheckMailbox, Status: Failed,
			Text: fmt.Sprintf("cannot reach or secure %s: %v; fix: check %s.addr and %s.tls (starttls for port 587, implicit for 465) and that this host may connect to it",
				r.Addr, pe.Err, t.Key, t.Key)}
	}
	var se *smtp.SMTPError
	if !errors.As(pe.Err, &se) {
		return Check{Name: CheckMailbox, Status: Failed, Text: "AUTH XOAUTH2 as " + r.Username + " failed: " + pe.Err.Error()}
	}
	return Check{Name: CheckMailbox, Status: Failed, Text: smtpAdvice(t, f.Key(), se)}
}

// smtpAdvice turns the smarthost's refusal of AUTH into the provider's
// documented causes and fixes.
func smtpAdvice(t Target, k oauthtok.Key, se *smtp.SMTPError) string {
	m := t.Relay.Username
	reply := replyText(se)
	enh := se.EnhancedCode
	switch {
	case se.Code == 454 && strings.Contains(se.Message, "does not offer AUTH"):
		return reply + "; fix: " + t.Key + ".addr must be a submission port that offers XOAUTH2 (smtp.office365.com:587, smtp.gmail.com:587)"
	case enh == smtp.EnhancedCode{5, 7, 139} && strings.Contains(se.Message, "SmtpClientAuthentication is disabled for the Tenant"):
		return reply + ": SMTP AUTH is off for the tenant; fix (Exchange Online PowerShell): turn it on for this mailbox only, Set-CASMailbox -Identity " + m + " -SmtpClientAuthenticationDisabled $false"
	case enh == smtp.EnhancedCode{5, 7, 139} && strings.Contains(se.Message, "SmtpClientAuthentication is disabled"):
		return reply + ": SMTP AUTH is off for " + m + "; fix (Exchange Online PowerShell): Set-CASMailbox -Identity " + m + " -SmtpClientAuthenticationDisabled $false"
	case enh == smtp.EnhancedCode{5, 7, 139}:
		return reply + ": Microsoft refused the sign-in for " + m + " (account disabled or blocked, security defaults, Conditional Access); fix: check the account in the Entra admin center > Users and its sign-in logs"
	case provider(t) == "google":
		return reply + ": Gmail did not take the token for " + m + "; fix: " + t.Key + ".oauth.scope must be " + config.GoogleMailScope +
			" (leave it empty for that default) and " + t.Key + ".username the mailbox the token acts as"
	case enh == smtp.EnhancedCode{5, 7, 3} || se.Code == 535:
		return reply + ": Exchange Online does not let app " + k.Client + " send as " + m +
			"; fix (Exchange Online PowerShell): register the app's service principal, New-ServicePrincipal -AppId " + k.Client +
			" -ObjectId <Object ID of its Enterprise application>; give it the mailbox, Add-MailboxPermission -Identity " + m +
			" -User <that service principal's Id> -AccessRights FullAccess; and keep SMTP AUTH on for the mailbox, Set-CASMailbox -Identity " + m +
			" -SmtpClientAuthenticationDisabled $false"
	}
	return reply + ": the smarthost refused AUTH XOAUTH2 as " + m
}

// replyText is an SMTP reply as the server sent it.
func replyText(se *smtp.SMTPError) string {
	s := fmt.Sprint(se.Code)
	if e := se.EnhancedCode; e != smtp.NoEnhancedCode && e[0] > 0 {
		s += fmt.Sprintf(" %d.%d.%d", e[0], e[1], e[2])
	}
	return s + " " + se.Message
}
