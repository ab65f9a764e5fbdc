package app

import (
	"cmp"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/smtpd"
)

// Device is what the gateway has seen of one identity: enough to find the
// legacy devices still on TLS 1.0, plaintext or AUTH LOGIN, and from which
// addresses they send. The first fields are the latest session's; the
// maps, Legacy and Days add up everything since the table began.
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

	// TLSVersions counts messages per TLS version ("none": plaintext);
	// AuthMechs per AUTH mechanism ("none": admitted by its network).
	TLSVersions map[string]int `json:"tls_versions"`
	AuthMechs   map[string]int `json:"auth_mechs"`
	// Legacy lists, sorted, the legacy allowances the device's mail used:
	// LegacyTLS, LegacyPlaintext, LegacyLogin.
	Legacy []string `json:"legacy"`
	// Sources are the client addresses it sent from, latest first, at most
	// maxSources.
	Sources []Source `json:"sources"`
	// Days counts messages and failures (AUTH failures and rate-limit
	// refusals) per UTC day, oldest first, for the last keepDays days with
	// any.
	Days []DayCount `json:"days"`
}

// The legacy allowances a device can use.
const (
	LegacyTLS       = "tls_below_1.2" // TLS 1.0 or 1.1
	LegacyPlaintext = "plaintext"     // no TLS at all
	LegacyLogin     = "auth_login"    // AUTH LOGIN
	LegacyBareLF    = "bare_lf"       // message lines ended by LF alone
)

// Source is one client address of a device.
type Source struct {
	Addr     string    `json:"addr"`
	LastSeen time.Time `json:"last_seen"`
	Messages int       `json:"messages"`
}

// DayCount is one day of a device.
type DayCount struct {
	Day      string `json:"day"` // YYYY-MM-DD, UTC
	Messages int    `json:"messages"`
	Failures int    `json:"failures"`
}

const (
	maxSources = 16
	keepDays   = 14
)

// devices tracks identities; it is one of the gateway's observers.
type devices struct {
	now func() time.Time

	mu sync.Mutex
	// Guarded by mu: by holds one Device per identity (never ""), each
	// keyed by its Identity; day is the UTC day MessagesToday counts, and
	// get resets every MessagesToday when the day changes. A Device's maps
	// and slices are never shared outside mu: list copies them.
	by  map[string]*Device
	day string
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
	version, mech := cmp.Or(dev.TLSVersion, "none"), cmp.Or(env.AuthMech, "none")
	dev.TLSVersions = inc(dev.TLSVersions, version)
	dev.AuthMechs = inc(dev.AuthMechs, mech)
	switch version {
	case "none":
		dev.Legacy = addLegacy(dev.Legacy, LegacyPlaintext)
	case "TLS 1.0", "TLS 1.1", "SSLv3":
		dev.Legacy = addLegacy(dev.Legacy, LegacyTLS)
	}
	if strings.EqualFold(mech, "LOGIN") {
		dev.Legacy = addLegacy(dev.Legacy, LegacyLogin)
	}
	if env.BareLF {
		dev.Legacy = addLegacy(dev.Legacy, LegacyBareLF)
	}
	d.today(dev).Messages++
	dev.Sources = seenFrom(dev.Sources, env.ClientIP, env.ReceivedAt)
}

func cloneCounts(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return maps.Clone(m)
}

func inc(m map[string]int, k string) map[string]int {
	if m == nil {
		m = map[string]int{}
	}
	m[k]++
	return m
}

func addLegacy(l []string, what string) []string {
	if slices.Contains(l, what) {
		return l
	}
	l = append(l, what)
	slices.Sort(l)
	return l
}

// seenFrom moves addr to the front of srcs, counting one message.
func seenFrom(srcs []Source, addr string, at time.Time) []Source {
	s := Source{Addr: addr}
	if i := slices.IndexFunc(srcs, func(s Source) bool { return s.Addr == addr }); i >= 0 {
		s = srcs[i]
		srcs = slices.Delete(srcs, i, i+1)
	}
	s.LastSeen = at
	s.Messages++
	srcs = slices.Insert(srcs, 0, s)
	if len(srcs) > maxSources {
		srcs = srcs[:maxSources]
	}
	return srcs
}

// today returns dev's count for the current UTC day, dropping days older
// than keepDays.
func (d *devices) today(dev *Device) *DayCount {
	now := d.now().UTC()
	day := now.Format(time.DateOnly)
	if n := len(dev.Days); n == 0 || dev.Days[n-1].Day != day {
		dev.Days = append(dev.Days, DayCount{Day: day})
	}
	oldest := now.AddDate(0, 0, -(keepDays - 1)).Format(time.DateOnly)
	for len(dev.Days) > 0 && dev.Days[0].Day < oldest {
		dev.Days = dev.Days[1:]
	}
	return &dev.Days[len(dev.Days)-1]
}

func (d *devices) AuthFailure(identity string) {
	if identity == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dev := d.get(identity)
	dev.AuthFailures++
	d.today(dev).Failures++
}

func (d *devices) RateLimited(identity string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dev := d.get(identity)
	dev.RateLimited++
	d.today(dev).Failures++
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
		// Copies, never nil, so that JSON has {} and [] rather than null.
		c := *dev
		c.TLSVersions, c.AuthMechs = cloneCounts(dev.TLSVersions), cloneCounts(dev.AuthMechs)
		c.Legacy = append([]string{}, dev.Legacy...)
		c.Sources = append([]Source{}, dev.Sources...)
		c.Days = append([]DayCount{}, dev.Days...)
		out = append(out, c)
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
