package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/signedurl"
	"github.com/postern/postern/internal/webhook"
)

// linkClient fetches links the way an application on another host does:
// by the name in the link (here one only the test knows, so it dials the
// admin listener for every name) and without the admin token.
func linkClient(adminAddr string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, adminAddr)
		},
	}}
}

func fetch(t *testing.T, c *http.Client, method, u, host string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// sendLarge sends a message whose attachment is over the inline threshold
// (delivery.inline_attachment_bytes, 256 KiB by default) and returns the
// payload the application received.
func sendLarge(t *testing.T, a *app.App, h *hook, n int, att []byte, name string) webhook.Received {
	t.Helper()
	var buf bytes.Buffer
	part, err := enmime.Builder().
		From("Scanner 3F", "scanner@lan.example").
		To("Billing", "invoices@app.test").
		Subject("Large scan").
		Text([]byte("Your scan is attached.\n")).
		AddAttachment(att, "application/pdf", name).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := part.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	reply, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan.example", []string{"invoices@app.test"}, buf.Bytes())
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	id := strings.TrimPrefix(reply, "OK ")
	for _, r := range h.wait(t, n, 30*time.Second) {
		var ev webhook.ReceivedEvent
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatal(err)
		}
		if string(ev.Data.ID) == id {
			return ev.Data
		}
	}
	t.Fatalf("no payload for %s", id)
	return webhook.Received{}
}

// An application on another host gets the large attachment and the raw
// message by the links in its payload: at delivery.public_url, with no
// admin token, only under a good signature that has not expired, only for
// the object signed, and only under a Host the admin listener answers to.
func TestSignedLinksEndToEnd(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	port := freeLoopbackPort(t)
	cfg.Admin.Addr = "127.0.0.1:" + port
	public := "files.gw.test:" + port
	cfg.Delivery.PublicURL = "http://" + public + "/"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := boot(t, cfg)
	c := linkClient(a.AdminAddr().String())

	att := make([]byte, 300<<10)
	rand.Read(att)
	d := sendLarge(t, a, h, 1, att, "../../etc/scan\u202efdp.exe")
	other := sendLarge(t, a, h, 2, att, "other.pdf")

	if len(d.Attachments) != 1 || d.Attachments[0].Key == "" || len(d.Attachments[0].Content) != 0 {
		t.Fatalf("attachment not stored on its own: %+v", d.Attachments)
	}
	attURL := d.Attachments[0].URL
	prefix := "http://" + public + "/v1/links/" + string(d.ID) + "/attachments/0?expires="
	if !strings.HasPrefix(attURL, prefix) {
		t.Fatalf("attachment url %q, want it to begin %q", attURL, prefix)
	}
	u, err := url.Parse(attURL)
	if err != nil {
		t.Fatal(err)
	}
	unix, err := strconv.ParseInt(u.Query().Get("expires"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(time.Unix(unix, 0)); left < 7*24*time.Hour-time.Minute || left > 7*24*time.Hour {
		t.Errorf("link expires in %s, want delivery.url_ttl's default of 7 days", left)
	}

	resp, body := fetch(t, c, "GET", attURL, "")
	if resp.StatusCode != 200 || !bytes.Equal(body, att) {
		t.Fatalf("GET attachment: %d, %d bytes (want 200, the %d bytes sent)", resp.StatusCode, len(body), len(att))
	}
	for k, want := range map[string]string{
		"Content-Type":            "application/pdf",
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "sandbox",
		"Cache-Control":           "private",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	disp, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
	if err != nil || disp != "attachment" || params["filename"] != "scanfdp.exe" {
		t.Errorf("Content-Disposition %q: %s %v %v; want attachment with the name's last element and no right-to-left override",
			resp.Header.Get("Content-Disposition"), disp, params, err)
	}
	resp, body = fetch(t, c, "HEAD", attURL, "")
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(att)) {
		t.Errorf("HEAD attachment: %d, length %d, %d bytes of body", resp.StatusCode, resp.ContentLength, len(body))
	}

	resp, body = fetch(t, c, "GET", d.Raw.URL, "")
	if resp.StatusCode != 200 || sum(body) != d.Raw.SHA256 || resp.Header.Get("Content-Type") != "message/rfc822" {
		t.Fatalf("GET raw: %d %s, sha256 %s, want 200 message/rfc822 %s", resp.StatusCode, resp.Header.Get("Content-Type"), sum(body), d.Raw.SHA256)
	}
	if _, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); params["filename"] != string(d.ID)+".eml" {
		t.Errorf("raw Content-Disposition %q", resp.Header.Get("Content-Disposition"))
	}

	// The admin listener's own names take the link too.
	if resp, _ := fetch(t, c, "GET", attURL, a.AdminAddr().String()); resp.StatusCode != 200 {
		t.Errorf("link under the admin address: %d", resp.StatusCode)
	}

	q := u.Query()
	sig := []byte(q.Get("sig"))
	sig[0] ^= 1
	q.Set("sig", string(sig))
	tampered := *u
	tampered.RawQuery = q.Encode()

	keyPath := filepath.Join(cfg.DataDir, app.LinkKeyFile)
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("link key file: %v, %v; want mode 0600", fi, err)
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	s := signerFromFile(t, key)
	obj := signedurl.Object{ID: string(d.ID), Kind: signedurl.KindAttachment}
	expired := *u
	expired.RawQuery = s.Query(obj, time.Now().Add(-time.Second)).Encode()

	otherMsg := *u
	otherMsg.Path = strings.Replace(u.Path, string(d.ID), string(other.ID), 1)

	otherPart := *u
	otherPart.Path = strings.TrimSuffix(u.Path, "0") + "1"

	rawWithAttSig := *u
	rawWithAttSig.Path = "/v1/links/" + string(d.ID) + "/raw"

	for name, c2 := range map[string]struct {
		method, url, host string
		want              int
	}{
		"tampered signature":            {"GET", tampered.String(), "", 403},
		"no signature":                  {"GET", "http://" + public + u.Path, "", 403},
		"expired":                       {"GET", expired.String(), "", 410},
		"another message's id":          {"GET", otherMsg.String(), "", 403},
		"another attachment":            {"GET", otherPart.String(), "", 403},
		"the raw message":               {"GET", rawWithAttSig.String(), "", 403},
		"forged Host":                   {"GET", attURL, "attacker.example:" + port, 421},
		"public host, another port":     {"GET", attURL, "files.gw.test:1", 421},
		"POST":                          {"POST", attURL, a.AdminAddr().String(), 401},
		"POST under the public host":    {"POST", attURL, "", 421},
		"the API under the public host": {"GET", "http://" + public + "/v1/devices", "", 421},
	} {
		if resp, body := fetch(t, c, c2.method, c2.url, c2.host); resp.StatusCode != c2.want {
			t.Errorf("%s: %d %q, want %d", name, resp.StatusCode, body, c2.want)
		}
	}

	// Retention removed the message: the link is good, the object gone.
	if err := os.Remove(filepath.Join(cfg.DataDir, "store", "objects", filepath.FromSlash(postern.MsgID(d.ID).RawKey()))); err != nil {
		t.Fatal(err)
	}
	if resp, body := fetch(t, c, "GET", d.Raw.URL, ""); resp.StatusCode != 404 {
		t.Errorf("removed raw message: %d %q, want 404", resp.StatusCode, body)
	}
}

func signerFromFile(t *testing.T, file []byte) *signedurl.Signer {
	t.Helper()
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(file)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := signedurl.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
