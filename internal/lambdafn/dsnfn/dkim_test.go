package dsnfn_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/blob/memblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dkimsign"
	"github.com/postern/postern/internal/dkimsign/dkimsigntest"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/dsnfn"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/standin"
)

// notice runs one failure through the dsn stage built from cfg and
// returns the notice it wrote under data_dir/notices.
func notice(t *testing.T, cfg *config.Config) []byte {
	t.Helper()
	store := memblob.New()
	st, err := dsnfn.Build(context.Background(), &lambdafn.Deps{Config: cfg, Store: store, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := postern.NewMsgID()
	const sender = "scan@example.com"
	raw := "From: " + sender + "\r\nTo: gone@example.org\r\nSubject: scan\r\n\r\nhello\r\n"
	if err := store.Put(ctx, id.RawKey(), strings.NewReader(raw), nil); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(postern.DSNJob{V: postern.JobVersion, ID: id, Created: time.Now(),
		Envelope: postern.Envelope{V: postern.EnvelopeVersion, ID: id, Sender: sender, Identity: "dev",
			Recipients: []postern.Recipient{{Addr: "gone@example.org"}}, Size: int64(len(raw))},
		Failed: []postern.Failure{{Recipient: "gone@example.org", Route: "out", Status: "5.1.1",
			Diagnostic: "smtp; 550 5.1.1 no such user", LastAt: time.Now()}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Handler.Handle(ctx, postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(cfg.DataDir, "notices", "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("notices written: %v (%v), want at least one", files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// With dsn.dkim_sign, a notice from MAILER-DAEMON@mx.example.com is signed
// with the key of example.com, its parent, and verifies with go-msgauth and
// dkimpy. Only that domain's keys are read: another domain's key, whose
// variable is unset, does not stop the stage. Without dkim_sign the notice
// goes out unsigned.
func TestNoticesSignedWithDSNDomainKey(t *testing.T) {
	k, err := dkimsign.GenerateKey(dkimsign.Ed25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("POSTERN_TEST_DSN_DKIM", string(pem))
	t.Setenv("POSTERN_TEST_DSN_DKIM_OTHER", "")
	recs := dkimsigntest.Records{"bounce1._domainkey.example.com": k.PublicRecord()}

	cfg := cfgDSN(t)
	cfg.DKIM.Keys = []config.DKIMKey{
		{Domain: "other.test", Selector: "s1", Key: "env:POSTERN_TEST_DSN_DKIM_OTHER"},
		{Domain: "example.com", Selector: "bounce1", Key: "env:POSTERN_TEST_DSN_DKIM"},
	}
	cfg.DSN.DKIMSign = true
	msg := notice(t, cfg)
	if !strings.Contains(string(msg), "\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n") {
		t.Fatalf("notice not from MAILER-DAEMON@mx.example.com:\n%s", msg)
	}
	vs := dkimsigntest.VerifyGo(t, msg, recs)
	if len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.com" {
		for _, v := range vs {
			t.Logf("go-msgauth: d=%s err=%v", v.Domain, v.Err)
		}
		t.Fatalf("go-msgauth: %d signatures, want one passing with d=example.com:\n%s", len(vs), msg)
	}
	if rs := dkimsigntest.VerifyDkimpy(t, msg, recs); len(rs) != 1 || !rs[0].Pass || rs[0].Domain != "example.com" {
		t.Errorf("dkimpy: %+v, want one passing signature with d=example.com", rs)
	}

	cfg = cfgDSN(t)
	cfg.DKIM.Keys = []config.DKIMKey{{Domain: "example.com", Selector: "bounce1", Key: "env:POSTERN_TEST_DSN_DKIM"}}
	if msg := notice(t, cfg); strings.Contains(strings.ToLower(string(msg)), "dkim-signature:") {
		t.Errorf("signed without dsn.dkim_sign:\n%s", msg)
	}
}

// The notice domain's own key is read at build: a bad one stops the
// stage with an error naming it, outside AWS a secretsmanager: one too.
func TestNoticeKeyErrorsNameKey(t *testing.T) {
	t.Setenv("POSTERN_TEST_DSN_DKIM_NONE", "")
	for name, ref := range map[string]string{
		"unset env":      "env:POSTERN_TEST_DSN_DKIM_NONE",
		"secretsmanager": "secretsmanager:postern/dkim",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := cfgDSN(t)
			cfg.DKIM.Keys = []config.DKIMKey{{Domain: "mx.example.com", Selector: "s1", Key: ref}}
			cfg.DSN.DKIMSign = true
			_, err := dsnfn.New(context.Background(), &lambdafn.Deps{Config: cfg, Store: memblob.New(), Log: slog.New(slog.DiscardHandler)}, nil)
			if err == nil || !strings.HasPrefix(err.Error(), "config: dkim.keys[0].key: ") {
				t.Errorf("error %v, want one naming dkim.keys[0].key", err)
			}
		})
	}
}

// On AWS the notice domain's key may be a secretsmanager: secret: the dsn
// function's Build makes its Secrets Manager client for it (moto's server
// here) even when dsn.relay holds no secret, and the notice is signed with
// the secret's key.
func TestBuildSignsWithSecretsManagerKey(t *testing.T) {
	moto := standin.Moto(t)
	standin.IsolateAWSEnv(t, standin.Region)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto)
	k, err := dkimsign.GenerateKey(dkimsign.Ed25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.New(secretsmanager.Options{
		Region: standin.Region, BaseEndpoint: aws.String(moto),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:  awsclient.HTTPClient(&http.Client{Timeout: 30 * time.Second}),
	})
	name := "postern/dsn-dkim/" + strings.ToLower(rand.Text()[:10])
	if _, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(string(pem))}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}

	cfg := cfgDSN(t)
	cfg.DSN.Domain = "notices.example.com"
	cfg.DKIM.Keys = []config.DKIMKey{{Domain: "notices.example.com", Selector: "aws1", Key: "secretsmanager:" + name}}
	cfg.DSN.DKIMSign = true
	msg := notice(t, cfg)
	recs := dkimsigntest.Records{"aws1._domainkey.notices.example.com": k.PublicRecord()}
	vs := dkimsigntest.VerifyGo(t, msg, recs)
	if len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "notices.example.com" {
		t.Fatalf("go-msgauth: %d signatures (%+v), want one passing with d=notices.example.com:\n%s", len(vs), vs, msg)
	}
	if rs := dkimsigntest.VerifyDkimpy(t, msg, recs); len(rs) != 1 || !rs[0].Pass {
		t.Errorf("dkimpy: %+v, want one passing signature", rs)
	}
}
