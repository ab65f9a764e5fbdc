package config

import (
	"strings"
	"testing"
)

func TestDSNMaxReturnBytes(t *testing.T) {
	t.Parallel()
	c, err := Load("", noenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.DSN.MaxReturnBytes != 10<<20 {
		t.Errorf("default dsn.max_return_bytes = %d, want 10 MiB", c.DSN.MaxReturnBytes)
	}
	c, err = Load(write(t, "dsn:\n  max_return_bytes: 65536\n"), noenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.DSN.MaxReturnBytes != 65536 {
		t.Errorf("dsn.max_return_bytes = %d, want 65536", c.DSN.MaxReturnBytes)
	}
	for _, v := range []string{"0", "-1"} {
		_, err := Load(write(t, "dsn:\n  max_return_bytes: "+v+"\n"), noenv)
		if err == nil || !strings.Contains(err.Error(), "dsn.max_return_bytes: "+v+" must be positive") ||
			!strings.Contains(err.Error(), "the default is 10485760") {
			t.Errorf("max_return_bytes %s: error %v, want one naming the key and the fix", v, err)
		}
	}
}
