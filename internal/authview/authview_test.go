package authview

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

const ours = "gw.test;\r\n\tspf=fail smtp.mailfrom=spoof.example;\r\n\tdmarc=fail header.from=good.example"

func view(t *testing.T, value, raw string) string {
	t.Helper()
	b, err := io.ReadAll(Reader(value, iotest.OneByteReader(strings.NewReader(raw))))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReader(t *testing.T) {
	t.Parallel()
	field := "Authentication-Results: " + ours + "\r\n"
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"no forged field", "Received: from x\r\n\tby gw.test\r\nFrom: a@b\r\n\r\nbody\r\n",
			field + "Received: from x\r\n\tby gw.test\r\nFrom: a@b\r\n\r\nbody\r\n"},
		{"forged fields of ours go, folded or not, any case", "Received: from x\r\n" +
			"Authentication-Results: gw.test; dmarc=pass\r\n" +
			"authentication-results:GW.TEST;\r\n\tspf=pass\r\n\tdkim=pass\r\n" +
			"Authentication-Results : (forged) gw.test 1; dmarc=pass\r\n" +
			"Authentication-Results: \"gw.test\"; dmarc=pass\r\n" +
			"From: a@b\r\n\r\nAuthentication-Results: gw.test; in the body, kept\r\n",
			field + "Received: from x\r\nFrom: a@b\r\n\r\nAuthentication-Results: gw.test; in the body, kept\r\n"},
		{"other hosts' fields stay", "Authentication-Results: mx.other.example; dmarc=pass\r\nAuthentication-Results: gw.test.evil; spf=pass\r\n\r\nx",
			field + "Authentication-Results: mx.other.example; dmarc=pass\r\nAuthentication-Results: gw.test.evil; spf=pass\r\n\r\nx"},
		{"lf only", "Authentication-Results: gw.test; dmarc=pass\nFrom: a@b\n\nbody\n", field + "From: a@b\n\nbody\n"},
		{"all header", "From: a@b\r\nAuthentication-Results: gw.test; x=y\r\n", field + "From: a@b\r\n"},
		{"empty", "", field},
	} {
		if got := view(t, ours, tc.raw); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
	raw := "Authentication-Results: gw.test; dmarc=pass\r\n\r\nx"
	if got := view(t, "", raw); got != raw {
		t.Errorf("no value: %q, want the message as it is", got)
	}
}

// A header beyond MaxHeader goes out unfiltered rather than held.
func TestReaderLongHeader(t *testing.T) {
	t.Parallel()
	long := "X-Pad: " + strings.Repeat("a", MaxHeader) + "\r\n"
	raw := long + "Authentication-Results: gw.test; dmarc=pass\r\n\r\nbody"
	got := view(t, ours, raw)
	if want := Field(ours) + raw; got != want {
		t.Errorf("long header: got %d bytes, want %d, the message unfiltered", len(got), len(want))
	}
}

func TestReaderPassesErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset")
	r := Reader(ours, io.MultiReader(strings.NewReader("From: a@b\r\n"), iotest.ErrReader(boom)))
	if _, err := io.ReadAll(r); !errors.Is(err, boom) {
		t.Errorf("error %v, want the store's", err)
	}
	r = Reader(ours, io.MultiReader(strings.NewReader("From: a@b\r\n\r\nbody"), iotest.ErrReader(boom)))
	if b, err := io.ReadAll(r); !errors.Is(err, boom) || !bytes.HasSuffix(b, []byte("body")) {
		t.Errorf("error in the body: %q %v", b, err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add("Authentication-Results: gw.test; x\r\nFrom: a\r\n\r\nb")
	f.Add("a\n b\n\nc")
	f.Add("Authentication-Results:(c)gw.test\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		got := view(t, ours, raw)
		if !strings.HasPrefix(got, Field(ours)) {
			t.Fatalf("view does not start with our field: %q", got)
		}
		rest := got[len(Field(ours)):]
		// Only whole fields are removed: the rest is raw with some lines
		// left out, in order, and the body untouched.
		if len(rest) > len(raw) {
			t.Fatalf("view grew: %q from %q", rest, raw)
		}
		i := 0
		for line := range strings.Lines(rest) {
			j := strings.Index(raw[i:], line)
			if j < 0 {
				t.Fatalf("line %q of the view is not in order in %q", line, raw)
			}
			i += j + len(line)
		}
	})
}
