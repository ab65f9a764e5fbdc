package route

import "testing"

func TestRoutesMessage(t *testing.T) {
	t.Parallel()
	tb, err := New([]Rule{
		{Name: "alarms", Recipients: []string{"alarm@*"}, Headers: map[string]string{"X-Priority": "1*"}, Target: Target{Kind: KindWebhook}},
		{Name: "spam", Headers: map[string]string{"Subject": "*viagra*"}, Target: Target{Kind: KindReject}},
		{Name: "scans", Recipients: []string{"scans@*"}, Target: Target{Kind: KindWebhook}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rcpts  []string
		header string
		want   bool
	}{
		{[]string{"alarm@x"}, "X-Priority: 1\r\n\r\n", true},
		{[]string{"alarm@x"}, "X-Priority: 3\r\n\r\n", false},
		{[]string{"alarm@x", "scans@x"}, "X-Priority: 3\r\n\r\n", true},
		{[]string{"scans@x"}, "Subject: cheap viagra\r\n\r\n", false},
		{[]string{"alarm@x"}, "X-Priority: =?us-ascii?q?1?=\r\n\r\n", true},
		{[]string{"alarm@x"}, "X-Priority: 3", true}, // no end of header: left to the parse stage
	} {
		if got := tb.RoutesMessage(tc.rcpts, "dev@lan", "printer", []byte(tc.header)); got != tc.want {
			t.Errorf("RoutesMessage(%v, %q) = %v, want %v", tc.rcpts, tc.header, got, tc.want)
		}
	}
}
