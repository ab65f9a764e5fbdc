package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/webhook"
)

func TestReceiverTakesSignedAndRefusesForged(t *testing.T) {
	t.Parallel()
	key, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	srv := httptest.NewServer(handler([][]byte{key}, slog.New(slog.NewJSONHandler(&logs, nil))))
	defer srv.Close()
	body := []byte(`{"type":"email.received","data":{"subject":"scan","envelope":{"sender":"printer@lan.test","recipients":["a@example.com"]},"attachments":[{"filename":"scan.pdf"}]}}`)
	post := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		now := time.Now()
		req.Header.Set(webhook.HeaderID, "01M8.default")
		req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		if sig == "" {
			sig = webhook.Sign(key, "01M8.default", now, body)
		}
		req.Header.Set(webhook.HeaderSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(""); code != http.StatusNoContent {
		t.Errorf("signed request: %d, want 204", code)
	}
	if !strings.Contains(logs.String(), `"subject":"scan"`) || !strings.Contains(logs.String(), `"attachments":"scan.pdf"`) {
		t.Errorf("log lacks the message: %s", logs.String())
	}
	if code := post("v1,AAAA"); code != http.StatusUnauthorized {
		t.Errorf("forged request: %d, want 401", code)
	}
}
