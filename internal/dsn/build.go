package dsn

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"net/textproto"
	"regexp"
	"strings"
	"time"
)

// hostRE admits host names and address literals for Reporting-MTA,
// Remote-MTA and the MAILER-DAEMON domain: they go into fields unquoted.
var hostRE = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?)$`)

// Build renders r as a multipart/report; report-type=delivery-status: a
// human-readable text/plain part, a message/delivery-status part (or
// message/global-delivery-status when an address is not ASCII), and, per
// r.Return, the original's header section (text/rfc822-headers, or
// message/global-headers when it holds UTF-8) or the whole original
// (message/rfc822, or message/global).
//
// The notice is From MAILER-DAEMON@<domain> with Auto-Submitted:
// auto-replied; it is meant to be sent with the null envelope sender. Build
// is deterministic: its boundary and Message-ID derive from the content.
func Build(r *Report) (*Message, error) {
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	global := false
	for _, rc := range r.Recipients {
		if !isASCII(rc.Final) || !isASCII(rc.Original) {
			global = true
		}
	}

	third, thirdType, thirdCTE, ret, fellBack := r.returned()
	status := r.deliveryStatus(global)
	text, err := qpEncode(r.humanText(ret, fellBack))
	if err != nil {
		return nil, fmt.Errorf("dsn: encode text: %w", err)
	}

	statusType, statusCTE := "message/delivery-status", "7bit"
	if global {
		statusType, statusCTE = "message/global-delivery-status", "8bit"
	}
	boundary := pickBoundary(text, status, third)
	msgID := r.MessageID
	if msgID == "" {
		msgID = r.deriveMessageID()
	}

	var b bytes.Buffer
	b.Grow(len(text) + len(status) + len(third) + 2048)
	domain := r.Domain
	if domain == "" {
		domain = r.ReportingMTA
	}
	writeField(&b, "From", "Mail Delivery System <MAILER-DAEMON@"+domain+">")
	writeField(&b, "To", "<"+r.To+">")
	writeField(&b, "Subject", r.subject())
	writeField(&b, "Date", r.Date.Format(time.RFC1123Z))
	writeField(&b, "Message-ID", "<"+msgID+">")
	if id := originalMessageID(r.Original); id != "" {
		writeField(&b, "In-Reply-To", id)
		writeField(&b, "References", id)
	}
	writeField(&b, "Auto-Submitted", "auto-replied")
	writeField(&b, "MIME-Version", "1.0")
	writeField(&b, "Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	b.WriteString("\r\nThis is a MIME-encapsulated delivery status notification.\r\n")

	part := func(ctype, cte string, body []byte) {
		b.WriteString("\r\n--" + boundary + "\r\n")
		writeField(&b, "Content-Type", ctype)
		if cte != "" {
			writeField(&b, "Content-Transfer-Encoding", cte)
		}
		b.WriteString("\r\n")
		b.Write(body)
	}
	part("text/plain; charset=utf-8", "quoted-printable", text)
	part(statusType, statusCTE, status)
	if third != nil {
		part(thirdType, thirdCTE, third)
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")

	return &Message{Bytes: b.Bytes(), SMTPUTF8: !isASCII(r.To), Returned: ret, MessageID: msgID}, nil
}

func (r *Report) validate() error {
	if len(r.ReportingMTA) > 255 || !hostRE.MatchString(r.ReportingMTA) {
		return fmt.Errorf("reporting MTA %q is not a host name", r.ReportingMTA)
	}
	if r.Domain != "" && (len(r.Domain) > 255 || !hostRE.MatchString(r.Domain)) {
		return fmt.Errorf("domain %q is not a host name", r.Domain)
	}
	if err := checkAddr("notice recipient", r.To); err != nil {
		return err
	}
	if r.Date.IsZero() {
		return errors.New("date is zero")
	}
	if r.MessageID != "" && (!isASCII(r.MessageID) || strings.ContainsAny(r.MessageID, "<> \t\r\n")) {
		return fmt.Errorf("message id %q is not a bare id-left@id-right", r.MessageID)
	}
	switch r.Return {
	case "", ReturnHeaders, ReturnFull, ReturnNone:
	default:
		return fmt.Errorf("return %q is not HDRS, FULL or NONE", r.Return)
	}
	if len(r.Recipients) == 0 {
		return errors.New("no recipients to report")
	}
	for i, rc := range r.Recipients {
		if err := checkAddr(fmt.Sprintf("recipient %d", i), rc.Final); err != nil {
			return err
		}
		if !statusRE.MatchString(rc.Status) {
			return fmt.Errorf("recipient %s: status %q is not an enhanced status code", rc.Final, rc.Status)
		}
		want := "2"
		switch rc.Action {
		case ActionFailed:
			want = "45"
		case ActionDelayed:
			want = "4"
		case ActionDelivered, ActionRelayed, ActionExpanded:
		default:
			return fmt.Errorf("recipient %s: action %q is not an RFC 3464 action", rc.Final, rc.Action)
		}
		if !strings.Contains(want, rc.Status[:1]) {
			return fmt.Errorf("recipient %s: status %s does not fit action %s", rc.Final, rc.Status, rc.Action)
		}
		if rc.RemoteMTA != "" && (len(rc.RemoteMTA) > 255 || !hostRE.MatchString(rc.RemoteMTA)) {
			return fmt.Errorf("recipient %s: remote MTA %q is not a host name", rc.Final, rc.RemoteMTA)
		}
		if rc.Original != "" {
			if _, addr, err := splitORCPT(rc.Original); err != nil {
				return fmt.Errorf("recipient %s: original recipient %q: %w", rc.Final, rc.Original, err)
			} else if err := checkAddr("original recipient", addr); err != nil {
				return fmt.Errorf("recipient %s: %w", rc.Final, err)
			}
		}
	}
	return nil
}

// returned picks the third part. FULL falls back to the header section when
// the original cannot be carried as an 8bit body; headers that cannot be
// carried either leave the notice with two parts.
func (r *Report) returned() (body []byte, ctype, cte string, ret Return, fellBack bool) {
	ret = r.Return
	if ret == "" {
		ret = ReturnHeaders
	}
	if r.Original == nil || ret == ReturnNone {
		return nil, "", "", ReturnNone, false
	}
	if ret == ReturnFull {
		full, ok := toCRLF(r.Original)
		if ok {
			ctype = "message/rfc822"
			if !isASCIIBytes(headerSection(full)) {
				ctype = "message/global"
			}
			return full, ctype, transferEncoding(full), ReturnFull, false
		}
		ret, fellBack = ReturnHeaders, true
	}
	hdr, ok := toCRLF(headerSection(r.Original))
	if !ok || len(hdr) == 0 {
		return nil, "", "", ReturnNone, fellBack
	}
	if isASCIIBytes(hdr) {
		return hdr, "text/rfc822-headers", "7bit", ReturnHeaders, fellBack
	}
	return hdr, "message/global-headers", "8bit", ReturnHeaders, fellBack
}

func transferEncoding(b []byte) string {
	if isASCIIBytes(b) {
		return "7bit"
	}
	return "8bit"
}

// deliveryStatus renders the per-message fields, then one block per
// recipient, each block preceded by an empty line (RFC 3464 section 2.1).
func (r *Report) deliveryStatus(global bool) []byte {
	var b bytes.Buffer
	writeField(&b, "Reporting-MTA", "dns; "+r.ReportingMTA)
	if r.ID != "" {
		writeField(&b, "X-Postern-Id", cleanText(string(r.ID), maxFieldText))
	}
	if r.EnvID != "" {
		writeField(&b, "Original-Envelope-Id", cleanText(r.EnvID, maxFieldText))
	}
	if helo := cleanText(r.ReceivedFromMTA, 255); helo != "" {
		writeField(&b, "Received-From-MTA", "dns; "+helo)
	}
	if !r.ArrivalDate.IsZero() {
		writeField(&b, "Arrival-Date", r.ArrivalDate.Format(time.RFC1123Z))
	}
	for _, rc := range r.Recipients {
		b.WriteString("\r\n")
		if rc.Original != "" {
			writeField(&b, "Original-Recipient", originalRecipient(rc.Original, global))
		}
		writeField(&b, "Final-Recipient", addressField(rc.Final, global))
		writeField(&b, "Action", string(rc.Action))
		writeField(&b, "Status", rc.Status)
		if rc.RemoteMTA != "" {
			writeField(&b, "Remote-MTA", "dns; "+rc.RemoteMTA)
		}
		if d := cleanText(rc.Diagnostic, maxFieldText); d != "" {
			writeField(&b, "Diagnostic-Code", d)
		}
		if !rc.LastAttempt.IsZero() {
			writeField(&b, "Last-Attempt-Date", rc.LastAttempt.Format(time.RFC1123Z))
		}
		if rc.Action == ActionDelayed && !rc.WillRetryUntil.IsZero() {
			writeField(&b, "Will-Retry-Until", rc.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	return b.Bytes()
}

// originalRecipient renders a recorded ORCPT ("type;address", validated).
func originalRecipient(orcpt string, global bool) string {
	typ, addr, _ := splitORCPT(orcpt)
	switch strings.ToLower(typ) {
	case "rfc822", "utf-8":
		return addressField(addr, global)
	default:
		return cleanText(typ, 64) + "; " + cleanText(addr, maxFieldText)
	}
}

func (r *Report) subject() string {
	for _, rc := range r.Recipients {
		if rc.Action == ActionFailed {
			return "Undelivered Mail Returned to Sender"
		}
	}
	for _, rc := range r.Recipients {
		if rc.Action == ActionDelayed {
			return "Delayed Mail (still being retried)"
		}
	}
	return "Delivery Status Notification"
}

// deriveMessageID makes a Message-ID from what the notice reports, so the
// same notice built again has the same id and receivers can de-duplicate.
func (r *Report) deriveMessageID() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", r.ID, r.To, r.Date.UnixNano())
	for _, rc := range r.Recipients {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", rc.Final, rc.Action, rc.Status)
	}
	left := "dsn." + hex.EncodeToString(h.Sum(nil)[:10])
	if r.ID != "" && isASCII(string(r.ID)) && !strings.ContainsAny(string(r.ID), "<>@ \t\r\n") {
		left = string(r.ID) + "." + left
	}
	return left + "@" + r.ReportingMTA
}

// pickBoundary derives the boundary from the parts. It starts with "=_",
// which quoted-printable output cannot contain, and is checked against the
// other parts all the same.
func pickBoundary(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	sum := h.Sum(nil)
	for n := 0; ; n++ {
		b := fmt.Sprintf("=_dsn_%s_%d", hex.EncodeToString(sum[:12]), n)
		clash := false
		for _, p := range parts {
			if bytes.Contains(p, []byte("--"+b)) {
				clash = true
			}
		}
		if !clash {
			return b
		}
	}
}

func qpEncode(s string) ([]byte, error) {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}

// originalMessageID returns the original's Message-ID for In-Reply-To and
// References, or "" when it has none that is safe to copy.
func originalMessageID(orig []byte) string {
	if orig == nil {
		return ""
	}
	hdr := headerSection(orig)
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(bytes.Clone(hdr), "\r\n"...))))
	h, _ := tr.ReadMIMEHeader() // a malformed header still yields the fields before it
	id := strings.TrimSpace(h.Get("Message-Id"))
	if len(id) < 3 || len(id) > 250 || id[0] != '<' || id[len(id)-1] != '>' || !isASCII(id) ||
		strings.ContainsAny(id[1:len(id)-1], "<> \t\r\n") {
		return ""
	}
	return id
}
