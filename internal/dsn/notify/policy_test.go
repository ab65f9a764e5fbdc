package notify

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"github.com/postern/postern/internal/blob/memblob"
	"github.com/postern/postern/internal/dsn"
	"github.com/postern/postern/internal/logbuf"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
)

func policyJob(sender string, notify ...[]string) *dsn.Job {
	j := &dsn.Job{DSNJob: postern.DSNJob{V: 1, ID: "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q",
		Envelope: postern.Envelope{Sender: sender, Identity: "scanner", AuthMech: "PLAIN", AuthUser: "scanner"}}}
	for i, n := range notify {
		addr := string(rune('a'+i)) + "@example.com"
		j.Envelope.Recipients = append(j.Envelope.Recipients, postern.Recipient{Addr: addr, Notify: n})
		j.Failed = append(j.Failed, postern.Failure{Recipient: addr, Status: "5.1.1"})
	}
	return j
}

func summary(ns []Notice) []string {
	var out []string
	for _, n := range ns {
		var rs []string
		for _, f := range n.Failures {
			rs = append(rs, f.Recipient)
		}
		who := n.To
		if n.Owner {
			who = "owner:" + who
		}
		out = append(out, who+"="+strings.Join(rs, ","))
	}
	return out
}

func recipients(fs []postern.Failure) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Recipient)
	}
	return out
}

func owners(m map[string]string) func(string) string {
	return func(id string) string { return m[id] }
}

// lanOnly is an allowed_senders list for the identity "scanner".
func lanOnly(id string) func(string) bool {
	if id != "scanner" {
		return nil
	}
	return func(s string) bool { return strings.HasSuffix(s, "@lan.example") }
}

func TestTrusted(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		policy Policy
		env    postern.Envelope
		want   bool
	}{
		{"network identity, no lists at all", Policy{}, postern.Envelope{Identity: "scanner", Sender: "s@lan.example"}, false},
		{"network identity without a list", Policy{AllowedSenders: lanOnly}, postern.Envelope{Identity: "camera", Sender: "s@lan.example"}, false},
		{"authenticated", Policy{}, postern.Envelope{Identity: "app", Sender: "any@where.example", AuthMech: "PLAIN", AuthUser: "app"}, true},
		{"authenticated, user only (older envelope)", Policy{}, postern.Envelope{Identity: "app", Sender: "x@y.example", AuthUser: "app"}, true},
		{"allowed_senders, sender on it", Policy{AllowedSenders: lanOnly}, postern.Envelope{Identity: "scanner", Sender: "s@lan.example"}, true},
		{"allowed_senders, sender no longer on it", Policy{AllowedSenders: lanOnly}, postern.Envelope{Identity: "scanner", Sender: "s@bank.example"}, false},
		{"authenticated, but sender not on its list", Policy{AllowedSenders: lanOnly},
			postern.Envelope{Identity: "scanner", Sender: "s@bank.example", AuthMech: "LOGIN", AuthUser: "scanner"}, false},
		{"no identity", Policy{AllowedSenders: lanOnly}, postern.Envelope{Sender: "s@lan.example"}, false},
	} {
		if got := c.policy.Trusted(&c.env); got != c.want {
			t.Errorf("%s: Trusted = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestPlanTrust covers every sender trust case, with and without an owner,
// for every kind of NOTIFY value: who is told, why the sender is left out,
// and which failures nobody is told about.
func TestPlanTrust(t *testing.T) {
	t.Parallel()
	type trust struct {
		name     string
		env      func(*postern.Envelope)
		trusted  bool
		reason   string // why the sender is left out
		senderIs string
	}
	trusts := []trust{
		{"authenticated", func(e *postern.Envelope) {}, true, "", "s@lan.example"},
		{"allowed_senders", func(e *postern.Envelope) { e.AuthMech, e.AuthUser = "", "" }, true, "", "s@lan.example"},
		{"allowed_senders, sender off the list", func(e *postern.Envelope) { e.AuthMech, e.AuthUser, e.Sender = "", "", "s@bank.example" },
			false, ReasonNotAllowed, "s@bank.example"},
		{"network identity, no allowed_senders", func(e *postern.Envelope) { e.AuthMech, e.AuthUser, e.Identity = "", "", "camera" },
			false, ReasonUntrusted, "s@lan.example"},
	}
	notifies := []struct {
		name   string
		notify []string
		wanted bool // does NOTIFY ask for a failure notice
	}{
		{"none given", nil, true},
		{"FAILURE", []string{"FAILURE"}, true},
		{"SUCCESS,DELAY", []string{"SUCCESS", "DELAY"}, false},
		{"NEVER", []string{"NEVER"}, false},
	}
	for _, tr := range trusts {
		for _, hasOwner := range []bool{true, false} {
			for _, nt := range notifies {
				name := tr.name + "/owner=" + map[bool]string{true: "yes", false: "no"}[hasOwner] + "/NOTIFY=" + nt.name
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					j := policyJob("s@lan.example", nt.notify)
					tr.env(&j.Envelope)
					p := Policy{AllowedSenders: lanOnly}
					if hasOwner {
						p.Owner = owners(map[string]string{"scanner": "ops@example.net", "camera": "ops@example.net"})
					}
					if got := p.Trusted(&j.Envelope); got != tr.trusted {
						t.Fatalf("Trusted = %v, want %v", got, tr.trusted)
					}
					var want []string
					if tr.trusted && nt.wanted {
						want = append(want, tr.senderIs+"=a@example.com")
					}
					if hasOwner {
						want = append(want, "owner:ops@example.net=a@example.com")
					}
					ns, skipped := p.Plan(j, Original{})
					if got := summary(ns); !slices.Equal(got, want) {
						t.Errorf("notices %v, want %v", got, want)
					}
					joined := strings.Join(skipped, "; ")
					if tr.reason != "" && !strings.Contains(joined, tr.reason) {
						t.Errorf("skipped %q, want it to say %q", joined, tr.reason)
					}
					if tr.trusted && !nt.wanted && !strings.Contains(joined, "NOTIFY") {
						t.Errorf("skipped %q, want it to name NOTIFY", joined)
					}
					if tr.trusted && nt.wanted && joined != "" {
						t.Errorf("skipped %q, want nothing", joined)
					}
					var nobody []string
					if len(want) == 0 {
						nobody = []string{"a@example.com"}
					}
					if got := recipients(Unreported(j, ns)); !slices.Equal(got, nobody) {
						t.Errorf("Unreported = %v, want %v", got, nobody)
					}
				})
			}
		}
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	owner := owners(map[string]string{"scanner": "ops@example.net"})
	untrusted := func(j *dsn.Job) *dsn.Job { j.Envelope.AuthMech, j.Envelope.AuthUser = "", ""; return j }
	for _, c := range []struct {
		name    string
		policy  Policy
		job     *dsn.Job
		orig    Original
		want    []string
		skipped string
	}{
		{"sender", Policy{}, policyJob("s@lan.example", nil, nil), Original{}, []string{"s@lan.example=a@example.com,b@example.com"}, ""},
		{"null sender", Policy{Owner: owner}, policyJob("", nil), Original{}, nil, "null sender"},
		{"null sender, untrusted", Policy{Owner: owner}, untrusted(policyJob("", nil)), Original{}, nil, "null sender"},
		{"automatic original", Policy{Owner: owner}, policyJob("s@lan.example", nil), Original{Automatic: true}, nil, "automatic"},
		{"automatic original, untrusted", Policy{Owner: owner}, untrusted(policyJob("s@lan.example", nil)), Original{Automatic: true}, nil, "automatic"},
		{"NOTIFY", Policy{}, policyJob("s@lan.example", []string{"NEVER"}, []string{"SUCCESS"}, []string{"SUCCESS", "FAILURE"}, []string{"DELAY"}),
			Original{}, []string{"s@lan.example=c@example.com"}, "NOTIFY"},
		{"owner copy sees all", Policy{Owner: owner}, policyJob("s@lan.example", []string{"NEVER"}, nil),
			Original{}, []string{"s@lan.example=b@example.com", "owner:ops@example.net=a@example.com,b@example.com"}, "NOTIFY"},
		{"owner only", Policy{Owner: owner, OwnerOnly: true}, policyJob("s@lan.example", nil),
			Original{}, []string{"owner:ops@example.net=a@example.com"}, ""},
		{"owner only, untrusted", Policy{Owner: owner, OwnerOnly: true}, untrusted(policyJob("s@lan.example", nil)),
			Original{}, []string{"owner:ops@example.net=a@example.com"}, ""},
		{"owner only without owner", Policy{Owner: owners(nil), OwnerOnly: true}, policyJob("s@lan.example", nil),
			Original{}, []string{"s@lan.example=a@example.com"}, ""},
		{"owner only without owner, untrusted", Policy{Owner: owners(nil), OwnerOnly: true}, untrusted(policyJob("s@lan.example", nil)),
			Original{}, nil, ReasonUntrusted},
		{"owner is sender", Policy{Owner: func(string) string { return "S@lan.example" }}, policyJob("s@lan.example", nil),
			Original{}, []string{"s@lan.example=a@example.com"}, ""},
		// The owner's notice goes out even when a forged sender names it.
		{"owner is sender, untrusted", Policy{Owner: func(string) string { return "S@lan.example" }}, untrusted(policyJob("s@lan.example", []string{"NEVER"})),
			Original{}, []string{"owner:S@lan.example=a@example.com"}, ReasonUntrusted},
		{"sender not allowed", Policy{Owner: owner, AllowedSenders: lanOnly}, untrusted(policyJob("forged@bank.example", nil)),
			Original{}, []string{"owner:ops@example.net=a@example.com"}, ReasonNotAllowed},
		{"sender not allowed, no owner", Policy{AllowedSenders: lanOnly}, untrusted(policyJob("forged@bank.example", nil)),
			Original{}, nil, ReasonNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns, skipped := c.policy.Plan(c.job, c.orig)
			if got := summary(ns); !slices.Equal(got, c.want) {
				t.Errorf("notices %v, want %v", got, c.want)
			}
			joined := strings.Join(skipped, "; ")
			if (c.skipped == "") != (joined == "") || !strings.Contains(joined, c.skipped) {
				t.Errorf("skipped %q, want ~%q", joined, c.skipped)
			}
		})
	}
}

func TestPlanDelayHonoursNotifyDelay(t *testing.T) {
	t.Parallel()
	j := policyJob("s@lan.example", nil, []string{"FAILURE"}, []string{"DELAY", "FAILURE"}, []string{"NEVER"})
	j.Action = dsn.ActionDelayed
	ns, _ := Policy{}.Plan(j, Original{})
	if got := summary(ns); !slices.Equal(got, []string{"s@lan.example=a@example.com,c@example.com"}) {
		t.Errorf("notices %v", got)
	}
	if got := recipients(Unreported(j, ns)); !slices.Equal(got, []string{"b@example.com", "d@example.com"}) {
		t.Errorf("Unreported = %v", got)
	}
}

func TestIsAutomatic(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		h    map[string]string
		want bool
	}{
		{map[string]string{"Subject": "scan"}, false},
		{map[string]string{"Auto-Submitted": "no"}, false},
		{map[string]string{"Auto-Submitted": "No ; comment"}, false},
		{map[string]string{"Auto-Submitted": "auto-replied"}, true},
		{map[string]string{"Auto-Submitted": "auto-generated"}, true},
		{map[string]string{"Content-Type": `multipart/report; report-type=delivery-status; boundary="x"`}, true},
		{map[string]string{"Content-Type": `Multipart/Report; report-type=disposition-notification; boundary=x`}, true},
		{map[string]string{"Content-Type": `multipart/report; broken="`}, true},
		{map[string]string{"Content-Type": "multipart/mixed; boundary=x"}, false},
	} {
		h := textproto.MIMEHeader{}
		for k, v := range c.h {
			h.Set(k, v)
		}
		if got := IsAutomatic(h); got != c.want {
			t.Errorf("IsAutomatic(%v) = %v, want %v", c.h, got, c.want)
		}
	}
}

// sendFunc is a transport that calls its function.
type sendFunc func(context.Context, *relay.Message) (*relay.Result, error)

func (f sendFunc) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	return f(ctx, m)
}

// A failure from an untrusted sender with no owner to tell is sent to
// nobody, and logged as an email.failed event per recipient.
func TestHandleUntrustedWithoutOwnerLogsTheFailure(t *testing.T) {
	t.Parallel()
	var buf logbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	sent := 0
	tr := sendFunc(func(context.Context, *relay.Message) (*relay.Result, error) {
		sent++
		return nil, errors.New("no notice should be sent")
	})
	h, err := New(Config{Hostname: "gw.example.net", Policy: Policy{Owner: owners(map[string]string{"printer": "ops@example.net"})}},
		memblob.New(), tr, log)
	if err != nil {
		t.Fatal(err)
	}
	j := untrustedJob()
	body, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(t.Context(), postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	t.Log(buf.String())
	if sent != 0 {
		t.Fatalf("%d notices sent", sent)
	}
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["event"] == "email.failed" {
			events = append(events, m)
		}
	}
	if len(events) != 2 {
		t.Fatalf("%d email.failed events, want one per recipient (2)", len(events))
	}
	for i, rcpt := range []string{"a@example.com", "b@example.com"} {
		e := events[i]
		if e["level"] != "WARN" || e["rcpt"] != rcpt || e["msg_id"] != string(j.ID) || e["stage"] != "dsn" ||
			e["identity"] != "scanner" || e["status"] != "5.1.1" || !strings.Contains(e["reason"].(string), ReasonUntrusted) {
			t.Errorf("event %d: %v", i, e)
		}
	}

	// A delay nobody is told about is not a failure event.
	j.Action = dsn.ActionDelayed
	for i := range j.Failed {
		j.Failed[i].Status = "4.4.1"
	}
	if body, err = json.Marshal(j); err != nil {
		t.Fatal(err)
	}
	before := strings.Count(buf.String(), "email.failed")
	if err := h.Handle(t.Context(), postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatalf("Handle delayed: %v", err)
	}
	if n := strings.Count(buf.String(), "email.failed") - before; n != 0 || sent != 0 {
		t.Errorf("delay: %d email.failed events, %d notices", n, sent)
	}
}

func untrustedJob() *dsn.Job {
	j := policyJob("s@lan.example", nil, []string{"NEVER"})
	j.Envelope.AuthMech, j.Envelope.AuthUser = "", ""
	j.Envelope.V = postern.EnvelopeVersion
	return j
}
