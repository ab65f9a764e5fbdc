package dsn

import (
	"bytes"
	"fmt"
	"mime"
	"strings"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"
	enmimedsn "github.com/jhillyerd/enmime/v2/dsn"
)

var (
	testDate    = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	testArrival = time.Date(2025, 3, 4, 9, 58, 30, 0, time.UTC)
	testLast    = time.Date(2025, 3, 4, 9, 59, 45, 0, time.UTC)
)

const testOriginal = "Received: from scanner (scanner [192.0.2.7])\r\n" +
	"\tby gw.example.net with ESMTP id 01JNKQ3V8Z7Y6X5W4V3T2S1R0Q\r\n" +
	"From: Scanner <scanner@lan.example>\r\n" +
	"To: invoices@example.com\r\n" +
	"Subject: scan 0042\r\n" +
	"Message-ID: <scan-0042@lan.example>\r\n" +
	"Date: Tue, 04 Mar 2025 09:58:29 +0000\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=us-ascii\r\n" +
	"\r\n" +
	"SECRET BODY LINE that must not travel with RET=HDRS\r\n"

func baseReport() *Report {
	return &Report{
		ReportingMTA:    "gw.example.net",
		Domain:          "example.net",
		To:              "scanner@lan.example",
		ID:              "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q",
		Date:            testDate,
		ArrivalDate:     testArrival,
		EnvID:           "scan-0042-env",
		ReceivedFromMTA: "scanner",
		Return:          ReturnHeaders,
		Original:        []byte(testOriginal),
		Recipients: []Recipient{{
			Final:       "invoices@example.com",
			Original:    "rfc822;Invoices@Example.com",
			Action:      ActionFailed,
			Status:      "5.1.1",
			RemoteMTA:   "smtp.example.com",
			Diagnostic:  "smtp; 550 5.1.1 <invoices@example.com>: Recipient address rejected: User unknown",
			LastAttempt: testLast,
		}},
	}
}

// parsed is a built notice read back the way a mail client would.
type parsed struct {
	env    *enmime.Envelope
	report *enmimedsn.Report
	parts  map[string]*enmime.Part // by content type
}

func parse(t *testing.T, m *Message) parsed {
	t.Helper()
	checkWire(t, m.Bytes)
	env, err := enmime.ReadEnvelope(bytes.NewReader(m.Bytes))
	if err != nil {
		t.Fatalf("enmime.ReadEnvelope: %v", err)
	}
	for _, e := range env.Errors {
		t.Errorf("enmime error: %v", e)
	}
	rep, err := enmimedsn.ParseReport(env.Root)
	if err != nil {
		t.Fatalf("dsn.ParseReport: %v", err)
	}
	if rep == nil {
		t.Fatalf("not a multipart/report: %s", env.Root.ContentType)
	}
	p := parsed{env: env, report: rep, parts: map[string]*enmime.Part{}}
	for c := env.Root.FirstChild; c != nil; c = c.NextSibling {
		p.parts[c.ContentType] = c
	}
	return p
}

// checkWire fails on bare LF, bare CR or a line over 998 octets.
func checkWire(t *testing.T, b []byte) {
	t.Helper()
	for i, line := range bytes.Split(b, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d octets", i+1, len(line))
		}
	}
}

func wantField(t *testing.T, what string, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func TestBuildOneRecipientHeaders(t *testing.T) {
	t.Parallel()
	m, err := Build(baseReport())
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if m.SMTPUTF8 || m.Returned != ReturnHeaders {
		t.Errorf("SMTPUTF8, Returned = %v, %s; want false, HDRS", m.SMTPUTF8, m.Returned)
	}
	p := parse(t, m)

	h := p.env.Root.Header
	wantField(t, "From", h.Get("From"), "Mail Delivery System <MAILER-DAEMON@example.net>")
	wantField(t, "To", h.Get("To"), "<scanner@lan.example>")
	wantField(t, "Subject", h.Get("Subject"), "Undelivered Mail Returned to Sender")
	wantField(t, "Date", h.Get("Date"), "Tue, 04 Mar 2025 10:00:00 +0000")
	wantField(t, "Auto-Submitted", h.Get("Auto-Submitted"), "auto-replied")
	wantField(t, "In-Reply-To", h.Get("In-Reply-To"), "<scan-0042@lan.example>")
	wantField(t, "References", h.Get("References"), "<scan-0042@lan.example>")
	wantField(t, "Message-ID", h.Get("Message-ID"), "<"+m.MessageID+">")
	if !strings.HasPrefix(m.MessageID, "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q.dsn.") || !strings.HasSuffix(m.MessageID, "@gw.example.net") {
		t.Errorf("MessageID = %q", m.MessageID)
	}
	wantField(t, "root content type", p.env.Root.ContentType, "multipart/report")
	_, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	wantField(t, "report-type", params["report-type"], "delivery-status")

	ds := p.report.DeliveryStatus
	if len(ds.MessageDSNs) != 1 || len(ds.RecipientDSNs) != 1 {
		t.Fatalf("%d per-message and %d per-recipient blocks, want 1 and 1", len(ds.MessageDSNs), len(ds.RecipientDSNs))
	}
	pm := ds.MessageDSNs[0]
	wantField(t, "Reporting-MTA", pm.Get("Reporting-MTA"), "dns; gw.example.net")
	wantField(t, "X-Postern-Id", pm.Get("X-Postern-Id"), "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q")
	wantField(t, "Original-Envelope-Id", pm.Get("Original-Envelope-Id"), "scan-0042-env")
	wantField(t, "Received-From-MTA", pm.Get("Received-From-MTA"), "dns; scanner")
	wantField(t, "Arrival-Date", pm.Get("Arrival-Date"), "Tue, 04 Mar 2025 09:58:30 +0000")

	pr := ds.RecipientDSNs[0]
	wantField(t, "Original-Recipient", pr.Get("Original-Recipient"), "rfc822; Invoices@Example.com")
	wantField(t, "Final-Recipient", pr.Get("Final-Recipient"), "rfc822; invoices@example.com")
	wantField(t, "Action", pr.Get("Action"), "failed")
	wantField(t, "Status", pr.Get("Status"), "5.1.1")
	wantField(t, "Remote-MTA", pr.Get("Remote-MTA"), "dns; smtp.example.com")
	wantField(t, "Diagnostic-Code", pr.Get("Diagnostic-Code"),
		"smtp; 550 5.1.1 <invoices@example.com>: Recipient address rejected: User unknown")
	wantField(t, "Last-Attempt-Date", pr.Get("Last-Attempt-Date"), "Tue, 04 Mar 2025 09:59:45 +0000")
	if v := pr.Get("Will-Retry-Until"); v != "" {
		t.Errorf("Will-Retry-Until = %q on a failed recipient", v)
	}
	if !enmimedsn.IsFailed(pr) {
		t.Error("dsn.IsFailed = false")
	}

	text := p.report.Explanation.Text
	for _, want := range []string{"gw.example.net", "<invoices@example.com>", "User unknown", "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q", "headers of your message are attached"} {
		if !strings.Contains(text, want) {
			t.Errorf("human text lacks %q:\n%s", want, text)
		}
	}

	hp := p.parts["text/rfc822-headers"]
	if hp == nil {
		t.Fatalf("no text/rfc822-headers part; parts: %v", keys(p.parts))
	}
	wantHdr := testOriginal[:strings.Index(testOriginal, "\r\n\r\n")+2]
	if got := string(hp.Content); got != wantHdr {
		t.Errorf("returned headers:\n%q\nwant\n%q", got, wantHdr)
	}
	if bytes.Contains(m.Bytes, []byte("SECRET BODY")) {
		t.Error("RET=HDRS notice carries the original body")
	}
	if len(p.parts) != 3 {
		t.Errorf("parts %v, want 3", keys(p.parts))
	}
}

func TestBuildSeveralRecipientsFull(t *testing.T) {
	t.Parallel()
	r := baseReport()
	r.Return = ReturnFull
	r.EnvID = ""
	r.Recipients = append(r.Recipients,
		Recipient{
			Final:      "ap@example.com",
			Action:     ActionFailed,
			Status:     "4.4.1",
			RemoteMTA:  "smtp.example.com",
			Diagnostic: "X-Postern; connection refused",
		},
		Recipient{
			Final:      "archive@example.org",
			Original:   "rfc822;archive@example.org",
			Action:     ActionFailed,
			Status:     "5.2.2",
			Diagnostic: "smtp; 552 5.2.2 Mailbox full",
		})
	m, err := Build(r)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if m.Returned != ReturnFull {
		t.Errorf("Returned = %s, want FULL", m.Returned)
	}
	p := parse(t, m)
	ds := p.report.DeliveryStatus
	if len(ds.RecipientDSNs) != 3 {
		t.Fatalf("%d recipient blocks, want 3", len(ds.RecipientDSNs))
	}
	if v := ds.MessageDSNs[0].Get("Original-Envelope-Id"); v != "" {
		t.Errorf("Original-Envelope-Id = %q without ENVID", v)
	}
	want := []struct{ final, orig, status, remote, diag string }{
		{"rfc822; invoices@example.com", "rfc822; Invoices@Example.com", "5.1.1", "dns; smtp.example.com", "smtp; 550 5.1.1 <invoices@example.com>: Recipient address rejected: User unknown"},
		{"rfc822; ap@example.com", "", "4.4.1", "dns; smtp.example.com", "X-Postern; connection refused"},
		{"rfc822; archive@example.org", "rfc822; archive@example.org", "5.2.2", "", "smtp; 552 5.2.2 Mailbox full"},
	}
	for i, w := range want {
		pr := ds.RecipientDSNs[i]
		wantField(t, fmt.Sprint(i, " Final-Recipient"), pr.Get("Final-Recipient"), w.final)
		wantField(t, fmt.Sprint(i, " Original-Recipient"), pr.Get("Original-Recipient"), w.orig)
		wantField(t, fmt.Sprint(i, " Action"), pr.Get("Action"), "failed")
		wantField(t, fmt.Sprint(i, " Status"), pr.Get("Status"), w.status)
		wantField(t, fmt.Sprint(i, " Remote-MTA"), pr.Get("Remote-MTA"), w.remote)
		wantField(t, fmt.Sprint(i, " Diagnostic-Code"), pr.Get("Diagnostic-Code"), w.diag)
	}
	if got := string(p.report.OriginalMessage); got != testOriginal {
		t.Errorf("returned message:\n%q\nwant\n%q", got, testOriginal)
	}
	if p.parts["message/rfc822"] == nil || p.parts["text/rfc822-headers"] != nil {
		t.Errorf("parts %v, want message/rfc822 and no headers part", keys(p.parts))
	}
	for _, a := range []string{"<invoices@example.com>", "<ap@example.com>", "<archive@example.org>", "Mailbox full", "Your message is attached"} {
		if !strings.Contains(p.report.Explanation.Text, a) {
			t.Errorf("human text lacks %q", a)
		}
	}
}

func TestBuildUTF8Addresses(t *testing.T) {
	t.Parallel()
	orig := "From: José <josé@bücher.example>\r\nTo: pelé@exämple.org\r\nSubject: Grüße\r\nMessage-ID: <u1@bücher.example>\r\n\r\nHallo\r\n"
	r := baseReport()
	r.To = "josé@bücher.example"
	r.Domain = ""
	r.Original = []byte(orig)
	r.Recipients = []Recipient{
		{Final: "pelé@exämple.org", Original: "utf-8;pelé+tag@exämple.org", Action: ActionFailed, Status: "5.1.1", Diagnostic: "smtp; 550 5.1.1 unknown"},
		{Final: "ascii@example.org", Action: ActionFailed, Status: "5.7.1", Diagnostic: "smtp; 554 5.7.1 refused"},
	}
	for _, ret := range []Return{ReturnHeaders, ReturnFull} {
		t.Run(string(ret), func(t *testing.T) {
			t.Parallel()
			r := *r
			r.Return = ret
			m, err := Build(&r)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if !m.SMTPUTF8 {
				t.Error("SMTPUTF8 = false for a UTF-8 notice recipient")
			}
			p := parse(t, m)
			wantField(t, "To", p.env.Root.Header.Get("To"), "<josé@bücher.example>")
			wantField(t, "From", p.env.Root.Header.Get("From"), "Mail Delivery System <MAILER-DAEMON@gw.example.net>")
			if p.parts["message/global-delivery-status"] == nil {
				t.Fatalf("no message/global-delivery-status part; parts %v", keys(p.parts))
			}
			ds := p.report.DeliveryStatus
			if len(ds.RecipientDSNs) != 2 {
				t.Fatalf("%d recipient blocks, want 2", len(ds.RecipientDSNs))
			}
			wantField(t, "Final-Recipient", ds.RecipientDSNs[0].Get("Final-Recipient"), "utf-8; pelé@exämple.org")
			wantField(t, "Original-Recipient", ds.RecipientDSNs[0].Get("Original-Recipient"), `utf-8; pelé\x{2B}tag@exämple.org`)
			wantField(t, "Final-Recipient 2", ds.RecipientDSNs[1].Get("Final-Recipient"), "rfc822; ascii@example.org")
			if !strings.Contains(p.report.Explanation.Text, "<pelé@exämple.org>") {
				t.Errorf("human text lacks the UTF-8 address:\n%s", p.report.Explanation.Text)
			}
			switch ret {
			case ReturnHeaders:
				hp := p.parts["message/global-headers"]
				if hp == nil {
					t.Fatalf("no message/global-headers part; parts %v", keys(p.parts))
				}
				wantField(t, "returned headers", string(hp.Content), orig[:strings.Index(orig, "\r\n\r\n")+2])
			case ReturnFull:
				gp := p.parts["message/global"]
				if gp == nil {
					t.Fatalf("no message/global part; parts %v", keys(p.parts))
				}
				wantField(t, "returned message", string(gp.Content), orig)
			}
		})
	}
}

func TestBuildDelayed(t *testing.T) {
	t.Parallel()
	until := testDate.Add(20 * time.Hour)
	r := baseReport()
	r.Recipients = []Recipient{{
		Final: "invoices@example.com", Action: ActionDelayed, Status: "4.2.2",
		RemoteMTA: "smtp.example.com", Diagnostic: "smtp; 452 4.2.2 Mailbox full", LastAttempt: testLast, WillRetryUntil: until,
	}}
	m, err := Build(r)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	p := parse(t, m)
	wantField(t, "Subject", p.env.Root.Header.Get("Subject"), "Delayed Mail (still being retried)")
	pr := p.report.DeliveryStatus.RecipientDSNs[0]
	wantField(t, "Action", pr.Get("Action"), "delayed")
	wantField(t, "Status", pr.Get("Status"), "4.2.2")
	wantField(t, "Will-Retry-Until", pr.Get("Will-Retry-Until"), "Wed, 05 Mar 2025 06:00:00 +0000")
	if enmimedsn.IsFailed(pr) {
		t.Error("dsn.IsFailed = true for a delay notice")
	}
	if !strings.Contains(p.report.Explanation.Text, "not yet been delivered") {
		t.Errorf("human text:\n%s", p.report.Explanation.Text)
	}
}

func TestBuildFullFallsBackToHeaders(t *testing.T) {
	t.Parallel()
	r := baseReport()
	r.Return = ReturnFull
	r.Original = []byte("Subject: long\nMessage-ID: <l@x>\n\n" + strings.Repeat("x", 1500) + "\n")
	m, err := Build(r)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if m.Returned != ReturnHeaders {
		t.Errorf("Returned = %s, want HDRS", m.Returned)
	}
	p := parse(t, m)
	hp := p.parts["text/rfc822-headers"]
	if hp == nil {
		t.Fatalf("no headers part; parts %v", keys(p.parts))
	}
	wantField(t, "returned headers", string(hp.Content), "Subject: long\r\nMessage-ID: <l@x>\r\n")
	if !strings.Contains(p.report.Explanation.Text, "could not be attached in full") {
		t.Errorf("human text does not say the message was cut:\n%s", p.report.Explanation.Text)
	}
}

func TestBuildWithoutOriginal(t *testing.T) {
	t.Parallel()
	for _, r := range []*Report{
		func() *Report { r := baseReport(); r.Original = nil; return r }(),
		func() *Report { r := baseReport(); r.Return = ReturnNone; return r }(),
	} {
		m, err := Build(r)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		p := parse(t, m)
		if len(p.parts) != 2 || m.Returned != ReturnNone {
			t.Errorf("parts %v, Returned %s; want 2 parts, NONE", keys(p.parts), m.Returned)
		}
	}
}

func TestBuildCleansUntrustedText(t *testing.T) {
	t.Parallel()
	r := baseReport()
	long := strings.Repeat("word ", 120)
	r.ReceivedFromMTA = "evil\r\nBcc: victim@example.org"
	r.Recipients[0].Diagnostic = "smtp; 550 5.1.1 no\r\nBcc: victim@example.org\x00 " + long + "\xff"
	m, err := Build(r)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	p := parse(t, m)
	if v := p.env.Root.Header.Get("Bcc"); v != "" {
		t.Errorf("injected Bcc header: %q", v)
	}
	pr := p.report.DeliveryStatus.RecipientDSNs[0]
	if v := pr.Get("Bcc"); v != "" {
		t.Errorf("injected Bcc field: %q", v)
	}
	want := "smtp; 550 5.1.1 no Bcc: victim@example.org " + strings.TrimSpace(long) + " ?"
	wantField(t, "Diagnostic-Code", pr.Get("Diagnostic-Code"), want)
	wantField(t, "Received-From-MTA", p.report.DeliveryStatus.MessageDSNs[0].Get("Received-From-MTA"), "dns; evil Bcc: victim@example.org")
	// The diagnostic was folded: no status line is longer than 78 octets.
	status := p.parts["message/delivery-status"]
	for _, line := range strings.Split(string(status.Content), "\n") {
		if len(strings.TrimRight(line, "\r")) > foldAt {
			t.Errorf("unfolded line of %d octets: %q", len(line), line)
		}
	}
}

func TestBuildDeterministic(t *testing.T) {
	t.Parallel()
	a, err := Build(baseReport())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(baseReport())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes, b.Bytes) {
		t.Error("two builds of the same report differ")
	}
	r := baseReport()
	r.To = "owner@example.net"
	c, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	if c.MessageID == a.MessageID {
		t.Error("notices to different addresses share a Message-ID")
	}
}

func TestBuildRejects(t *testing.T) {
	t.Parallel()
	for name, mut := range map[string]func(*Report){
		"header injection in To":  func(r *Report) { r.To = "a@b.example\r\nBcc: c@d.example" },
		"null notice recipient":   func(r *Report) { r.To = "" },
		"no recipients":           func(r *Report) { r.Recipients = nil },
		"status class vs action":  func(r *Report) { r.Recipients[0].Status = "2.0.0" },
		"delayed with 5xx":        func(r *Report) { r.Recipients[0].Action = ActionDelayed },
		"unknown action":          func(r *Report) { r.Recipients[0].Action = "bounced" },
		"malformed status":        func(r *Report) { r.Recipients[0].Status = "5.1" },
		"bad reporting MTA":       func(r *Report) { r.ReportingMTA = "gw example" },
		"bad remote MTA":          func(r *Report) { r.Recipients[0].RemoteMTA = "x\r\ny" },
		"ORCPT without type":      func(r *Report) { r.Recipients[0].Original = "a@b.example" },
		"zero date":               func(r *Report) { r.Date = time.Time{} },
		"unknown return":          func(r *Report) { r.Return = "BODY" },
		"message id with bracket": func(r *Report) { r.MessageID = "<x@y>" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := baseReport()
			mut(r)
			if _, err := Build(r); err == nil {
				t.Fatal("Build = nil error")
			}
		})
	}
}

func TestUTF8AddrEncoding(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in      string
		unitext bool
		want    string
	}{
		{"a+b=c@x.example", true, `a\x{2B}b\x{3D}c@x.example`},
		{"pelé@exämple.org", false, `pel\x{E9}@ex\x{E4}mple.org`},
		{"pelé@exämple.org", true, "pelé@exämple.org"},
		{`a\b@x`, true, `a\x{5C}b@x`},
	} {
		if got := utf8Addr(c.in, c.unitext); got != c.want {
			t.Errorf("utf8Addr(%q, %v) = %q, want %q", c.in, c.unitext, got, c.want)
		}
	}
}

func TestToCRLF(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"a\nb\n", "a\r\nb\r\n", true},
		{"a\r\nb", "a\r\nb\r\n", true},
		{"a\rb\r\n", "a\r\nb\r\n", true},
		{"a\r\r\nb", "a\r\nb\r\n", true},
		{"a\r", "a\r\n", true},
		{"", "", true},
		{"a\x00b\r\n", "a\x00b\r\n", false},
		{strings.Repeat("y", 999) + "\n", strings.Repeat("y", 999) + "\r\n", false},
		{strings.Repeat("y", 998) + "\n", strings.Repeat("y", 998) + "\r\n", true},
	} {
		got, ok := toCRLF([]byte(c.in))
		if string(got) != c.want || ok != c.ok {
			t.Errorf("toCRLF(%.20q) = %.20q, %v; want %.20q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func keys(m map[string]*enmime.Part) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
