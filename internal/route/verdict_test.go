package route

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestMatchVerdicts(t *testing.T) {
	t.Parallel()
	tb := mustNew(t, []Rule{
		{Name: "quarantine", Recipients: []string{"*@corp.example"}, DMARC: []string{"fail"}, Target: Target{Kind: KindDirectory}},
		{Name: "signed", Recipients: []string{"*@corp.example"}, DKIM: []string{"PASS"}, SPF: []string{"pass", "neutral"}, Target: Target{Kind: KindWebhook}},
		{Name: "spf-broken", SPF: []string{"permerror", "temperror"}, Target: Target{Kind: KindReject}},
		{Name: "inbox", Recipients: []string{"*@corp.example"}, Target: Target{Kind: KindWebhook}},
	})
	tests := []struct {
		name string
		auth *Verdicts
		rcpt string
		want string // "" for no match
	}{
		{"dmarc fail is quarantined", &Verdicts{SPF: "fail", DKIM: []string{"none"}, DMARC: "fail"}, "a@corp.example", "quarantine"},
		{"verdict case does not matter", &Verdicts{SPF: "fail", DKIM: []string{"none"}, DMARC: "FAIL"}, "a@corp.example", "quarantine"},
		{"quarantine is for its recipients only", &Verdicts{SPF: "pass", DMARC: "fail"}, "a@other.example", ""},
		{"every verdict condition must hold", &Verdicts{SPF: "softfail", DKIM: []string{"pass"}, DMARC: "pass"}, "a@corp.example", "inbox"},
		{"some dkim signature passing is enough", &Verdicts{SPF: "neutral", DKIM: []string{"fail", "pass"}, DMARC: "pass"}, "a@corp.example", "signed"},
		{"no dkim signature passing", &Verdicts{SPF: "pass", DKIM: []string{"fail", "none"}, DMARC: "pass"}, "a@corp.example", "inbox"},
		{"dkim condition with no signatures listed", &Verdicts{SPF: "pass", DMARC: "pass"}, "a@corp.example", "inbox"},
		{"spf error rejects elsewhere", &Verdicts{SPF: "temperror", DMARC: "none"}, "a@other.example", "spf-broken"},
		{"unknown verdicts match no verdict rule", nil, "a@corp.example", "inbox"},
		{"unknown verdicts elsewhere", nil, "a@other.example", ""},
	}
	for _, tt := range tests {
		r, ok := tb.Match(Meta{Recipient: tt.rcpt, Sender: "x@sender.example", Identity: "mx", Auth: tt.auth})
		got := ""
		if ok {
			got = r.Name
		}
		if got != tt.want {
			t.Errorf("%s: Match = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestNewValidatesVerdicts(t *testing.T) {
	t.Parallel()
	_, err := New([]Rule{
		{Name: "a", SPF: []string{"pass", "policy"}, DKIM: []string{"policy", "bogus"}, DMARC: []string{"softfail"}, Target: Target{Kind: KindWebhook}},
	})
	if err == nil {
		t.Fatal("New accepted unknown verdict names")
	}
	for _, want := range []string{`spf[1] "policy"`, `dkim[1] "bogus"`, `dmarc[0] "softfail"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), `dkim[0]`) {
		t.Errorf("error %q refuses policy, a DKIM result", err)
	}
}

// Before the parse stage the verdicts are unknown: a verdict rule may take
// a recipient, at RCPT and at the end of DATA, as header rules do at RCPT.
func TestAcceptsWithVerdictRules(t *testing.T) {
	t.Parallel()
	quarantineFirst := []Rule{
		{Name: "quarantine", Recipients: []string{"*@corp.example"}, DMARC: []string{"fail"}, Target: Target{Kind: KindDirectory}},
		{Name: "sales", Recipients: []string{"sales@corp.example"}, Target: Target{Kind: KindWebhook}},
	}
	tb := mustNew(t, quarantineFirst)
	if !tb.Accepts("other@corp.example", "x@y", "mx") {
		t.Error("Accepts refused a recipient only the verdict rule takes")
	}
	if !tb.AcceptsMessage("other@corp.example", "x@y", "mx", headers(nil)) {
		t.Error("AcceptsMessage refused a recipient only the verdict rule takes")
	}
	if tb.Accepts("a@else.example", "x@y", "mx") {
		t.Error("Accepts took a recipient no rule takes")
	}

	rejectSpoofed := []Rule{
		{Name: "spoofed", DMARC: []string{"fail"}, Target: Target{Kind: KindReject}},
		{Name: "sales", Recipients: []string{"sales@corp.example"}, Target: Target{Kind: KindWebhook}},
	}
	tb = mustNew(t, rejectSpoofed)
	if !tb.Accepts("sales@corp.example", "x@y", "mx") || !tb.AcceptsMessage("sales@corp.example", "x@y", "mx", nil) {
		t.Error("a reject verdict rule refused, before the verdicts are known, what a later rule takes")
	}
	if tb.Accepts("a@corp.example", "x@y", "mx") {
		t.Error("a reject verdict rule made Accepts take a recipient")
	}

	// With WithInternet, verdict rules are for internet identities' mail
	// only: a trusted device is refused at RCPT what only they could take,
	// and Match skips them whatever the verdicts.
	tb = mustNew(t, quarantineFirst)
	tb2, err := New(quarantineFirst, WithInternet(func(id string) bool { return id == "mx" }))
	if err != nil {
		t.Fatal(err)
	}
	if !tb2.Accepts("other@corp.example", "x@y", "mx") {
		t.Error("WithInternet: the internet identity is refused")
	}
	if tb2.Accepts("other@corp.example", "x@y", "printer") || tb2.AcceptsMessage("other@corp.example", "x@y", "printer", headers(nil)) {
		t.Error("WithInternet: a trusted identity is accepted on a verdict rule")
	}
	if !tb.Accepts("other@corp.example", "x@y", "printer") {
		t.Error("without WithInternet every identity may have verdicts")
	}
	fail := &Verdicts{SPF: "fail", DMARC: "fail"}
	if r, ok := tb2.Match(Meta{Recipient: "sales@corp.example", Identity: "printer", Auth: fail}); !ok || r.Name != "sales" {
		t.Errorf("WithInternet: Match for a trusted identity = %v %v, want sales", r, ok)
	}
	if r, ok := tb2.Match(Meta{Recipient: "sales@corp.example", Identity: "mx", Auth: fail}); !ok || r.Name != "quarantine" {
		t.Errorf("WithInternet: Match for the internet identity = %v %v, want quarantine", r, ok)
	}
}

// TestVerdictsNeverRefuseEarly checks on generated tables that the gateway
// never refuses (at RCPT or at the end of DATA) a recipient that the parse
// stage would route for some verdicts, or for none (trusted mail); and that
// without verdict rules AcceptsMessage is still exactly Match's decision.
func TestVerdictsNeverRefuseEarly(t *testing.T) {
	t.Parallel()
	rcptPats := [][]string{nil, {"a@x"}, {"*@x"}}
	hdrConds := []map[string]string{nil, nil, {"Subject": "alarm*"}}
	spf := [][]string{nil, nil, {"pass"}, {"fail", "softfail"}}
	dkim := [][]string{nil, nil, {"pass"}, {"fail", "none"}}
	dmarc := [][]string{nil, nil, {"fail"}, {"pass", "none"}}
	kinds := []Kind{KindWebhook, KindRelay, KindReject, KindDirectory, KindReject}
	results := []string{"pass", "fail", "softfail", "none"}
	var allVerdicts []*Verdicts
	allVerdicts = append(allVerdicts, nil)
	for _, s := range results {
		for _, d := range results {
			for _, m := range []string{"pass", "fail", "none"} {
				allVerdicts = append(allVerdicts, &Verdicts{SPF: s, DKIM: []string{d}, DMARC: m}, &Verdicts{SPF: s, DKIM: []string{d, "pass"}, DMARC: m})
			}
		}
	}
	headerSets := []func(string) []string{nil, headers(map[string][]string{"Subject": {"alarm 1"}}), headers(map[string][]string{"Subject": {"hi"}})}
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 500; n++ {
		rules := make([]Rule, rng.IntN(5))
		verdictRules := false
		for i := range rules {
			rules[i] = Rule{
				Name:       fmt.Sprintf("r%d", i),
				Recipients: rcptPats[rng.IntN(len(rcptPats))],
				Headers:    hdrConds[rng.IntN(len(hdrConds))],
				SPF:        spf[rng.IntN(len(spf))],
				DKIM:       dkim[rng.IntN(len(dkim))],
				DMARC:      dmarc[rng.IntN(len(dmarc))],
				Target:     Target{Kind: kinds[rng.IntN(len(kinds))]},
			}
			verdictRules = verdictRules || len(rules[i].SPF)+len(rules[i].DKIM)+len(rules[i].DMARC) > 0
		}
		tb := mustNew(t, rules)
		for _, rcpt := range []string{"a@x", "b@x", "c@y"} {
			accepts := tb.Accepts(rcpt, "dev@x", "mx")
			for hi, h := range headerSets {
				msg := tb.AcceptsMessage(rcpt, "dev@x", "mx", h)
				if !accepts && msg {
					t.Fatalf("table %d %+v: Accepts(%q) refuses but AcceptsMessage(headers %d) accepts", n, rules, rcpt, hi)
				}
				routed := false
				for _, v := range allVerdicts {
					r, ok := tb.Match(Meta{Recipient: rcpt, Sender: "dev@x", Identity: "mx", Header: h, Auth: v})
					routed = routed || ok && r.Target.Kind != KindReject
				}
				if routed && !msg {
					t.Fatalf("table %d %+v: AcceptsMessage(%q, headers %d) refuses what the parse stage routes for some verdicts", n, rules, rcpt, hi)
				}
				if !verdictRules && msg != matchDecides(tb, rcpt, "dev@x", "mx", h) {
					t.Fatalf("table %d %+v: no verdict rules, yet AcceptsMessage differs from Match", n, rules)
				}
			}
		}
	}
}
