package app_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dnstest"
	"github.com/postern/postern/internal/logbuf"
	"github.com/postern/postern/internal/webhook"
)

// The one-machine gateway with an internet identity and two listeners,
// "mx" with dmarc_reject and "plain" without, dns.servers a loopback DNS
// server. Mail claiming a p=reject domain's From from elsewhere is refused
// at the end of DATA on mx (550 5.7.1 naming the domain's policy), leaves
// nothing in the data directory and reaches no webhook, and is logged with
// its verdicts; on plain it is accepted. A failure under p=quarantine and
// one whose DNS times out (temperror) are accepted on mx as sent.
func TestGatewayRefusesDMARCRejectAtEndOfData(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	srv.AddTXT("good.example", "v=spf1 ip4:192.0.2.0/24 -all")
	srv.AddTXT("_dmarc.good.example", "v=DMARC1; p=reject")
	srv.AddTXT("soft.example", "v=spf1 ip4:192.0.2.0/24 -all")
	srv.AddTXT("_dmarc.soft.example", "v=DMARC1; p=quarantine")
	srv.AddTXT("spoof.example", "v=spf1 -all")
	srv.Timeout("slow.example")
	srv.Timeout("_dmarc.slow.example")

	h, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.DNS.Servers = []string{srv.Addr()}
	cfg.DNS.Timeout = config.Duration(500 * time.Millisecond)
	cfg.Identities[0].Internet = true
	cfg.Listeners = []config.Listener{
		{Name: "mx", Addr: "127.0.0.1:0", Mode: "smtp", DMARCReject: true},
		{Name: "plain", Addr: "127.0.0.1:0", Mode: "smtp"},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	a := bootLogged(t, cfg, logs)
	mx, plain := a.SMTPAddrs()[0].String(), a.SMTPAddrs()[1].String()

	// The spoof: SPF fails for spoof.example, and the From domain says reject.
	spoofing := func(body string) []byte {
		return []byte("From: CEO <ceo@good.example>\r\nTo: bob@app.test\r\nSubject: urgent\r\n\r\n" + body + "\r\n")
	}
	const marker, plainMarker = "wire-the-money-7f3a9c", "wire-the-money-plain-41be0d"
	spoof := spoofing(marker)
	_, err := send(t, mx, "ceo@spoof.example", []string{"bob@app.test"}, spoof)
	var se *smtp.SMTPError
	if !asSMTPError(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) ||
		!strings.Contains(se.Message, "good.example's DMARC policy is reject") {
		t.Fatalf("spoof on the dmarc_reject listener: %v, want 550 5.7.1 naming good.example's DMARC policy", err)
	}
	if n := srv.CountFor("_dmarc.good.example", dns.TypeTXT); n == 0 {
		t.Error("the gateway asked no DMARC record before refusing")
	}
	var refused struct {
		MsgID    string `json:"msg_id"`
		SMTPCode int    `json:"smtp_code"`
		SPF      string `json:"spf"`
		DMARC    string `json:"dmarc"`
		Domain   string `json:"dmarc_domain"`
		Policy   string `json:"dmarc_policy"`
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"message refused: DMARC policy reject"`) {
			if err := json.Unmarshal([]byte(line), &refused); err != nil {
				t.Fatal(err)
			}
		}
	}
	if refused.MsgID == "" || refused.SMTPCode != 550 || refused.SPF != "fail" || refused.DMARC != "fail" ||
		refused.Domain != "good.example" || refused.Policy != "reject" {
		t.Errorf("refusal log = %+v, want msg_id, 550 and the verdicts", refused)
	}
	if !strings.Contains(se.Message, refused.MsgID) {
		t.Errorf("reply %q does not carry the logged msg_id %s", se.Message, refused.MsgID)
	}
	if strings.Contains(logs.String(), marker) {
		t.Error("the log holds the message body")
	}

	// The same spoof on the listener without dmarc_reject is accepted.
	plainID := mustSend(t, plain, "ceo@spoof.example", spoofing(plainMarker))
	// A failure under p=quarantine is accepted, as sent.
	soft := []byte("From: <a@soft.example>\r\nTo: bob@app.test\r\nSubject: q\r\n\r\nquarantine me\r\n")
	softID := mustSend(t, mx, "a@spoof.example", soft)
	// DNS that times out gives temperror, which never refuses.
	start := time.Now()
	slow := []byte("From: <a@slow.example>\r\nTo: bob@app.test\r\nSubject: t\r\n\r\nslow dns\r\n")
	slowID := mustSend(t, mx, "a@slow.example", slow)
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("the DNS timeout held the reply for %s", d)
	}

	reqs := h.wait(t, 3, 30*time.Second)
	got := map[string]bool{}
	for _, r := range reqs {
		var ev webhook.ReceivedEvent
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatal(err)
		}
		got[string(ev.Data.ID)] = true
		if ev.Data.ID == "" || string(ev.Data.ID) == refused.MsgID {
			t.Errorf("webhook got message %q: the refused message was delivered", ev.Data.ID)
		}
	}
	for _, id := range []string{plainID, softID, slowID} {
		if !got[id] {
			t.Errorf("webhook did not get accepted message %s (got %v)", id, got)
		}
	}
	for id, msg := range map[string][]byte{softID: soft, slowID: slow} {
		stored, err := os.ReadFile(rawPath(t, cfg, id))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(stored, msg) {
			t.Errorf("stored %s is not the message as sent:\n%s", id, stored)
		}
	}

	// Nothing of the refused message is kept, while the body of the one
	// the plain listener accepted is found (the search can find bodies).
	found := false
	filepath.WalkDir(cfg.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s holds the refused message's body", p)
		}
		found = found || err == nil && bytes.Contains(b, []byte(plainMarker))
		if strings.Contains(p, refused.MsgID) {
			t.Errorf("%s is named after the refused message", p)
		}
		return nil
	})
	if !found {
		t.Error("the accepted copy of the spoof is nowhere in the data directory: the check above proves nothing")
	}
}

// mustSend sends msg to bob@app.test and returns the message id of the 250.
func mustSend(t *testing.T, addr, from string, msg []byte) string {
	t.Helper()
	reply, err := send(t, addr, from, []string{"bob@app.test"}, msg)
	if err != nil {
		t.Fatalf("send from %s: %v, want 250", from, err)
	}
	return strings.TrimPrefix(reply, "OK ")
}
