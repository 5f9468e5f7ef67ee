package keystone

import (
	"context"
	"errors"
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
	err = ks.CheckUser(context.Background(), "alice", "id-alice")
	if err == nil || err == authn.ErrUserGone || !strings.Contains(err.Error(), "keystone_service_user") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong service password: %v", err)
	}
	ks.service.Password = "svc-secret"
	if err := ks.CheckUser(context.Background(), "alice", "id-alice"); err != nil {
		t.Errorf("good: %v", err)
	}
	// A revoked service token is replaced once, transparently.
	ks.state.token = "stale"
	if err := ks.CheckUser(context.Background(), "alice", "id-alice"); err != nil || fk.Logins.Load() != 2 {
		t.Errorf("stale service token: %v, %d logins", err, fk.Logins.Load())
	}
}

// TestKeystoneCheckUserReplaced, against the real Keystone: a user deleted
// and created again under the same name is another user, so a refresh
// token bound to the old user's ID is refused, while the new user's is
// accepted; a token bound to no ID (from before the binding) is refused.
func TestKeystoneCheckUserReplaced(t *testing.T) {
	k := realKeystone(t)
	ks, logs := newTestKeystone(t, Config{URL: k.url,
		Service: Service{User: "admin", Password: k.AdminPassword, Project: "admin", Domain: "Default"}})
	ctx := context.Background()
	name := k.name("reused")
	oldID := k.createUser(t, "default", name, "reused-pw-1", true)
	old, err := ks.Authenticate(ctx, authn.Credentials{User: name, Password: "reused-pw-1"})
	if err != nil || old.ID != oldID {
		t.Fatalf("login: %+v %v; want ID %s", old, err, oldID)
	}
	if err := ks.CheckUser(ctx, name, old.ID); err != nil {
		t.Fatalf("re-check of the same user: %v", err)
	}
	k.deleteUser(t, oldID)
	if err := ks.CheckUser(ctx, name, old.ID); !errors.Is(err, authn.ErrUserGone) {
		t.Errorf("deleted user: %v, want ErrUserGone", err)
	}
	newID := k.createUser(t, "default", name, "reused-pw-1", true)
	cur, err := ks.Authenticate(ctx, authn.Credentials{User: name, Password: "reused-pw-1"})
	if err != nil || cur.ID != newID || cur.ID == old.ID {
		t.Fatalf("login of the new user: %+v %v; want ID %s", cur, err, newID)
	}
	if err := ks.CheckUser(ctx, name, old.ID); !errors.Is(err, authn.ErrUserReplaced) {
		t.Errorf("the old user's token after the name was reused: %v, want ErrUserReplaced", err)
	}
	if err := ks.CheckUser(ctx, name, cur.ID); err != nil {
		t.Errorf("the new user's token: %v", err)
	}
	if err := ks.CheckUser(ctx, name, ""); !errors.Is(err, authn.ErrUserReplaced) {
		t.Errorf("a token bound to no ID: %v, want ErrUserReplaced", err)
	}
	if strings.Contains(logs.String(), k.AdminPassword) {
		t.Error("the service password was logged")
	}
}
