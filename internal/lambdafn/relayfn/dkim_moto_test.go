package relayfn_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/blob/memblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dkimsign/dkimsigntest"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay/relaytest"
	"github.com/postern/postern/internal/secrets"
	"github.com/postern/postern/internal/standin"
)

// motoSecrets is a Secrets Manager client for moto's server, with its own
// HTTP client (this machine sets AWS_CA_BUNDLE).
func motoSecrets(endpoint string) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region: standin.Region, BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:  awsclient.HTTPClient(&http.Client{Timeout: 30 * time.Second}),
	})
}

// putKeySecret stores pem as a new secret with a name of the test's own
// (moto is shared by the test binary) and returns the name.
func putKeySecret(t *testing.T, sm *secretsmanager.Client, pem []byte) string {
	t.Helper()
	name := "postern/dkim/" + strings.ToLower(rand.Text()[:10])
	if _, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(string(pem))}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	return name
}

// On AWS a dkim key written as secretsmanager: is in no environment: the
// relay function's Build, seeing a route with dkim_sign and such a key,
// makes its Secrets Manager client (moto's server here, reached as the
// SDK's AWS_ENDPOINT_URL_SECRETS_MANAGER says) and the relayed message is
// signed with the key the secret holds.
func TestBuildSignsWithSecretsManagerKey(t *testing.T) {
	moto := standin.Moto(t)
	standin.IsolateAWSEnv(t, standin.Region)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto)
	pem, err := edKey().MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	name := putKeySecret(t, motoSecrets(moto), pem)

	srv := relaytest.NewServer(t, relaytest.Options{})
	cfg := cfgWith(t, config.Route{Name: "out", Relay: &config.Relay{Type: "smtp", Addr: srv.Addr, TLS: "none", DKIMSign: true}})
	cfg.DKIM.Keys = []config.DKIMKey{{Domain: "printer.example", Selector: "aws1", Key: "secretsmanager:" + name}}
	store := memblob.New()
	st, err := relayfn.Build(t.Context(), &lambdafn.Deps{Config: cfg, Store: store, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}

	id := postern.NewMsgID()
	raw := "From: scanner@printer.example\r\nTo: boss@contoso.test\r\nSubject: scan\r\n\r\nhello\r\n"
	if err := store.Put(t.Context(), id.RawKey(), strings.NewReader(raw), nil); err != nil {
		t.Fatal(err)
	}
	job, err := json.Marshal(postern.RelayJob{V: postern.JobVersion, ID: id, Route: "out", Created: time.Now(),
		Recipients: []string{"boss@contoso.test"},
		Envelope: postern.Envelope{V: postern.EnvelopeVersion, ID: id, Sender: "scanner@printer.example",
			Recipients: []postern.Recipient{{Addr: "boss@contoso.test"}}, Size: int64(len(raw))}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Handler.Handle(t.Context(), postern.Job{Body: job, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	txs := srv.Txs()
	if len(txs) != 1 {
		t.Fatalf("the smarthost received %d messages, want 1", len(txs))
	}
	checkSigned(t, txs[0].Data, dkimsigntest.Records{"aws1._domainkey.printer.example": edKey().PublicRecord()}, "printer.example")
}

// A secretsmanager: key is read through the cache at each send: a key
// rotated in Secrets Manager signs once the cached value is older than
// the TTL, with no restart. A secret that cannot be read fails the send
// (the job is retried) rather than letting the message out unsigned.
func TestSecretsManagerKeyRotatesAndFailsClosed(t *testing.T) {
	moto := standin.Moto(t)
	sm := motoSecrets(moto)
	oldPEM, err := edKey().MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	newPEM, err := rsaKey().MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	name := putKeySecret(t, sm, oldPEM)
	now := time.Now()
	cache := secrets.New(sm, time.Minute, secrets.WithGrace(0), secrets.WithClock(func() time.Time { return now }),
		secrets.WithLogger(slog.New(slog.DiscardHandler)))

	srv := relaytest.NewServer(t, relaytest.Options{})
	cfg := cfgWith(t,
		config.Route{Name: "out", Relay: &config.Relay{Type: "smtp", Addr: srv.Addr, TLS: "none", DKIMSign: true}},
		config.Route{Name: "gone", Relay: &config.Relay{Type: "smtp", Addr: srv.Addr, TLS: "none", DKIMSign: true}},
	)
	cfg.DKIM.Keys = []config.DKIMKey{{Domain: "printer.example", Selector: "rot", Key: "secretsmanager:" + name}}
	routes, err := relayfn.Routes(context.Background(), cfg, cache)
	if err != nil {
		t.Fatal(err)
	}
	oldRec := dkimsigntest.Records{"rot._domainkey.printer.example": edKey().PublicRecord()}
	newRec := dkimsigntest.Records{"rot._domainkey.printer.example": rsaKey().PublicRecord()}

	checkSigned(t, sendVia(t, routes["out"].Transport, srv, "r1").Data, oldRec, "printer.example")

	if _, err := sm.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(string(newPEM))}); err != nil {
		t.Fatalf("PutSecretValue: %v", err)
	}
	// Within the TTL the cached key still signs.
	checkSigned(t, sendVia(t, routes["out"].Transport, srv, "r2").Data, oldRec, "printer.example")
	now = now.Add(2 * time.Minute)
	checkSigned(t, sendVia(t, routes["out"].Transport, srv, "r3").Data, newRec, "printer.example")

	if _, err := sm.DeleteSecret(t.Context(), &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	now = now.Add(2 * time.Minute)
	before := len(srv.Txs())
	_, err = routes["gone"].Transport.Send(context.Background(), relayMessage("r4"))
	if err == nil || !strings.Contains(err.Error(), "dkim.keys[0].key") || !strings.Contains(err.Error(), name) {
		t.Errorf("send with the key's secret gone: %v, want an error naming dkim.keys[0].key and the secret", err)
	}
	if got := len(srv.Txs()); got != before {
		t.Errorf("the smarthost received %d more messages, want none", got-before)
	}
}
