package notify

import (
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"github.com/postern/postern/internal/dsn"
	"github.com/postern/postern/internal/postern"
)

func policyJob(sender string, notify ...[]string) *dsn.Job {
	j := &dsn.Job{DSNJob: postern.DSNJob{V: 1, ID: "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q",
		Envelope: postern.Envelope{Sender: sender, Identity: "scanner"}}}
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

func TestPlan(t *testing.T) {
	t.Parallel()
	owner := func(id string) string {
		if id == "scanner" {
			return "ops@example.net"
		}
		return ""
	}
	onlyLan := func(_, sender string) bool { return strings.HasSuffix(sender, "@lan.example") }
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
		{"automatic original", Policy{Owner: owner}, policyJob("s@lan.example", nil), Original{Automatic: true}, nil, "automatic"},
		{"NOTIFY", Policy{}, policyJob("s@lan.example", []string{"NEVER"}, []string{"SUCCESS"}, []string{"SUCCESS", "FAILURE"}, []string{"DELAY"}),
			Original{}, []string{"s@lan.example=c@example.com"}, "NOTIFY"},
		{"owner copy sees all", Policy{Owner: owner}, policyJob("s@lan.example", []string{"NEVER"}, nil),
			Original{}, []string{"s@lan.example=b@example.com", "owner:ops@example.net=a@example.com,b@example.com"}, "NOTIFY"},
		{"owner only", Policy{Owner: owner, OwnerOnly: true}, policyJob("s@lan.example", nil),
			Original{}, []string{"owner:ops@example.net=a@example.com"}, ""},
		{"owner only without owner", Policy{Owner: func(string) string { return "" }, OwnerOnly: true}, policyJob("s@lan.example", nil),
			Original{}, []string{"s@lan.example=a@example.com"}, ""},
		{"owner is sender", Policy{Owner: func(string) string { return "S@lan.example" }}, policyJob("s@lan.example", nil),
			Original{}, []string{"s@lan.example=a@example.com"}, ""},
		{"sender not allowed", Policy{Owner: owner, SenderAllowed: onlyLan}, policyJob("forged@bank.example", nil),
			Original{}, []string{"owner:ops@example.net=a@example.com"}, "not allowed"},
		{"sender not allowed, no owner", Policy{SenderAllowed: onlyLan}, policyJob("forged@bank.example", nil),
			Original{}, nil, "not allowed"},
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
