package postern

import "time"

// EnvelopeVersion is the current schema version of Envelope.
const EnvelopeVersion = 1

// Envelope is everything the gateway learnt about a message besides its
// bytes. It is stored as a sidecar beside the raw message and travels in
// every job, so the archive alone is enough to replay a message.
type Envelope struct {
	V          int         `json:"v"`
	ID         MsgID       `json:"id"`
	Sender     string      `json:"sender"` // MAIL FROM, "" for the null sender <>
	Recipients []Recipient `json:"recipients"`

	Identity   string    `json:"identity,omitempty"`
	AuthMech   string    `json:"auth_mech,omitempty"`
	AuthUser   string    `json:"auth_user,omitempty"`
	ClientIP   string    `json:"client_ip"`
	ClientPort int       `json:"client_port,omitempty"`
	HELO       string    `json:"helo"`
	TLS        *TLSInfo  `json:"tls,omitempty"`
	Listener   string    `json:"listener,omitempty"`
	Gateway    string    `json:"gateway"` // hostname of the receiving gateway
	ReceivedAt time.Time `json:"received_at"`

	Size   int64  `json:"size"`   // bytes of the stored raw message
	SHA256 string `json:"sha256"` // hex SHA-256 of the stored raw message
	// BareLF says the message has a line ended by LF alone, which RFC 5321
	// forbids and old devices still send: a legacy allowance the device
	// table reports. Postern stores the bytes as they came.
	BareLF bool `json:"bare_lf,omitempty"`

	// SMTP MAIL parameters.
	Body     string `json:"body,omitempty"` // BODY=7BIT|8BITMIME|BINARYMIME
	SMTPUTF8 bool   `json:"smtputf8,omitempty"`
	DeclSize int64  `json:"declared_size,omitempty"` // SIZE=
	Ret      string `json:"ret,omitempty"`           // RET=FULL|HDRS
	EnvID    string `json:"envid,omitempty"`         // ENVID=
}

// Recipient is one RCPT TO with its RFC 3461 parameters.
type Recipient struct {
	Addr   string   `json:"addr"`
	Notify []string `json:"notify,omitempty"` // NEVER, SUCCESS, FAILURE, DELAY
	ORCPT  string   `json:"orcpt,omitempty"`  // addr-type;xtext as given
}

// TLSInfo records the TLS state of the session that delivered a message.
type TLSInfo struct {
	Version    string `json:"version"`
	Cipher     string `json:"cipher"`
	ServerName string `json:"server_name,omitempty"`
}

// RecipientAddrs returns the recipient addresses in order.
func (e *Envelope) RecipientAddrs() []string {
	out := make([]string, len(e.Recipients))
	for i, r := range e.Recipients {
		out[i] = r.Addr
	}
	return out
}
