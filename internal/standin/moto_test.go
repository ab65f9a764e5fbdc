package standin

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestMotoStopAndStartKeepTheEndpoint(t *testing.T) {
	t.Parallel()
	srv := StartMoto(t)
	if !strings.HasPrefix(srv.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoint %q, want http on 127.0.0.1", srv.Endpoint)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if code, err := get(client, srv.Endpoint+"/moto-api/"); err != nil || code != http.StatusOK {
		t.Fatalf("GET /moto-api/ = %d, %v; want 200", code, err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := get(client, srv.Endpoint+"/moto-api/"); err == nil {
		t.Fatal("the stopped server still answers")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if code, err := get(client, srv.Endpoint+"/moto-api/"); err != nil || code != http.StatusOK {
		t.Fatalf("after Start, GET /moto-api/ = %d, %v; want 200", code, err)
	}
}

func TestMotoIsSharedByTheBinary(t *testing.T) {
	t.Parallel()
	a, b := Moto(t), Moto(t)
	if a != b || !strings.HasPrefix(a, "http://127.0.0.1:") {
		t.Fatalf("Moto gave %q then %q; want one loopback endpoint", a, b)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	if code, err := get(client, a+"/moto-api/"); err != nil || code != http.StatusOK {
		t.Fatalf("GET /moto-api/ = %d, %v; want 200", code, err)
	}
}
