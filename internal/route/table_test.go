package route

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func mustNew(t *testing.T, rules []Rule) *Table {
	t.Helper()
	tb, err := New(rules)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tb
}

func headers(h map[string][]string) func(string) []string {
	return func(name string) []string {
		for k, v := range h {
			if strings.EqualFold(k, name) {
				return v
			}
		}
		return nil
	}
}

func TestMatchFirstRuleWins(t *testing.T) {
	t.Parallel()
	tb := mustNew(t, []Rule{
		{Name: "alarms", Recipients: []string{"alarm@*"}, Headers: map[string]string{"X-Priority": "1*"}, Target: Target{Kind: KindWebhook}},
		{Name: "blocked", Senders: []string{"*@spam.example"}, Target: Target{Kind: KindReject}},
		{Name: "scans", Recipients: []string{"scan@example.com", "scan+*@example.com"}, Identities: []string{"printer-*"}, Target: Target{Kind: KindDirectory}},
		{Name: "bounces", Senders: []string{"<>"}, Target: Target{Kind: KindWebhook}},
		{Name: "outbound", Recipients: []string{"*@example.com"}, Target: Target{Kind: KindRelay}},
	})
	urgent := headers(map[string][]string{"x-priority": {"1 (Highest)"}})
	tests := []struct {
		name string
		m    Meta
		want string // "" = no match
	}{
		{"header rule matches", Meta{Recipient: "alarm@example.com", Sender: "panel@example.com", Header: urgent}, "alarms"},
		{"header absent falls through", Meta{Recipient: "alarm@example.com", Sender: "panel@example.com", Header: headers(nil)}, "outbound"},
		{"no headers before DATA", Meta{Recipient: "alarm@example.com", Sender: "panel@example.com"}, "outbound"},
		{"earlier reject beats later accept", Meta{Recipient: "scan@example.com", Sender: "x@SPAM.example", Identity: "printer-1"}, "blocked"},
		{"identity condition", Meta{Recipient: "scan+duplex@example.com", Sender: "p@example.com", Identity: "Printer-7"}, "scans"},
		{"identity mismatch falls through", Meta{Recipient: "scan@example.com", Sender: "p@example.com", Identity: "camera-1"}, "outbound"},
		{"null sender", Meta{Recipient: "someone@elsewhere.example", Sender: ""}, "bounces"},
		{"nothing matches", Meta{Recipient: "someone@elsewhere.example", Sender: "a@b.example"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, ok := tb.Match(tt.m)
			if tt.want == "" {
				if ok {
					t.Fatalf("Match = %q, want no match", r.Name)
				}
				return
			}
			if !ok || r.Name != tt.want {
				t.Fatalf("Match = %v %v, want %q", r, ok, tt.want)
			}
		})
	}
}

func TestMatchAllHeaderConditions(t *testing.T) {
	t.Parallel()
	tb := mustNew(t, []Rule{
		{Name: "both", Headers: map[string]string{"Subject": "*alarm*", "X-Site": "north"}, Target: Target{Kind: KindWebhook}},
	})
	tests := []struct {
		h    map[string][]string
		want bool
	}{
		{map[string][]string{"Subject": {"Fire ALARM"}, "X-Site": {"North"}}, true},
		{map[string][]string{"Subject": {"Fire ALARM"}}, false},
		{map[string][]string{"Subject": {"hello", "alarm 2"}, "X-Site": {"south", "north"}}, true},
		{map[string][]string{"Subject": {"hello"}, "X-Site": {"north"}}, false},
	}
	for i, tt := range tests {
		if _, ok := tb.Match(Meta{Header: headers(tt.h)}); ok != tt.want {
			t.Errorf("case %d: Match = %v, want %v", i, ok, tt.want)
		}
	}
}

func TestAccepts(t *testing.T) {
	t.Parallel()
	webhook := Target{Kind: KindWebhook}
	reject := Target{Kind: KindReject}
	tests := []struct {
		name  string
		rules []Rule
		rcpt  string
		want  bool
	}{
		{"empty table refuses", nil, "a@x", false},
		{"catch-all accepts", []Rule{{Name: "all", Target: webhook}}, "a@x", true},
		{"no envelope match refuses", []Rule{{Name: "r", Recipients: []string{"b@x"}, Target: webhook}}, "a@x", false},
		{"first envelope match is reject", []Rule{
			{Name: "no", Recipients: []string{"a@*"}, Target: reject},
			{Name: "all", Target: webhook},
		}, "a@x", false},
		{"reject for someone else does not apply", []Rule{
			{Name: "no", Recipients: []string{"b@*"}, Target: reject},
			{Name: "all", Target: webhook},
		}, "a@x", true},
		{"header rule may take it before a reject", []Rule{
			{Name: "maybe", Headers: map[string]string{"Subject": "ok"}, Target: webhook},
			{Name: "no", Target: reject},
		}, "a@x", true},
		{"header reject may not match, later rule accepts", []Rule{
			{Name: "maybe-no", Headers: map[string]string{"Subject": "spam"}, Target: reject},
			{Name: "all", Target: Target{Kind: KindRelay}},
		}, "a@x", true},
		{"header reject then nothing", []Rule{
			{Name: "maybe-no", Headers: map[string]string{"Subject": "spam"}, Target: reject},
		}, "a@x", false},
		{"header rule for another recipient does not count", []Rule{
			{Name: "maybe", Recipients: []string{"b@x"}, Headers: map[string]string{"Subject": "ok"}, Target: webhook},
			{Name: "no", Target: reject},
		}, "a@x", false},
		{"accepting rule after definite reject is unreachable", []Rule{
			{Name: "no", Target: reject},
			{Name: "maybe", Headers: map[string]string{"Subject": "ok"}, Target: webhook},
		}, "a@x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := mustNew(t, tt.rules)
			if got := tb.Accepts(tt.rcpt, "dev@example.com", "printer"); got != tt.want {
				t.Fatalf("Accepts = %v, want %v", got, tt.want)
			}
		})
	}
}

// Accepts must agree with Match whenever no rule has header conditions.
func TestAcceptsAgreesWithMatch(t *testing.T) {
	t.Parallel()
	tb := mustNew(t, []Rule{
		{Name: "a", Recipients: []string{"*@a.example"}, Senders: []string{"*@trusted.example"}, Target: Target{Kind: KindWebhook}},
		{Name: "b", Recipients: []string{"*@a.example"}, Target: Target{Kind: KindReject}},
		{Name: "c", Identities: []string{"relay-*"}, Target: Target{Kind: KindRelay}},
	})
	for _, rcpt := range []string{"x@a.example", "x@b.example"} {
		for _, sender := range []string{"", "s@trusted.example", "s@other.example"} {
			for _, id := range []string{"", "relay-1", "cam"} {
				r, ok := tb.Match(Meta{Recipient: rcpt, Sender: sender, Identity: id})
				want := ok && r.Target.Kind != KindReject
				if got := tb.Accepts(rcpt, sender, id); got != want {
					t.Errorf("Accepts(%q,%q,%q) = %v, Match says %v", rcpt, sender, id, got, want)
				}
			}
		}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rules []Rule
		want  []string // substrings of the error
	}{
		{"empty name", []Rule{{Target: Target{Kind: KindWebhook}}}, []string{`route[0] ""`, "empty name"}},
		{"bad name", []Rule{{Name: "a b", Target: Target{Kind: KindWebhook}}}, []string{`route[0] "a b"`, "invalid character"}},
		{"duplicate", []Rule{
			{Name: "a", Target: Target{Kind: KindWebhook}},
			{Name: "a", Target: Target{Kind: KindRelay}},
		}, []string{`route[1] "a"`, "already used by route[0]"}},
		{"kind", []Rule{{Name: "a", Target: Target{Kind: "webhok"}}}, []string{`route[0] "a"`, `unknown target kind "webhok"`, "use one of webhook"}},
		{"missing kind", []Rule{{Name: "a"}}, []string{`unknown target kind ""`}},
		{"empty pattern", []Rule{{Name: "a", Recipients: []string{"x@y", ""}, Target: Target{Kind: KindWebhook}}}, []string{`recipients[1] ""`, `use "*"`}},
		{"bad header name", []Rule{{Name: "a", Headers: map[string]string{"X Bad": "*"}, Target: Target{Kind: KindWebhook}}}, []string{`headers: "X Bad"`}},
		{"bad header pattern", []Rule{{Name: "a", Headers: map[string]string{"Subject": ""}, Target: Target{Kind: KindWebhook}}}, []string{`headers["Subject"]`}},
		{"all problems at once", []Rule{
			{Name: "", Target: Target{Kind: KindWebhook}},
			{Name: "b", Senders: []string{"\x00"}, Target: Target{Kind: "x"}},
		}, []string{`route[0] ""`, `route[1] "b": senders[0]`, `route[1] "b": unknown target kind`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.rules)
			if err == nil {
				t.Fatal("New succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNewCopiesRules(t *testing.T) {
	t.Parallel()
	rules := []Rule{{Name: "a", Recipients: []string{"a@x"}, Target: Target{Kind: KindWebhook}}}
	tb := mustNew(t, rules)
	rules[0].Name = "changed"
	rules[0].Recipients[0] = "b@x"
	r, ok := tb.Match(Meta{Recipient: "a@x"})
	if !ok || r.Name != "a" || r.Recipients[0] != "a@x" {
		t.Fatalf("table changed with its input: %+v %v", r, ok)
	}
	if tb.Len() != 1 {
		t.Fatalf("Len = %d", tb.Len())
	}
}

func TestRuleByName(t *testing.T) {
	t.Parallel()
	tb, err := New([]Rule{{Name: "a", Recipients: []string{"*@a"}, Target: Target{Kind: KindWebhook}}, {Name: "b", Recipients: []string{"*"}, Target: Target{Kind: KindReject}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := tb.Rule("b"); !ok || r.Target.Kind != KindReject {
		t.Fatalf("Rule(b) = %+v, %v", r, ok)
	}
	if _, ok := tb.Rule("c"); ok {
		t.Fatal("Rule(c) found a rule that does not exist")
	}
	if n := tb.Names(); len(n) != 2 || n[0] != "a" || n[1] != "b" {
		t.Fatalf("Names = %v", n)
	}
}

// matchDecides is the parse stage's decision (internal/parse/dispatch.go):
// Match, and a reject rule refuses.
func matchDecides(tb *Table, rcpt, sender, identity string, header func(string) []string) bool {
	r, ok := tb.Match(Meta{Recipient: rcpt, Sender: sender, Identity: identity, Header: header})
	return ok && r.Target.Kind != KindReject
}

func TestAcceptsMessage(t *testing.T) {
	t.Parallel()
	webhook := Target{Kind: KindWebhook}
	relay := Target{Kind: KindRelay}
	reject := Target{Kind: KindReject}
	alarm := map[string][]string{"Subject": {"ALARM zone 3"}}
	spam := map[string][]string{"Subject": {"buy spam"}}
	tests := []struct {
		name   string
		rules  []Rule
		rcpt   string
		header map[string][]string // nil: no header lookup at all
		want   bool
	}{
		{"empty table", nil, "a@x", alarm, false},
		{"catch-all", []Rule{{Name: "all", Target: webhook}}, "a@x", nil, true},
		{"header rule takes it", []Rule{
			{Name: "alarms", Headers: map[string]string{"subject": "alarm*"}, Target: webhook},
		}, "a@x", alarm, true},
		{"header rule does not take it, nothing else", []Rule{
			{Name: "alarms", Headers: map[string]string{"subject": "alarm*"}, Target: webhook},
		}, "a@x", spam, false},
		{"no header lookup: header rule never matches", []Rule{
			{Name: "alarms", Headers: map[string]string{"subject": "*"}, Target: webhook},
		}, "a@x", nil, false},
		{"absent header never matches", []Rule{
			{Name: "alarms", Headers: map[string]string{"X-Zone": "*"}, Target: webhook},
		}, "a@x", alarm, false},
		{"header rule misses, later reject", []Rule{
			{Name: "alarms", Headers: map[string]string{"Subject": "alarm*"}, Target: webhook},
			{Name: "no", Target: reject},
		}, "a@x", spam, false},
		{"header reject matches before catch-all", []Rule{
			{Name: "spam", Headers: map[string]string{"Subject": "*spam*"}, Target: reject},
			{Name: "all", Target: relay},
		}, "a@x", spam, false},
		{"header reject misses, catch-all takes it", []Rule{
			{Name: "spam", Headers: map[string]string{"Subject": "*spam*"}, Target: reject},
			{Name: "all", Target: relay},
		}, "a@x", alarm, true},
		{"header rule for another recipient", []Rule{
			{Name: "alarms", Recipients: []string{"b@x"}, Headers: map[string]string{"Subject": "alarm*"}, Target: webhook},
		}, "a@x", alarm, false},
		{"every header condition must hold", []Rule{
			{Name: "alarms", Headers: map[string]string{"Subject": "alarm*", "X-Zone": "3"}, Target: webhook},
		}, "a@x", alarm, false},
		{"some value of a repeated header is enough", []Rule{
			{Name: "alarms", Headers: map[string]string{"Subject": "alarm*"}, Target: webhook},
		}, "a@x", map[string][]string{"Subject": {"hello", "alarm"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := mustNew(t, tt.rules)
			var lookup func(string) []string
			if tt.header != nil {
				lookup = headers(tt.header)
			}
			got := tb.AcceptsMessage(tt.rcpt, "dev@example.com", "printer", lookup)
			if got != tt.want {
				t.Errorf("AcceptsMessage = %v, want %v", got, tt.want)
			}
			if m := matchDecides(tb, tt.rcpt, "dev@example.com", "printer", lookup); got != m {
				t.Errorf("AcceptsMessage = %v, Match says %v", got, m)
			}
		})
	}
}

func TestHasHeaderRules(t *testing.T) {
	t.Parallel()
	if mustNew(t, nil).HasHeaderRules() {
		t.Error("empty table has header rules")
	}
	plain := []Rule{{Name: "a", Recipients: []string{"*"}, Target: Target{Kind: KindWebhook}}}
	if mustNew(t, plain).HasHeaderRules() {
		t.Error("table without header conditions has header rules")
	}
	withHeader := append(plain, Rule{Name: "b", Headers: map[string]string{"Subject": "*"}, Target: Target{Kind: KindReject}})
	if !mustNew(t, withHeader).HasHeaderRules() {
		t.Error("table with a header condition (on a reject rule) has no header rules")
	}
}

// TestAcceptsMessageAgainstAccepts checks, on many generated tables, that
// AcceptsMessage is Match plus the reject rule for every header, that a
// recipient Accepts refuses is refused whatever the header, and that without
// header rules Accepts already gives the final answer.
func TestAcceptsMessageAgainstAccepts(t *testing.T) {
	t.Parallel()
	rcptPats := [][]string{nil, {"a@x"}, {"*@x"}, {"b@*"}}
	senderPats := [][]string{nil, {"<>"}, {"dev@*"}}
	hdrConds := []map[string]string{nil, nil, {"Subject": "alarm*"}, {"subject": "*spam*"}, {"X-Zone": "3", "Subject": "*"}}
	kinds := []Kind{KindWebhook, KindRelay, KindReject, KindDirectory, KindReject}
	headerSets := []func(string) []string{
		nil,
		headers(nil),
		headers(map[string][]string{"Subject": {"alarm 1"}}),
		headers(map[string][]string{"SUBJECT": {"spam alarm"}}),
		headers(map[string][]string{"Subject": {"hi", "alarm"}, "X-Zone": {"3"}}),
		headers(map[string][]string{"X-Zone": {"3"}}),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 1000; n++ {
		rules := make([]Rule, rng.IntN(5))
		for i := range rules {
			rules[i] = Rule{
				Name:       fmt.Sprintf("r%d", i),
				Recipients: rcptPats[rng.IntN(len(rcptPats))],
				Senders:    senderPats[rng.IntN(len(senderPats))],
				Headers:    hdrConds[rng.IntN(len(hdrConds))],
				Target:     Target{Kind: kinds[rng.IntN(len(kinds))]},
			}
		}
		tb := mustNew(t, rules)
		for _, rcpt := range []string{"a@x", "b@y", "c@x"} {
			for _, sender := range []string{"", "dev@example.com", "other@example.com"} {
				accepts := tb.Accepts(rcpt, sender, "printer")
				for hi, h := range headerSets {
					got := tb.AcceptsMessage(rcpt, sender, "printer", h)
					if want := matchDecides(tb, rcpt, sender, "printer", h); got != want {
						t.Fatalf("table %d %+v: AcceptsMessage(%q, %q, headers %d) = %v, Match says %v", n, rules, rcpt, sender, hi, got, want)
					}
					if !accepts && got {
						t.Fatalf("table %d %+v: Accepts(%q, %q) refuses but AcceptsMessage(headers %d) accepts", n, rules, rcpt, sender, hi)
					}
					if !tb.HasHeaderRules() && got != accepts {
						t.Fatalf("table %d %+v: no header rules, yet Accepts(%q, %q) = %v and AcceptsMessage = %v", n, rules, rcpt, sender, accepts, got)
					}
				}
			}
		}
	}
}
