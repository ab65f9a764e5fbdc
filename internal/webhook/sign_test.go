package webhook

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test vector of the Standard Webhooks reference libraries: a receiver
// using any of them agrees with Sign.
func TestSignStandardVector(t *testing.T) {
	t.Parallel()
	secret, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func signedTestHeader(secrets [][]byte, id string, ts time.Time, body []byte) http.Header {
	return signedHeader(id, ts, signatures(secrets, id, ts, body), "application/json")
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"type":"email.received"}`)
	ts := testNow
	good := signedTestHeader([][]byte{testSecret}, "01ID.route", ts, body)
	with := func(name, value string) http.Header {
		h := good.Clone()
		if value == "" {
			h.Del(name)
		} else {
			h.Set(name, value)
		}
		return h
	}
	tests := []struct {
		name    string
		secrets [][]byte
		header  http.Header
		body    []byte
		now     time.Time
		want    error // nil means valid
	}{
		{"valid", [][]byte{testSecret}, good, body, ts, nil},
		{"valid within tolerance late", [][]byte{testSecret}, good, body, ts.Add(4 * time.Minute), nil},
		{"valid within tolerance early", [][]byte{testSecret}, good, body, ts.Add(-4 * time.Minute), nil},
		{"any of several secrets", [][]byte{testSecret2, testSecret}, good, body, ts, nil},
		{"tampered body", [][]byte{testSecret}, good, []byte(`{"type":"email.receivee"}`), ts, ErrSignature},
		{"wrong secret", [][]byte{testSecret2}, good, body, ts, ErrSignature},
		{"no secrets", nil, good, body, ts, ErrSignature},
		{"old timestamp", [][]byte{testSecret}, good, body, ts.Add(6 * time.Minute), ErrTimestamp},
		{"future timestamp", [][]byte{testSecret}, good, body, ts.Add(-6 * time.Minute), ErrTimestamp},
		{"timestamp not a number", [][]byte{testSecret}, with(HeaderTimestamp, "soon"), body, ts, ErrTimestamp},
		{"timestamp re-signed elsewhere", [][]byte{testSecret}, with(HeaderTimestamp, strconv.FormatInt(ts.Unix()+1, 10)), body, ts, ErrSignature},
		{"other id", [][]byte{testSecret}, with(HeaderID, "01ID.other"), body, ts, ErrSignature},
		{"missing id", [][]byte{testSecret}, with(HeaderID, ""), body, ts, ErrMissingHeader},
		{"missing timestamp", [][]byte{testSecret}, with(HeaderTimestamp, ""), body, ts, ErrMissingHeader},
		{"missing signature", [][]byte{testSecret}, with(HeaderSignature, ""), body, ts, ErrMissingHeader},
		{"only unknown versions", [][]byte{testSecret}, with(HeaderSignature, strings.Replace(good.Get(HeaderSignature), "v1,", "v2,", 1)), body, ts, ErrSignature},
		{"valid after junk", [][]byte{testSecret}, with(HeaderSignature, "v1,!!! v1a,xx "+good.Get(HeaderSignature)), body, ts, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tc.secrets, tc.header, tc.body, 5*time.Minute, tc.now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyDefaultTolerance(t *testing.T) {
	t.Parallel()
	body := []byte("x")
	h := signedTestHeader([][]byte{testSecret}, "id", testNow, body)
	if err := Verify([][]byte{testSecret}, h, body, 0, testNow.Add(DefaultTolerance-time.Second)); err != nil {
		t.Fatalf("inside default tolerance: %v", err)
	}
	if err := Verify([][]byte{testSecret}, h, body, 0, testNow.Add(DefaultTolerance+time.Second)); !errors.Is(err, ErrTimestamp) {
		t.Fatalf("outside default tolerance: %v, want ErrTimestamp", err)
	}
}

// Past maxSignatures, Verify stops looking: a header stuffed with junk
// signatures cannot make a receiver do unbounded work.
func TestVerifyBoundsSignatures(t *testing.T) {
	t.Parallel()
	body := []byte("x")
	h := signedTestHeader([][]byte{testSecret}, "id", testNow, body)
	junk := strings.Repeat("v1,AAAA ", maxSignatures)
	h.Set(HeaderSignature, junk+h.Get(HeaderSignature))
	if err := Verify([][]byte{testSecret}, h, body, time.Minute, testNow); !errors.Is(err, ErrSignature) {
		t.Fatalf("Verify = %v, want ErrSignature", err)
	}
}

func TestSignReaderMatchesSign(t *testing.T) {
	t.Parallel()
	body := []byte(strings.Repeat("line of mail\r\n", 5000))
	got, n, err := signReader([][]byte{testSecret, testSecret2}, "id", testNow, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(body)) {
		t.Fatalf("read %d bytes, want %d", n, len(body))
	}
	if want := Sign(testSecret, "id", testNow, body) + " " + Sign(testSecret2, "id", testNow, body); got != want {
		t.Fatalf("signReader = %q, want %q", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "whsec_aGVsbG8=", want: "hello"},
		{in: "plain text secret", want: "plain text secret"},
		{in: "whsec_not base64!", wantErr: true},
		{in: "whsec_", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseSecret(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseSecret(%q) = %q, want error", tc.in, got)
			} else if strings.Contains(err.Error(), strings.TrimPrefix(tc.in, "whsec_")) && tc.in != "whsec_" && tc.in != "" {
				t.Errorf("ParseSecret(%q) error %q echoes the secret", tc.in, err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("ParseSecret(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
