package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"stx-registry/shared/testrig"
)

// refreshOtherService is a second service the token server accepts, to
// show a refresh token is bound to the service it was issued for.
const refreshOtherService = "other.registry.test:9001"

// startRefreshEnv starts its own pair of daemons (the token server is
// stopped and moved around): demo-config.sh's configuration, which has
// state_directory, plus a second service, and users user1 and user2.
func startRefreshEnv(t *testing.T) *env {
	t.Helper()
	needTool(t, "openssl")
	e, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && e.token != nil {
			t.Logf("token server log (tail):\n%s", e.token.Tail())
		}
		e.stop()
		os.RemoveAll(e.dir)
	})
	for _, u := range []string{"user1", "user2"} {
		if err := e.passwd(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := testrig.AppendConf(e.tokenConf(), "log_format json", "service "+refreshOtherService, "backoff_free 100"); err != nil {
		t.Fatal(err)
	}
	if err := e.start(); err != nil {
		t.Fatal(err)
	}
	return e
}

// dockerLogin sends docker login's token request to the token server at
// addr and returns the refresh token.
func (e *env) dockerLogin(t *testing.T, addr, user string) string {
	t.Helper()
	q := url.Values{"account": {user}, "client_id": {"docker"}, "offline_token": {"true"}, "service": {e.service()}}
	req := newRequest(t, http.MethodGet, "https://"+addr+"/token/?"+q.Encode(), nil)
	req.SetBasicAuth(user, e.passwords[user])
	r := e.do(t, req)
	var v struct {
		RefreshToken string `json:"refresh_token"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &v) != nil || v.RefreshToken == "" {
		t.Fatalf("docker login as %s: status %d, no refresh_token: %s", user, r.status, r.body)
	}
	return v.RefreshToken
}

// refreshGrant POSTs a refresh grant to the token server at addr, as
// docker (clientID docker) or containerd (containerd-client) sends it.
func (e *env) refreshGrant(t *testing.T, addr, clientID, rt, service string, scopes ...string) (reply, tokenReply, string) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID},
		"service": {service}, "scope": {strings.Join(scopes, " ")}}
	req := newRequest(t, http.MethodPost, "https://"+addr+"/token/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := e.do(t, req)
	var tr tokenReply
	var v struct {
		RefreshToken string `json:"refresh_token"`
	}
	json.Unmarshal(r.body, &tr)
	json.Unmarshal(r.body, &v)
	return r, tr, v.RefreshToken
}

// pullWithRefresh exchanges rt for a pull token at addr and pulls im's
// manifest and blobs from repo with it. The reply must return rt itself.
func (e *env) pullWithRefresh(t *testing.T, addr, clientID, rt, repo string, im *testrig.Image) {
	t.Helper()
	r, tr, again := e.refreshGrant(t, addr, clientID, rt, e.service(), "repository:"+repo+":pull")
	if r.status != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("refresh grant (%s): status %d: %s", clientID, r.status, r.body)
	}
	if again != rt {
		t.Fatalf("refresh grant (%s) returned a different refresh token: docker would break", clientID)
	}
	if tr.Scope == nil || *tr.Scope != "repository:"+repo+":pull" {
		t.Errorf("refresh grant scope %v", tr.Scope)
	}
	// skopeo pushed to REPO without a tag: latest.
	m := e.api(t, http.MethodGet, "/v2/"+repo+"/manifests/latest", tr.AccessToken, nil, acceptManifest)
	if m.status != http.StatusOK || m.header.Get("Docker-Content-Digest") != im.Manifest.Digest {
		t.Fatalf("pulling %s:latest with the refreshed token: status %d, digest %q, want %s",
			repo, m.status, m.header.Get("Docker-Content-Digest"), im.Manifest.Digest)
	}
	for _, d := range append(im.LayerDigests(), im.Config.Digest) {
		if b := e.api(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d, tr.AccessToken, nil, nil); b.status != http.StatusOK {
			t.Fatalf("blob %s: status %d", d, b.status)
		}
	}
}

// refused checks that a refresh grant is answered 401 invalid_grant.
func (e *env) refused(t *testing.T, addr, rt, service, why string) {
	t.Helper()
	r, _, _ := e.refreshGrant(t, addr, "docker", rt, service, "repository:user1/refresh:pull")
	if code, _ := jsonError(r); r.status != http.StatusUnauthorized || code != "invalid_grant" {
		t.Fatalf("%s: status %d %s, want 401 invalid_grant", why, r.status, r.body)
	}
}

// TestRefreshTokens follows a docker login's refresh token through a
// restart, a failover to a second instance, a revocation and a damaged
// state file. Expiry is tested in the token package with a fake clock
// (refresh_token_ttl is at least a minute).
func TestRefreshTokens(t *testing.T) {
	e := startRefreshEnv(t)
	h := newClientHome(t)
	im := newImage(t, "v1")
	e.mustPush(t, h, "user1", im, "user1/refresh")
	e.mustPush(t, h, "user2", im, "user2/refresh")

	rt := e.dockerLogin(t, e.tokenAddr, "user1")
	rt2 := e.dockerLogin(t, e.tokenAddr, "user2")
	// docker, twice with the same token, then containerd's form.
	e.pullWithRefresh(t, e.tokenAddr, "docker", rt, "user1/refresh", im)
	e.pullWithRefresh(t, e.tokenAddr, "docker", rt, "user1/refresh", im)
	e.pullWithRefresh(t, e.tokenAddr, "containerd-client", rt, "user1/refresh", im)
	e.refused(t, e.tokenAddr, rt, refreshOtherService, "another service")
	e.refused(t, e.tokenAddr, strings.Repeat("A", 43), e.service(), "a token never issued")
	if strings.Contains(string(e.token.Log()), rt) {
		t.Fatal("the token server logged a refresh token")
	}

	t.Run("restart", func(t *testing.T) {
		e.restartTokenServer(t)
		e.pullWithRefresh(t, e.tokenAddr, "docker", rt, "user1/refresh", im)
	})

	// A second instance with the same configuration but its own listen
	// address, on the same state directory, stands in for the other
	// controller; the first one is stopped.
	addrB, err := testrig.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	confB := filepath.Join(e.dir, "stx-token-server-b.conf")
	if err := testrig.EditConf(e.tokenConf(), confB, []string{"listen"}, "listen "+addrB); err != nil {
		t.Fatal(err)
	}
	t.Run("failover", func(t *testing.T) {
		e.token.Stop()
		var err error
		e.token, err = testrig.StartDaemon(bin.TokenServer, confB, filepath.Join(e.dir, "token-b.log"))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.waitHealthy(addrB, e.token); err != nil {
			t.Fatal(err)
		}
		e.pullWithRefresh(t, addrB, "docker", rt, "user1/refresh", im)
	})

	t.Run("revoke", func(t *testing.T) {
		out, err := exec.Command(bin.TokenServer, "revoke", "-f", confB, "-user", "user1").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "revoked 1 refresh tokens") {
			t.Fatalf("revoke: %v: %s", err, out)
		}
		e.refused(t, addrB, rt, e.service(), "revoked while the daemon runs")
		e.pullWithRefresh(t, addrB, "docker", rt2, "user2/refresh", im)
	})

	t.Run("damaged state file", func(t *testing.T) {
		e.token.Stop()
		state := filepath.Join(e.dir, "state", "refresh-tokens")
		good, err := os.ReadFile(state)
		if err != nil {
			t.Fatal(err)
		}
		// Garbage, a tampered copy of user2's line, and a truncated line.
		lines := strings.Split(strings.TrimSpace(string(good)), "\n")
		last := lines[len(lines)-1]
		tampered := strings.Replace(last, `"hash":"`, `"hash":"AAAA`, 1)
		damaged := string(good) + "\x00\x01 garbage {\n" + tampered[:len(tampered)-10] + "\n" + "not json at all\n"
		if err := os.WriteFile(state, []byte(damaged), 0o600); err != nil {
			t.Fatal(err)
		}
		mark := e.token.LogSize()
		e.token, err = testrig.StartDaemon(bin.TokenServer, confB, filepath.Join(e.dir, "token-b.log"))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.waitHealthy(addrB, e.token); err != nil {
			t.Fatal(err)
		}
		if log := string(e.token.LogSince(mark)); !strings.Contains(log, "refresh token store damaged") || !strings.Contains(log, `"bad_lines":3`) {
			t.Errorf("the damage was not reported:\n%s", log)
		}
		e.pullWithRefresh(t, addrB, "docker", rt2, "user2/refresh", im)
		// A write (a new login) saves the damaged file and cleans up.
		e.dockerLogin(t, addrB, "user1")
		if saved, _ := filepath.Glob(state + ".corrupt-*"); len(saved) != 1 {
			t.Errorf("damaged copies %v, want one", saved)
		}
		e.pullWithRefresh(t, addrB, "docker", rt2, "user2/refresh", im)
	})
	if !e.token.Running() {
		t.Fatalf("token server exited: %v", e.token.Err())
	}
}
