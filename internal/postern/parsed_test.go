package postern

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadTextRaw(t *testing.T) {
	t.Parallel()
	raw := "Subject: x\r\n\r\nthe text\r\n"
	for name, r := range map[string]func() any{
		"seeker":     func() any { return bytes.NewReader([]byte(raw)) },
		"not seeker": func() any { return iotest.HalfReader(strings.NewReader(raw)) },
	} {
		got, err := ReadTextRaw(r().(interface{ Read([]byte) (int, error) }), [2]int64{14, 24})
		if err != nil || got != "the text\r\n" {
			t.Errorf("%s: %q, %v", name, got, err)
		}
		if _, err := ReadTextRaw(r().(interface{ Read([]byte) (int, error) }), [2]int64{14, 40}); err == nil {
			t.Errorf("%s: a span past the end was read", name)
		}
	}
	if _, err := ReadTextRaw(strings.NewReader(raw), [2]int64{5, 2}); err == nil {
		t.Error("a backward span was read")
	}
}
