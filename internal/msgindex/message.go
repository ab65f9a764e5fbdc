package msgindex

import (
	"slices"
	"strings"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/trace"
)

// Statuses of a route's delivery and of a message as a whole.
const (
	StatusPending      = "pending"       // not settled yet: waiting, being tried, or being retried
	StatusDelivered    = "delivered"     // the route's target took it
	StatusFailed       = "failed"        // refused for good (failure notice queued), or rejected by a route
	StatusExpired      = "expired"       // still failing at the route's max_age (failure notice queued)
	StatusDeadLettered = "dead-lettered" // its job can never run and waits in a dead-letter queue for a redrive
)

// ParseDone is Message.Parse once the parse stage has parsed and routed
// the message.
const ParseDone = "done"

// Statuses lists every status, for validating a filter.
var Statuses = []string{StatusPending, StatusDelivered, StatusFailed, StatusExpired, StatusDeadLettered}

// Message is one row of the index: what the console lists and filters on.
// Its fields come from the envelope (at acceptance), the parsed form
// (Subject, Attachments, the routes the recipients go to) and the stages'
// trace events (each route's status), so the archive alone can rebuild it.
type Message struct {
	ID          postern.MsgID `json:"id"`
	ReceivedAt  time.Time     `json:"received_at"`
	Sender      string        `json:"sender"` // envelope MAIL FROM; "" is the null sender <>
	Recipients  []string      `json:"recipients"`
	Identity    string        `json:"identity"`
	Listener    string        `json:"listener"`
	ClientIP    string        `json:"client_ip"`
	Size        int64         `json:"size"`
	Subject     string        `json:"subject"`
	Attachments int           `json:"attachments"`
	// Parse is the parse stage's state: pending (Subject and Attachments
	// unknown yet), done, or dead-lettered.
	Parse   string    `json:"parse"`
	ParseAt time.Time `json:"parse_at,omitzero"`
	Routes  []Route   `json:"routes"`
	// Status sums up the routes: dead-lettered, else failed, else expired,
	// else pending, else delivered; a parsed message no route took is
	// failed.
	Status string `json:"status"`
	// Updated is the time of the latest event applied.
	Updated time.Time `json:"updated"`
}

// Route is one route's delivery of a message.
type Route struct {
	Name       string   `json:"name"`
	Recipients []string `json:"recipients,omitempty"`
	Status     string   `json:"status"`
	Attempts   int      `json:"attempts"`
	// Code is the status the last attempt noted: the application's HTTP
	// status, or the relay's SMTP reply code.
	Code    int       `json:"code,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Updated time.Time `json:"updated,omitzero"`
}

// Parsed is what the index takes from a message's parsed form
// (parsed.json): the facts the console shows, and what routing decided on.
type Parsed struct {
	Subject     string
	Attachments int
	Headers     []postern.Header
	Auth        *postern.Auth
	AuthResults string
}

// Assignment is the route the parse stage gives one recipient.
type Assignment struct {
	Recipient string
	Route     string // "" when no route takes it
	Reject    bool   // the route refuses it
}

// Router names the route of each recipient of a parsed message as the
// parse stage decides (first match on recipient, sender, identity, header
// and sender-authentication verdicts). nil: routes are learnt from the
// delivery stages' events only.
type Router func(env *postern.Envelope, p *Parsed) []Assignment

// maxDetail bounds the detail kept per route (an error text, a remote
// server's reply); the timeline has all of it.
const maxDetail = 300

// newMessage starts a row from a message's envelope.
func newMessage(env *postern.Envelope) *Message {
	m := &Message{Parse: StatusPending, Status: StatusPending, Routes: []Route{}}
	m.setEnvelope(env)
	return m
}

// setEnvelope takes the envelope's facts; doing it again changes nothing.
func (m *Message) setEnvelope(env *postern.Envelope) {
	m.ID, m.ReceivedAt, m.Sender = env.ID, env.ReceivedAt.UTC(), env.Sender
	m.Recipients = env.RecipientAddrs()
	m.Identity, m.Listener, m.ClientIP, m.Size = env.Identity, env.Listener, env.ClientIP, env.Size
	if m.Updated.Before(m.ReceivedAt) {
		m.Updated = m.ReceivedAt
	}
}

// route returns the message's route named name, adding it (pending) if it
// has none.
func (m *Message) route(name string) *Route {
	for i := range m.Routes {
		if m.Routes[i].Name == name {
			return &m.Routes[i]
		}
	}
	m.Routes = append(m.Routes, Route{Name: name, Status: StatusPending})
	return &m.Routes[len(m.Routes)-1]
}

// setParsed takes the parsed form's facts and the routes routing gave the
// recipients. A route already known keeps its status.
func (m *Message) setParsed(p *Parsed, as []Assignment) {
	m.Subject, m.Attachments = p.Subject, p.Attachments
	for _, a := range as {
		if a.Route == "" {
			continue
		}
		r := m.route(a.Route)
		if !slices.Contains(r.Recipients, a.Recipient) {
			r.Recipients = append(r.Recipients, a.Recipient)
		}
		if a.Reject && r.Status == StatusPending && r.Attempts == 0 {
			r.Status, r.Detail = StatusFailed, "rejected by the route"
		}
	}
}

// apply folds one trace event into the row. parsed is called for the
// parse stage's done event, to read the parsed form; it returns nil when
// there is none. Events may come twice and out of order (a rebuild reads
// what the live index was also told): a route or the parse stage takes an
// event only when it is not older than the last one it took, so applying
// the same events in any order gives the same row.
func (m *Message) apply(ev trace.Event, parsed func() (*Parsed, []Assignment)) {
	switch ev.Stage {
	case "parse":
		if ev.Time.Before(m.ParseAt) {
			break
		}
		switch {
		case ev.Event == trace.EventDone:
			m.Parse, m.ParseAt = ParseDone, ev.Time
			if p, as := parsed(); p != nil {
				m.setParsed(p, as)
			}
		case ev.Event == trace.EventFailed && ev.DeadLettered:
			m.Parse, m.ParseAt = StatusDeadLettered, ev.Time
		case ev.Event == trace.EventRetry, ev.Event == trace.EventFailed:
			if m.Parse != ParseDone {
				m.Parse, m.ParseAt = StatusPending, ev.Time
			}
		}
	case "webhook", "relay":
		var status string
		switch ev.Event {
		case trace.EventDelivered, trace.EventDone:
			status = StatusDelivered
		case trace.EventRetry:
			status = StatusPending
		case trace.EventFailed:
			status = StatusFailed
			if ev.DeadLettered {
				status = StatusDeadLettered
			}
		case trace.EventExpired:
			status = StatusExpired
		default:
			return // a side event (a notice queued or sent): the verdict was its own line
		}
		if ev.Route == "" {
			return
		}
		r := m.route(ev.Route)
		if ev.Time.Before(r.Updated) {
			break
		}
		r.Status, r.Code, r.Detail, r.Updated = status, ev.Status, clipDetail(ev.Detail), ev.Time
		r.Attempts = max(r.Attempts, ev.Attempt)
	default:
		return // the gateway's receipt, failure notices (dsn): not a route's outcome
	}
	if ev.Time.After(m.Updated) {
		m.Updated = ev.Time
	}
	m.Status = m.status()
}

// status sums the routes up (see Message.Status).
func (m *Message) status() string {
	if m.Parse == StatusDeadLettered {
		return StatusDeadLettered
	}
	if len(m.Routes) == 0 {
		if m.Parse == ParseDone {
			return StatusFailed // parsed, and no route took any recipient
		}
		return StatusPending
	}
	seen := map[string]bool{}
	for _, r := range m.Routes {
		seen[r.Status] = true
	}
	for _, s := range []string{StatusDeadLettered, StatusFailed, StatusExpired, StatusPending} {
		if seen[s] {
			return s
		}
	}
	return StatusDelivered
}

func clipDetail(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// keys are the message's entries in the filter bucket: one per value a
// filter can ask for, each ending in the id so that a value's messages sort
// by time.
func (m *Message) keys() []string {
	var ks []string
	add := func(field byte, v string) {
		k := string(field) + v + "\x00" + string(m.ID)
		if !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	for _, a := range addrKeys(m.Sender) {
		add(fieldFrom, a)
	}
	for _, r := range m.Recipients {
		for _, a := range addrKeys(r) {
			add(fieldRcpt, a)
		}
	}
	add(fieldIdentity, m.Identity)
	for _, r := range m.Routes {
		add(fieldRoute, r.Name)
	}
	add(fieldStatus, m.Status)
	return ks
}

// Filter fields, the first byte of a key in the filter bucket.
const (
	fieldFrom     = 's'
	fieldRcpt     = 'r'
	fieldIdentity = 'i'
	fieldRoute    = 'o'
	fieldStatus   = 't'
)

// addrKeys are the values an address is found by: itself (lower case;
// "<>" for the null sender) and "@" and its domain.
func addrKeys(addr string) []string {
	a := normAddr(addr)
	if a == "<>" {
		return []string{a}
	}
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		return []string{a, a[at:]}
	}
	return []string{a}
}

func normAddr(addr string) string {
	a := strings.ToLower(strings.TrimSpace(addr))
	a = strings.TrimSuffix(strings.TrimPrefix(a, "<"), ">")
	if a == "" {
		return "<>"
	}
	return a
}
