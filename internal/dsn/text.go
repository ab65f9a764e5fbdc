package dsn

import (
	"fmt"
	"strings"
	"time"
)

// humanText is the first part: what happened, in plain words, for the
// person who sent the message. Addresses stay as they are (the part is
// UTF-8); remote texts are cleaned like fields.
func (r *Report) humanText(ret Return, fellBack bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "This is the mail system at host %s.\n\n", r.ReportingMTA)

	groups := []struct {
		action Action
		lead   string
		head   string
	}{
		{ActionFailed, "Your message could not be delivered to one or more recipients.", "Could not be delivered:"},
		{ActionDelayed, "Your message has not yet been delivered to one or more recipients. The mail system will keep trying; you do not need to send it again.", "Delayed:"},
		{ActionDelivered, "Your message was delivered to one or more recipients.", "Delivered:"},
		{ActionRelayed, "Your message was passed on to a system that does not send delivery notifications.", "Relayed:"},
		{ActionExpanded, "Your message was delivered to a list, which passed it on to its members.", "Expanded:"},
	}
	var leads, blocks []string
	for _, g := range groups {
		var lines []string
		for _, rc := range r.Recipients {
			if rc.Action != g.action {
				continue
			}
			lines = append(lines, "  <"+rc.Final+">")
			why := cleanText(rc.Diagnostic, maxFieldText)
			if why == "" {
				why = "status " + rc.Status
			}
			if rc.RemoteMTA != "" {
				why += " (from " + rc.RemoteMTA + ")"
			}
			lines = append(lines, "    "+why)
			if g.action == ActionDelayed && !rc.WillRetryUntil.IsZero() {
				lines = append(lines, "    retrying until "+rc.WillRetryUntil.Format(time.RFC1123Z))
			}
		}
		if len(lines) > 0 {
			leads = append(leads, g.lead)
			blocks = append(blocks, g.head+"\n"+strings.Join(lines, "\n"))
		}
	}
	b.WriteString(strings.Join(leads, "\n"))
	b.WriteString("\n\n")
	b.WriteString(strings.Join(blocks, "\n\n"))
	b.WriteString("\n\n")

	if r.ID != "" {
		fmt.Fprintf(&b, "Message id: %s\n", cleanText(string(r.ID), 100))
	}
	if !r.ArrivalDate.IsZero() {
		fmt.Fprintf(&b, "Received:   %s\n", r.ArrivalDate.Format(time.RFC1123Z))
	}
	if r.EnvID != "" {
		fmt.Fprintf(&b, "Envelope id: %s\n", cleanText(r.EnvID, 100))
	}
	switch {
	case ret == ReturnFull:
		b.WriteString("\nYour message is attached.\n")
	case ret == ReturnHeaders && fellBack:
		b.WriteString("\nYour message could not be attached in full; its headers are attached.\n")
	case ret == ReturnHeaders:
		b.WriteString("\nThe headers of your message are attached.\n")
	}
	return b.String()
}
