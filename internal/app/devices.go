package app

import (
	"sort"
	"sync"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/smtpd"
)

// Device is what the gateway has seen of one identity since it started:
// enough to find the legacy devices still on TLS 1.0 or plaintext.
type Device struct {
	Identity      string    `json:"identity"`
	LastSeen      time.Time `json:"last_seen"`
	LastClientIP  string    `json:"last_client_ip"`
	MessagesToday int       `json:"messages_today"`
	Messages      int       `json:"messages"`
	AuthFailures  int       `json:"auth_failures"`
	RateLimited   int       `json:"rate_limited"`
	TLSVersion    string    `json:"tls_version"` // "" means plaintext
	AuthMech      string    `json:"auth_mech"`   // "" means by network
}

// devices tracks identities; it is one of the gateway's observers.
type devices struct {
	mu  sync.Mutex
	by  map[string]*Device
	day string
	now func() time.Time
}

func newDevices() *devices { return &devices{by: map[string]*Device{}, now: time.Now} }

func (d *devices) get(identity string) *Device {
	if today := d.now().UTC().Format(time.DateOnly); today != d.day {
		d.day = today
		for _, dev := range d.by {
			dev.MessagesToday = 0
		}
	}
	dev := d.by[identity]
	if dev == nil {
		dev = &Device{Identity: identity}
		d.by[identity] = dev
	}
	return dev
}

func (d *devices) Accepted(env *postern.Envelope, _ time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dev := d.get(env.Identity)
	dev.LastSeen, dev.LastClientIP = env.ReceivedAt, env.ClientIP
	dev.Messages++
	dev.MessagesToday++
	dev.TLSVersion, dev.AuthMech = "", env.AuthMech
	if env.TLS != nil {
		dev.TLSVersion = env.TLS.Version
	}
}

func (d *devices) AuthFailure(identity string) {
	if identity == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.get(identity).AuthFailures++
}

func (d *devices) RateLimited(identity string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.get(identity).RateLimited++
}

func (d *devices) Connection(string, string)       {}
func (d *devices) SessionEnd(string, bool, string) {}
func (d *devices) Reply(string, int)               {}
func (d *devices) AcceptError(string)              {}

func (d *devices) list() []Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.get("") // roll the day over
	delete(d.by, "")
	out := make([]Device, 0, len(d.by))
	for _, dev := range d.by {
		out = append(out, *dev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}

// observers fans gateway events out to several observers.
type observers []smtpd.Observer

func (o observers) Connection(l, outcome string) {
	for _, x := range o {
		x.Connection(l, outcome)
	}
}
func (o observers) SessionEnd(l string, tls bool, auth string) {
	for _, x := range o {
		x.SessionEnd(l, tls, auth)
	}
}
func (o observers) Reply(c string, code int) {
	for _, x := range o {
		x.Reply(c, code)
	}
}
func (o observers) Accepted(env *postern.Envelope, d time.Duration) {
	for _, x := range o {
		x.Accepted(env, d)
	}
}
func (o observers) AuthFailure(id string) {
	for _, x := range o {
		x.AuthFailure(id)
	}
}
func (o observers) RateLimited(id string) {
	for _, x := range o {
		x.RateLimited(id)
	}
}
func (o observers) AcceptError(l string) {
	for _, x := range o {
		x.AcceptError(l)
	}
}
