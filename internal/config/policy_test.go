package config

import (
	"bytes"
	"strings"
	"testing"
)

func TestDescribePolicyNotices(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		id        Identity
		ownerOnly bool
		want      string
	}{
		{Identity{Name: "app", PasswordHash: "$2a$x"}, false, "failure notices: to the envelope sender\n"},
		{Identity{Name: "app", PasswordHash: "$2a$x", Owner: "ops@x"}, false, "failure notices: to the envelope sender, a copy to the owner ops@x\n"},
		{Identity{Name: "app", PasswordHash: "$2a$x", Owner: "ops@x"}, true, "failure notices: to the owner ops@x (dsn.owner_only)\n"},
		{Identity{Name: "scan", Networks: []string{"10.0.0.0/8"}, AllowedSenders: []string{"*@scan.x"}}, false, "failure notices: to the envelope sender\n"},
		{Identity{Name: "scan", Networks: []string{"10.0.0.0/8"}, Owner: "ops@x"}, false, "failure notices: to the owner ops@x only (the sender is not trusted"},
		{Identity{Name: "scan", Networks: []string{"10.0.0.0/8"}}, false, "failure notices: none, logged only"},
	} {
		cfg := Default()
		cfg.Identities = []Identity{c.id}
		cfg.DSN.OwnerOnly = c.ownerOnly
		var b bytes.Buffer
		cfg.DescribePolicy(&b)
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("%+v owner_only=%v:\n%s\nwant %q", c.id, c.ownerOnly, b.String(), c.want)
		}
	}
}
