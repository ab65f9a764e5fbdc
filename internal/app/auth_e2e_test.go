package app_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dnstest"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay/relaytest"
	"github.com/postern/postern/internal/webhook"
)

// The one-machine gateway, its identity marked internet and dns.servers a
// loopback DNS server, checks senders after the 250: mail claiming
// good.example's From from elsewhere fails DMARC (p=reject) and lands in
// the quarantine route ahead of the inbox; signed mail from good.example's
// own address reaches the webhook with the verdicts in its auth object, and
// the smarthost of a relay route receives it with Authentication-Results
// first. The same gateway with a trusted identity asks DNS nothing.
func TestGatewayChecksSenders(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv.AddTXT("good.example", "v=spf1 ip4:127.0.0.0/8 -all")
	srv.AddTXT("_dmarc.good.example", "v=DMARC1; p=reject")
	srv.AddTXT("sel._domainkey.good.example", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
	srv.AddTXT("spoof.example", "v=spf1 -all")

	config := func(t *testing.T, internet bool, hookURL, smarthost string) *config.Config {
		cfg := testConfig(t, hookURL)
		cfg.DNS.Servers = []string{srv.Addr()}
		cfg.DNS.Timeout = config.Duration(2 * time.Second)
		cfg.Identities[0].Internet = internet
		cfg.Routes = []config.Route{
			{Name: "quarantine", Match: config.Match{Recipients: []string{"*@app.test"}, DMARC: []string{"fail"}}, Directory: &config.Directory{Path: "quarantine"}},
			{Name: "app", Match: config.Match{Recipients: []string{"*@app.test"}}, Webhook: &config.Webhook{URL: hookURL, Secrets: []string{testSecret}, AllowPrivate: true}},
			{Name: "mx", Match: config.Match{Recipients: []string{"*@relay.test"}}, Relay: &config.Relay{Type: "smtp", Addr: smarthost, TLS: "none"}},
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	signed := func(t *testing.T, msg string) []byte {
		var out bytes.Buffer
		if err := dkim.Sign(&out, strings.NewReader(msg), &dkim.SignOptions{Domain: "good.example", Selector: "sel", Signer: key,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed}); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}

	t.Run("internet", func(t *testing.T) {
		h, hs := newHook(t)
		smarthost := relaytest.NewServer(t, relaytest.Options{})
		cfg := config(t, true, hs.URL, smarthost.Addr)
		a := boot(t, cfg)
		addr := a.SMTPAddrs()[0].String()

		spoof := []byte("From: CEO <ceo@good.example>\r\nTo: bob@app.test\r\nSubject: wire the money\r\n\r\nnow\r\n")
		reply, err := send(t, addr, "ceo@spoof.example", []string{"bob@app.test"}, spoof)
		if err != nil {
			t.Fatalf("send spoof: %v", err)
		}
		spoofID := strings.TrimPrefix(reply, "OK ")
		file := filepath.Join(cfg.DataDir, "quarantine", spoofID+".quarantine.json")
		waitFor(t, func() []string {
			if _, err := os.Stat(file); err != nil {
				return nil
			}
			return []string{file}
		})
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var ev webhook.ReceivedEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		if au := ev.Data.Auth; au == nil || au.SPF.Result != "fail" || au.SPF.Domain != "spoof.example" || au.DMARC.Result != "fail" ||
			au.DMARC.Policy != "reject" || au.DMARC.Domain != "good.example" {
			t.Errorf("quarantined auth = %+v", ev.Data.Auth)
		}

		// The sender forged a field in the gateway's name: it must not go out.
		forged := "Authentication-Results: gw.test; dkim=pass; dmarc=pass (forged)\r\n"
		good := signed(t, "From: Alice <alice@good.example>\r\nTo: bob@app.test, carol@relay.test\r\nSubject: invoice\r\nMessage-ID: <i1@good.example>\r\n\r\nPlease pay.\r\n")
		good = append([]byte(forged), good...)
		reply, err = send(t, addr, "alice@good.example", []string{"bob@app.test", "carol@relay.test"}, good)
		if err != nil {
			t.Fatalf("send good: %v", err)
		}
		goodID := strings.TrimPrefix(reply, "OK ")
		reqs := h.wait(t, 1, 30*time.Second)
		if len(reqs) != 1 {
			t.Fatalf("webhook got %d requests, want 1 (the spoof is quarantined)", len(reqs))
		}
		ev = webhook.ReceivedEvent{}
		if err := json.Unmarshal(reqs[0].body, &ev); err != nil {
			t.Fatal(err)
		}
		au := ev.Data.Auth
		if string(ev.Data.ID) != goodID || au == nil {
			t.Fatalf("webhook got message %s with auth %+v, want %s with verdicts", ev.Data.ID, au, goodID)
		}
		if au.SPF.Result != "pass" || au.SPF.Domain != "good.example" {
			t.Errorf("spf = %+v", au.SPF)
		}
		if len(au.DKIM) != 1 || au.DKIM[0] != (webhook.DKIM{Result: "pass", Domain: "good.example", Selector: "sel", Algorithm: "ed25519-sha256"}) {
			t.Errorf("dkim = %+v", au.DKIM)
		}
		if d := au.DMARC; d.Result != "pass" || d.Policy != "reject" || !d.AlignedSPF || !d.AlignedDKIM {
			t.Errorf("dmarc = %+v", d)
		}

		txs := waitFor(t, func() []string {
			var out []string
			for _, tx := range smarthost.Txs() {
				out = append(out, string(tx.Data))
			}
			return out
		})
		first, _, _ := strings.Cut(txs[0], "\r\nReceived: ")
		for _, want := range []string{"Authentication-Results: gw.test;", "spf=pass", "dkim=pass", "header.d=good.example header.s=sel", "dmarc=pass header.from=good.example"} {
			if !strings.HasPrefix(txs[0], "Authentication-Results: gw.test;") || !strings.Contains(first, want) {
				t.Errorf("relayed message does not start with an Authentication-Results field holding %q:\n%.600s", want, txs[0])
			}
		}
		if !strings.Contains(txs[0], strings.Replace(string(good), forged, "", 1)) || strings.Contains(txs[0], "forged") {
			t.Errorf("relayed message is not the message as sent less the forged field:\n%s", txs[0])
		}
		if n := strings.Count(txs[0], "Authentication-Results:"); n != 1 {
			t.Errorf("relayed message has %d Authentication-Results fields, want the gateway's alone", n)
		}
		stored, err := os.ReadFile(rawPath(t, cfg, goodID))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(stored, good) || bytes.Count(stored, []byte("Authentication-Results")) != 1 {
			t.Error("the stored message is not the message as received (the forged field included, no other)")
		}

		// A replay to a route decides on the stored verdicts, as the parse
		// stage did, and sends what it sent.
		admin := a.AdminAddr().String()
		if code, body := doAdmin(t, admin, replayReq(spoofID, "app")); code != 409 || !strings.Contains(body, "matches none") {
			t.Errorf("replay of the spoof to app: %d %q, want 409: its verdicts route it to quarantine", code, body)
		}
		if code, body := doAdmin(t, admin, replayReq(spoofID, "quarantine")); code != 200 {
			t.Errorf("replay of the spoof to quarantine: %d %q", code, body)
		}
		if code, body := doAdmin(t, admin, replayReq(goodID, "mx")); code != 200 {
			t.Fatalf("replay of the good message to mx: %d %q", code, body)
		}
		again := waitFor(t, func() []string {
			if txs := smarthost.Txs(); len(txs) > 1 {
				return []string{string(txs[1].Data)}
			}
			return nil
		})
		if again[0] != txs[0] {
			t.Errorf("the replay relayed\n%.400s\nthe first delivery\n%.400s", again[0], txs[0])
		}
	})

	t.Run("trusted", func(t *testing.T) {
		h, hs := newHook(t)
		smarthost := relaytest.NewServer(t, relaytest.Options{})
		a := boot(t, config(t, false, hs.URL, smarthost.Addr))
		before := srv.Count()
		if _, err := send(t, a.SMTPAddrs()[0].String(), "ceo@spoof.example", []string{"bob@app.test", "carol@relay.test"},
			[]byte("From: CEO <ceo@good.example>\r\nSubject: scan\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
		reqs := h.wait(t, 1, 30*time.Second)
		var ev webhook.ReceivedEvent
		if err := json.Unmarshal(reqs[0].body, &ev); err != nil {
			t.Fatal(err)
		}
		if au := ev.Data.Auth; au == nil || au.SPF.Result != "none" || au.SPF.Reason != "trusted" || au.DMARC.Result != "none" || au.DMARC.Reason != "trusted" {
			t.Errorf("trusted auth = %+v, want none (trusted)", ev.Data.Auth)
		}
		txs := waitFor(t, func() []string {
			var out []string
			for _, tx := range smarthost.Txs() {
				out = append(out, string(tx.Data))
			}
			return out
		})
		if strings.Contains(txs[0], "Authentication-Results") {
			t.Errorf("trusted mail relayed with Authentication-Results:\n%s", txs[0])
		}
		if n := srv.Count() - before; n != 0 {
			t.Errorf("%d DNS queries for trusted mail", n)
		}
	})
}

// rawPath is where the local store keeps a message as received.
func rawPath(t *testing.T, cfg *config.Config, id string) string {
	t.Helper()
	mid, err := postern.ParseMsgID(id)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Path(filepath.Join("store", "objects", filepath.FromSlash(mid.RawKey())))
}
