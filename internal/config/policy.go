package config

import (
	"fmt"
	"io"
	"strings"
)

// DescribePolicy writes, for each identity, what it may do under this
// configuration: how it proves itself, whether it needs TLS, which senders
// and recipients it may use, and its limits. `gateway check-config` prints
// it so an operator can see the effective policy, not just that the file
// parses.
func (c *Config) DescribePolicy(w io.Writer) {
	for _, l := range c.Listeners {
		mode := l.Mode
		if mode == "" {
			mode = "smtp"
		}
		tlsv := c.TLS.MinVersion
		if l.TLSMinVersion != "" {
			tlsv = l.TLSMinVersion
		}
		tlsText := "TLS " + tlsv + "+"
		if c.TLS.Disable {
			tlsText = "no TLS"
		} else if c.TLS.CertFile == "" {
			tlsText += " (self-signed certificate)"
		}
		fmt.Fprintf(w, "listener %s on %s: %s, %s", l.Name, l.Addr, mode, tlsText)
		if len(l.ProxyProtocol) > 0 {
			fmt.Fprintf(w, ", PROXY protocol from %s", strings.Join(l.ProxyProtocol, ", "))
		}
		fmt.Fprintln(w)
	}
	for _, id := range c.Identities {
		fmt.Fprintf(w, "identity %s:\n", id.Name)
		switch {
		case id.PasswordHash != "" && len(id.Networks) > 0:
			fmt.Fprintf(w, "  proves itself: AUTH PLAIN/LOGIN as %q, only from %s\n", orName(id), strings.Join(id.Networks, ", "))
		case id.PasswordHash != "":
			fmt.Fprintf(w, "  proves itself: AUTH PLAIN/LOGIN as %q, from anywhere\n", orName(id))
		default:
			fmt.Fprintf(w, "  proves itself: by source address %s (no password)\n", strings.Join(id.Networks, ", "))
		}
		if id.AllowPlaintext {
			fmt.Fprintln(w, "  TLS: not required (plaintext allowed)")
		} else {
			fmt.Fprintln(w, "  TLS: required (STARTTLS or smtps) before sending")
		}
		fmt.Fprintf(w, "  may send as: %s\n", patterns(id.AllowedSenders))
		if id.RefuseUndeliverableSenders {
			fmt.Fprintf(w, "  senders no route could deliver: refused at MAIL, and at RCPT where the recipient's route cannot (550 5.7.1); %s\n", c.sendsOnlyAs())
		}
		fmt.Fprintf(w, "  may send to: %s, where a route takes the recipient\n", patterns(id.AllowedRecipients))
		size, rcpts := c.Limits.MaxMessageBytes, c.Limits.MaxRecipients
		if id.MaxMessageBytes > 0 && id.MaxMessageBytes < size {
			size = id.MaxMessageBytes
		}
		if id.MaxRecipients > 0 && id.MaxRecipients < rcpts {
			rcpts = id.MaxRecipients
		}
		rate := "unlimited"
		if id.MessagesPerMinute > 0 {
			rate = fmt.Sprintf("%d/minute", id.MessagesPerMinute)
		}
		fmt.Fprintf(w, "  limits: %d bytes, %d recipients, %s\n", size, rcpts, rate)
		fmt.Fprintf(w, "  failure notices: %s\n", c.noticesTo(id))
	}
	for _, r := range c.Routes {
		target := "reject"
		switch {
		case r.Webhook != nil:
			// The URL may carry a token in its query or user part.
			target = "webhook " + RedactURL(r.Webhook.URL)
			if a := r.Webhook.EgressAllow(); !a.IsZero() {
				target += " (may reach " + a.String() + ")"
			}
		case r.Directory != nil:
			target = "directory " + c.Path(r.Directory.Path)
		case r.Relay != nil:
			target = "relay " + r.Relay.Type
			if r.Relay.Addr != "" {
				target += " " + r.Relay.Addr
			}
		}
		fmt.Fprintf(w, "route %s: recipients %s", r.Name, patterns(r.Match.Recipients))
		if len(r.Match.Senders) > 0 {
			fmt.Fprintf(w, ", senders %s", patterns(r.Match.Senders))
		}
		if len(r.Match.Identities) > 0 {
			fmt.Fprintf(w, ", identities %s", patterns(r.Match.Identities))
		}
		fmt.Fprintf(w, " -> %s\n", target)
	}
	fmt.Fprintln(w, "clients no identity covers: refused (530 5.7.0); recipients no route takes: refused (550 5.1.1)")
}

// SendsOnlyAs reports whether the relay delivers only senders its mailbox
// may send as: it signs in as a mailbox (graph, gmail, smtp with xoauth2)
// and keeps the device's From, so the provider refuses any other sender.
// refuse_undeliverable_senders refuses such senders at the gateway.
func (r *Relay) SendsOnlyAs() bool {
	signsIn := r.Type == "graph" || r.Type == "gmail" || r.Type == "smtp" && strings.EqualFold(r.AuthMechanism, "xoauth2")
	return signsIn && r.From != "rewrite" && r.Mailbox() != ""
}

// sendsOnlyAs lists the routes that deliver only their mailbox's senders.
func (c *Config) sendsOnlyAs() string {
	var out []string
	for _, r := range c.Routes {
		if r.Relay == nil || !r.Relay.SendsOnlyAs() {
			continue
		}
		s := "route " + r.Name + " sends only as " + r.Relay.Mailbox()
		if len(r.Relay.SendAsAlso) > 0 {
			s += " and " + strings.Join(r.Relay.SendAsAlso, ", ")
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "no route sends as a mailbox, so none is refused"
	}
	return strings.Join(out, "; ")
}

// noticesTo says who is told about this identity's failed mail: the
// envelope sender only when it is trusted (the identity authenticates, or
// allowed_senders was checked), the owner always.
func (c *Config) noticesTo(id Identity) string {
	trusted := id.PasswordHash != "" || len(id.AllowedSenders) > 0
	switch {
	case trusted && id.Owner == "":
		return "to the envelope sender"
	case trusted && c.DSN.OwnerOnly:
		return "to the owner " + id.Owner + " (dsn.owner_only)"
	case trusted:
		return "to the envelope sender, a copy to the owner " + id.Owner
	case id.Owner != "":
		return "to the owner " + id.Owner + " only (the sender is not trusted without AUTH or allowed_senders)"
	}
	return "none, logged only (the sender is not trusted without AUTH or allowed_senders, and there is no owner)"
}

func orName(id Identity) string {
	if id.Username != "" {
		return id.Username
	}
	return id.Name
}

func patterns(p []string) string {
	if len(p) == 0 {
		return "any"
	}
	return strings.Join(p, ", ")
}
