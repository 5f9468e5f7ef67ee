package keystone

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"stx-registry/token/authn"
	"stx-registry/token/keystone/keystonetest"
)

// TestKeystoneCheckUserErrors: a wrong service password and a forbidden
// list are backend failures (503 material), not a gone user.
func TestKeystoneCheckUserErrors(t *testing.T) {
	fk := &keystonetest.Fake{Users: map[string]bool{"alice": true}}
	ts := httptest.NewServer(fk)
	defer ts.Close()
	ks, err := New(Config{
		URL: ts.URL + "/v3", UserDomain: "Default", Timeout: 2 * time.Second,
		Service: Service{User: "svc", Password: "wrong", Project: "services", Domain: "Default"},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	err = ks.CheckUser(context.Background(), "alice")
	if err == nil || err == authn.ErrUserGone || !strings.Contains(err.Error(), "keystone_service_user") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong service password: %v", err)
	}
	ks.service.Password = "svc-secret"
	if err := ks.CheckUser(context.Background(), "alice"); err != nil {
		t.Errorf("good: %v", err)
	}
	// A revoked service token is replaced once, transparently.
	ks.state.token = "stale"
	if err := ks.CheckUser(context.Background(), "alice"); err != nil || fk.Logins.Load() != 2 {
		t.Errorf("stale service token: %v, %d logins", err, fk.Logins.Load())
	}
}
