package app

import (
	"encoding/csv"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

// The device table adds up what each identity's mail used: TLS versions,
// AUTH mechanisms, the legacy allowances among them, its addresses (latest
// first, bounded) and its days (the last keepDays).
func TestDevicesLegacyAndDays(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	d := newDevices()
	d.now = func() time.Time { return now }
	send := func(id, ip, tlsVersion, mech string) {
		env := &postern.Envelope{Identity: id, ClientIP: ip, AuthMech: mech, ReceivedAt: now}
		if tlsVersion != "" {
			env.TLS = &postern.TLSInfo{Version: tlsVersion}
		}
		d.Accepted(env, 0)
	}
	send("scanner", "10.0.0.5", "TLS 1.0", "LOGIN")
	send("scanner", "10.0.0.5", "TLS 1.2", "PLAIN")
	send("printer", "10.0.0.9", "", "")
	send("erp", "10.0.0.7", "TLS 1.3", "PLAIN")
	d.AuthFailure("scanner")
	now = now.Add(24 * time.Hour)
	send("scanner", "10.0.0.6", "TLS 1.2", "PLAIN")
	d.RateLimited("scanner")

	by := map[string]Device{}
	for _, dev := range d.list() {
		by[dev.Identity] = dev
	}
	s := by["scanner"]
	if want := []string{LegacyLogin, LegacyTLS}; !reflect.DeepEqual(s.Legacy, want) {
		t.Errorf("scanner legacy %v, want %v", s.Legacy, want)
	}
	if want := map[string]int{"TLS 1.0": 1, "TLS 1.2": 2}; !reflect.DeepEqual(s.TLSVersions, want) {
		t.Errorf("scanner TLS versions %v", s.TLSVersions)
	}
	if want := map[string]int{"LOGIN": 1, "PLAIN": 2}; !reflect.DeepEqual(s.AuthMechs, want) {
		t.Errorf("scanner mechanisms %v", s.AuthMechs)
	}
	if len(s.Sources) != 2 || s.Sources[0].Addr != "10.0.0.6" || s.Sources[1].Messages != 2 {
		t.Errorf("scanner sources %+v", s.Sources)
	}
	if want := []DayCount{{"2026-12-01", 2, 1}, {"2026-12-02", 1, 1}}; !reflect.DeepEqual(s.Days, want) {
		t.Errorf("scanner days %+v, want %+v", s.Days, want)
	}
	if s.MessagesToday != 1 || s.Messages != 3 {
		t.Errorf("scanner today %d, total %d", s.MessagesToday, s.Messages)
	}
	if p := by["printer"]; !reflect.DeepEqual(p.Legacy, []string{LegacyPlaintext}) || p.AuthMechs["none"] != 1 || p.TLSVersions["none"] != 1 {
		t.Errorf("printer %+v", p)
	}
	if e := by["erp"]; len(e.Legacy) != 0 || e.Legacy == nil || e.Days == nil {
		t.Errorf("erp used no legacy allowance: %+v (and lists are [] in JSON, not null)", e)
	}
	// A message with lines ended by LF alone adds that allowance.
	d.Accepted(&postern.Envelope{Identity: "erp", ClientIP: "10.0.0.7", AuthMech: "PLAIN", ReceivedAt: now,
		TLS: &postern.TLSInfo{Version: "TLS 1.3"}, BareLF: true}, 0)
	for _, dev := range d.list() {
		if dev.Identity == "erp" && !reflect.DeepEqual(dev.Legacy, []string{LegacyBareLF}) {
			t.Errorf("erp after a bare-LF message: legacy %v, want [%s]", dev.Legacy, LegacyBareLF)
		}
	}

	// Bounded: old days go, and so do the least recent addresses.
	for i := range keepDays + 3 {
		now = now.Add(24 * time.Hour)
		send("scanner", fmt.Sprintf("10.1.0.%d", i), "TLS 1.2", "PLAIN")
	}
	s = d.list()[2]
	if s.Identity != "scanner" || len(s.Days) != keepDays || len(s.Sources) != maxSources || s.Days[keepDays-1].Day != now.Format(time.DateOnly) {
		t.Errorf("after %d more days: %d days (last %s), %d sources", keepDays+3, len(s.Days), s.Days[len(s.Days)-1].Day, len(s.Sources))
	}
	// list hands out copies.
	s.TLSVersions["TLS 1.2"] = 0
	s.Days[0].Messages = 99
	if again := d.list()[2]; again.TLSVersions["TLS 1.2"] == 0 || again.Days[0].Messages == 99 {
		t.Error("list shares the table's maps or slices")
	}
}

// The CSV export keeps a spreadsheet from running an identity or address
// as a formula.
func TestDevicesCSVDefusesFormulas(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	writeDevicesCSV(&b, []Device{{Identity: "=HYPERLINK(\"http://x\")", LastClientIP: "+1", Sources: []Source{{Addr: "@a"}},
		TLSVersions: map[string]int{"TLS 1.0": 2, "none": 1}, Legacy: []string{LegacyPlaintext, LegacyTLS}}})
	rows, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("%v %q", err, b.String())
	}
	r := rows[1]
	if r[0] != `'=HYPERLINK("http://x")` || r[2] != "'+1" || r[3] != "'@a" || r[8] != "TLS 1.0=2 none=1" || r[10] != "plaintext tls_below_1.2" {
		t.Errorf("row %q", r)
	}
}
