// Command receiver is the application of packaging/docker/compose.yaml, an
// example to replace with your own: it takes Postern's webhooks, checks
// their Standard Webhooks signature with the secret in WEBHOOK_SECRET, and
// prints one line per message (webhook-id, sender, subject, attachments).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/postern/postern/internal/webhook"
)

func main() {
	addr := os.Getenv("LISTEN_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	key, err := webhook.ParseSecret(os.Getenv("WEBHOOK_SECRET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver: WEBHOOK_SECRET:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	srv := &http.Server{Addr: addr, Handler: handler([][]byte{key}, log), ReadHeaderTimeout: 10 * time.Second}
	log.Info("receiver listening", slog.String("addr", addr))
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

// maxBody bounds a request: Postern's default max_message_bytes (25 MiB)
// grows by a third in base64, plus the JSON around it.
const maxBody = 40 << 20

// handler answers 204 to a correctly signed POST, 401 to any other.
func handler(secrets [][]byte, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := webhook.Verify(secrets, r.Header, body, 0, time.Now()); err != nil {
			log.Warn("refused", slog.String("webhook_id", r.Header.Get(webhook.HeaderID)), slog.String("error", err.Error()))
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev struct {
			Type string
			Data struct {
				Subject  string
				Envelope struct {
					Sender     string
					Recipients []string
				}
				Attachments []struct{ Filename string }
			}
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			// A raw payload (payload: raw) is the message itself.
			ev.Type = r.Header.Get("Content-Type")
		}
		var files []string
		for _, a := range ev.Data.Attachments {
			files = append(files, a.Filename)
		}
		log.Info("webhook received",
			slog.String("webhook_id", r.Header.Get(webhook.HeaderID)),
			slog.String("type", ev.Type),
			slog.String("sender", ev.Data.Envelope.Sender),
			slog.String("recipients", strings.Join(ev.Data.Envelope.Recipients, ",")),
			slog.String("subject", ev.Data.Subject),
			slog.String("attachments", strings.Join(files, ",")))
		w.WriteHeader(http.StatusNoContent)
	})
}
