package awse2e

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/standin"
	"github.com/postern/postern/internal/webhook"
)

// TestWebhookSecretFromSecretsManager: a route's signing secret written as
// secretsmanager:<name> is in no environment; the webhook function reads
// it from Secrets Manager (moto's server) at delivery, and the application
// verifies the signature with it.
func TestWebhookSecretFromSecretsManager(t *testing.T) {
	moto := standin.Moto(t)
	standin.IsolateAWSEnv(t, standin.Region)
	fx := newFixture(t)

	sm := secretsmanager.New(secretsmanager.Options{
		Region:       standin.Region,
		BaseEndpoint: aws.String(moto),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   awsclient.HTTPClient(&http.Client{Timeout: 30 * time.Second}),
	})
	name := "postern/e2e/" + strings.ToLower(rand.Text()[:10])
	const secret = "whsec_c2VjcmV0cy1tYW5hZ2VyLWUyZS1zaWduaW5nLWtleQ=="
	if _, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(secret)}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}

	rcv := newReceiver(t, http.StatusOK, "")
	route := fmt.Sprintf(`  - name: app
    match: {recipients: ["*@app.test"]}
    webhook: {url: %q, secrets: ["secretsmanager:%s"], allow_private: true, timeout: 5s}
`, rcv.url, name)
	st := newStack(t, fx, stackOptions{routes: route, template: true})
	for _, env := range st.stageEnv {
		for k, v := range env {
			if strings.Contains(v, "whsec_") {
				t.Fatalf("%s holds a secret", k)
			}
		}
	}
	// The function reaches Secrets Manager at moto, as the SDK lets an
	// endpoint be set per service.
	st.stageEnv["webhook"]["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = moto
	st.deploy(t, fx, "parse", "webhook")

	msg, _ := scan(t)
	id := mustSend(t, st.smtpAddr(), "invoices@app.test", msg)
	r := rcv.wait(t, 1, 60*time.Second)[0]
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.Verify([][]byte{key}, r.header, r.body, 5*time.Minute, time.Now()); err != nil {
		t.Fatalf("the signature does not verify with the secret in Secrets Manager: %v", err)
	}
	if got := r.header.Get("webhook-id"); got != id+".app" {
		t.Errorf("webhook-id %q, want %s.app", got, id)
	}
}
