package webhook

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary header values to Verify. It must never panic,
// and must accept only when one signature really is the HMAC of the given
// id, timestamp and body: checked by recomputing with Sign.
func FuzzVerify(f *testing.F) {
	body := []byte(`{"a":1}`)
	ts := testNow
	good := Sign(testSecret, "msg_1", ts, body)
	f.Add("msg_1", "1741082400", good, body)
	f.Add("msg_1", "1741082400", "v1,"+good[3:]+" v1,AAAA", body)
	f.Add("msg_1", "-9223372036854775808", good, body)
	f.Add("msg_1", "9223372036854775807", "v1, v1,, ,v1", body)
	f.Add("", "", "", []byte{})
	f.Add("id", "1741082400", "v1,====", []byte("x"))
	f.Fuzz(func(t *testing.T, id, tsText, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, tsText)
		h.Set(HeaderSignature, sig)
		err := Verify([][]byte{testSecret}, h, body, 5*time.Minute, ts)
		if err != nil {
			return
		}
		// Accepted: the id, timestamp and signature must be genuine.
		unix, perr := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
		if perr != nil {
			t.Fatalf("accepted unparsable timestamp %q", tsText)
		}
		want, _ := base64.StdEncoding.DecodeString(Sign(testSecret, h.Get(HeaderID), time.Unix(unix, 0), body)[3:])
		found := false
		for _, s := range strings.Fields(h.Get(HeaderSignature)) {
			// Compare bytes: base64 may spell one value more than one way.
			if got, derr := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "v1,")); derr == nil && strings.HasPrefix(s, "v1,") && bytes.Equal(got, want) {
				found = true
			}
		}
		if !found {
			t.Fatalf("accepted %q for id %q ts %q, want one of them to be %q", sig, id, tsText, want)
		}
	})
}
