package webhook

import (
	"time"

	"github.com/postern/postern/internal/postern"
)

// The webhook body is a public contract with applications, so it has its own
// types here rather than reusing the domain types: a change inside Postern
// cannot change what receivers see without a change to this file and to V.
// Every key of a received event is always present, empty ("", [], false,
// an object of empty values) when there is nothing to say, so receivers
// never test for a key; auth alone may be null (see Received.Auth).

// PayloadVersion is the schema version carried as "v" inside data.
const PayloadVersion = 1

// Event types.
const (
	EventReceived = "email.received"
	EventFailed   = "email.failed"
)

// ReceivedEvent is the body of a json-payload delivery.
type ReceivedEvent struct {
	Type      string    `json:"type"`      // EventReceived
	Timestamp time.Time `json:"timestamp"` // when the gateway received the message, UTC, RFC 3339
	Data      Received  `json:"data"`
}

// Received is one received message as an application sees it. Envelope
// addresses (what SMTP said) are kept apart from header addresses (what the
// message says), since they differ for Bcc, lists and forwarding.
type Received struct {
	V        int           `json:"v"`
	ID       postern.MsgID `json:"id"`
	Route    string        `json:"route"`
	Identity string        `json:"identity"`
	Envelope Envelope      `json:"envelope"`

	From       []Address `json:"from"`
	Sender     []Address `json:"sender"`
	To         []Address `json:"to"`
	Cc         []Address `json:"cc"`
	ReplyTo    []Address `json:"reply_to"`
	Subject    string    `json:"subject"`
	Date       string    `json:"date"` // RFC 3339; "" when the message has no valid Date
	MessageID  string    `json:"message_id"`
	InReplyTo  []string  `json:"in_reply_to"`
	References []string  `json:"references"`
	Headers    []Header  `json:"headers"`

	Text          string `json:"text"`
	HTML          string `json:"html"`
	TextDerived   bool   `json:"text_derived"`
	TextTruncated bool   `json:"text_truncated"`
	HTMLTruncated bool   `json:"html_truncated"`

	Attachments []Attachment `json:"attachments"`
	Raw         Raw          `json:"raw"`
	// ParseErrors lists what the parser met; a message with severe ones is
	// delivered all the same, and Raw has all of it.
	ParseErrors []ParseError `json:"parse_errors"`
	Client      Client       `json:"client"`
	// Auth is the sender-authentication verdicts. null only for a
	// message parsed before Postern checked senders (a replay of old mail).
	Auth *Auth `json:"auth"`
}

// Auth is what the parse stage found about the sender: SPF, every DKIM
// signature and DMARC, with RFC 8601 result names (none, pass, fail,
// softfail, neutral, policy, temperror, permerror). Mail from a trusted
// identity (one that authenticated or came from its networks, not marked
// internet) is none everywhere with reason "trusted": nothing was checked.
// DNS trouble is temperror, never a delay.
type Auth struct {
	SPF SPF `json:"spf"`
	// DKIM has one entry per DKIM-Signature field, in header order; an
	// unsigned message has one entry with result none.
	DKIM  []DKIM `json:"dkim"`
	DMARC DMARC  `json:"dmarc"`
	// ARC lists the ARC sets the message carries, as earlier hops claim
	// them (not verified: result is none); without ARC fields it has
	// result none and no sets.
	ARC ARC `json:"arc"`
}

// SPF is the SPF verdict (RFC 7208) for the client address and the MAIL
// FROM domain, or the HELO name for the null sender.
type SPF struct {
	Result string `json:"result"`
	Domain string `json:"domain"` // the domain checked; "" when there was none
	Scope  string `json:"scope"`  // "mailfrom" or "helo"
	Reason string `json:"reason"`
}

// DKIM is the verdict (RFC 6376) for one signature.
type DKIM struct {
	Result    string `json:"result"`
	Domain    string `json:"domain"`    // d=
	Selector  string `json:"selector"`  // s=
	Algorithm string `json:"algorithm"` // a=, e.g. rsa-sha256, ed25519-sha256
	Reason    string `json:"reason"`
}

// DMARC is the verdict (RFC 7489) for the From header's domain.
type DMARC struct {
	Result string `json:"result"`
	// Policy is the published policy that applies (none, quarantine,
	// reject); "" when no record was found.
	Policy string `json:"policy"`
	Domain string `json:"domain"` // the From header's domain
	// AlignedSPF and AlignedDKIM say whether an SPF or a DKIM pass was for
	// a domain aligned with Domain.
	AlignedSPF  bool   `json:"aligned_spf"`
	AlignedDKIM bool   `json:"aligned_dkim"`
	Reason      string `json:"reason"`
}

// ARC reports ARC sets, unverified.
type ARC struct {
	Result string   `json:"result"`
	Reason string   `json:"reason"`
	Sets   []ARCSet `json:"sets"`
}

// ARCSet is one ARC instance: its ARC-Authentication-Results and the cv=
// of its ARC-Seal.
type ARCSet struct {
	Instance        int    `json:"instance"`
	AuthServID      string `json:"authserv_id"`
	Results         string `json:"results"`
	ChainValidation string `json:"cv"`
}

// Envelope is the SMTP envelope as it concerns this route.
type Envelope struct {
	Sender     string   `json:"sender"`     // MAIL FROM; "" for the null sender
	Recipients []string `json:"recipients"` // the RCPT TO addresses this route took
	Listener   string   `json:"listener"`   // the name of the listener that took the message
}

// Address is one mailbox from a header.
type Address struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Header is one header field, in message order, value decoded where it could be.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Attachment is one attachment or inline part. Content is there (base64)
// when the part was small enough to inline; otherwise Key names the stored
// object and URL, when the gateway is set up to make links, fetches it.
type Attachment struct {
	Filename     string `json:"filename"`
	ContentType  string `json:"content_type"`
	DetectedType string `json:"detected_type"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	ContentID    string `json:"content_id"`
	Disposition  string `json:"disposition"`
	Content      []byte `json:"content"` // "" when the part is not inlined
	Key          string `json:"key"`
	URL          string `json:"url"`
}

// Raw points at the message exactly as received.
type Raw struct {
	Key    string `json:"key"`
	URL    string `json:"url"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ParseError is one problem the parser met.
type ParseError struct {
	Name   string `json:"name"`
	Detail string `json:"detail"`
	Severe bool   `json:"severe"`
}

// Client is what the gateway knew about the sending device or application.
type Client struct {
	IP         string    `json:"ip"`
	HELO       string    `json:"helo"`
	TLS        TLS       `json:"tls"` // version and cipher "" for plaintext
	AuthMech   string    `json:"auth_mech"`
	Identity   string    `json:"identity"`
	ReceivedAt time.Time `json:"received_at"`
}

// TLS is the TLS state of the SMTP session; empty strings for plaintext.
type TLS struct {
	Version string `json:"version"`
	Cipher  string `json:"cipher"`
}

// RawEnvelope is the SMTP envelope of a raw-payload delivery, sent as
// base64url JSON (no padding) in the HeaderEnvelope request header, since the
// body is the message itself. Like the body it is signed (Sign): its value
// and a "." come before the body in the signed content.
type RawEnvelope struct {
	V          int           `json:"v"` // PayloadVersion
	ID         postern.MsgID `json:"id"`
	Route      string        `json:"route"`
	Sender     string        `json:"sender"`     // MAIL FROM; "" for the null sender
	Recipients []string      `json:"recipients"` // the RCPT TO addresses this delivery is for (this route's)
	Identity   string        `json:"identity"`
	ClientIP   string        `json:"client_ip"`
	HELO       string        `json:"helo"`
	Listener   string        `json:"listener"`
	ReceivedAt time.Time     `json:"received_at"`
}

// FailedEvent is the body sent to a route's failure URL when a delivery
// fails for good.
type FailedEvent struct {
	Type      string    `json:"type"` // EventFailed
	Timestamp time.Time `json:"timestamp"`
	Data      Failed    `json:"data"`
}

// Failed says which delivery failed and why. It carries no message content:
// the receiver can look the message up by ID.
type Failed struct {
	V          int           `json:"v"`
	ID         postern.MsgID `json:"id"`
	Route      string        `json:"route"`
	WebhookID  string        `json:"webhook_id"` // the webhook-id the failed deliveries carried
	Recipients []string      `json:"recipients"`
	Reason     string        `json:"reason"`     // "rejected" (permanent answer) or "expired" (max age)
	Status     string        `json:"status"`     // the DSN's enhanced status, e.g. 5.0.0
	Diagnostic string        `json:"diagnostic"` // e.g. "http; 410 Gone"
	Attempts   int           `json:"attempts"`
	Created    time.Time     `json:"created"` // when routing created the delivery
}
