package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"stx-registry/shared/testrig"
)

// mediaDockerManifest is the manifest type docker push writes.
const mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"

// acceptAnyManifest accepts the manifests of every client in this suite.
var acceptAnyManifest = http.Header{"Accept": {mediaManifest, mediaDockerManifest}}

// pushedDigest is how docker push reports the manifest it pushed:
// "v1: digest: sha256:... size: N".
var pushedDigest = regexp.MustCompile(`(?m)^\S+: digest: (sha256:[0-9a-f]{64}) size: \d+$`)

// engine is a private docker engine from the test rig, with the test CA
// under /etc/docker/certs.d for the registry.
type engine struct{ *testrig.Dockerd }

// needEngine fails the test unless a private dockerd can run here.
func needEngine(t *testing.T) {
	t.Helper()
	needTool(t, "dockerd", "docker", "containerd", "unshare")
	if os.Geteuid() != 0 {
		t.Fatal("dockerd runs as root only: run the end-to-end tests as root")
	}
}

// startEngine starts a private dockerd for e's registry, stopped and
// removed at cleanup.
func startEngine(t *testing.T, e *env) *engine {
	t.Helper()
	needEngine(t)
	// A short directory: dockerd's and containerd's Unix sockets live
	// under it.
	dir, err := os.MkdirTemp("", "dkr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d, err := testrig.StartDockerd(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("docker engine logs:\n%s", d.Tail())
		}
		// Exactly the dockerd and containerd started here, by their PIDs;
		// then the CA placed under /etc/docker/certs.d.
		d.Stop()
	})
	if err := d.TrustCA(e.registryAddr, e.caFile()); err != nil {
		t.Fatal(err)
	}
	return &engine{d}
}

// docker runs the docker CLI against the engine with stdin as its input,
// bounded by clientTimeout.
func (d *engine) docker(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := d.Command(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("docker %s: timed out after %v\n%s", strings.Join(args, " "), clientTimeout, out.String())
	}
	t.Logf("$ docker %s: %v", strings.Join(args, " "), err)
	return result{err: err, output: out.String()}
}

// login runs docker login with the password on standard input.
func (d *engine) login(t testing.TB, e *env, user, password string) result {
	t.Helper()
	return d.docker(t, password+"\n", "login", "-u", user, "--password-stdin", e.registryAddr)
}

// mustRefuse fails the test unless r failed, and logs what docker printed.
func mustRefuse(t testing.TB, r result, what string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("%s succeeded:\n%s", what, r.output)
	}
	t.Logf("%s is refused; docker prints:\n%s", what, r.output)
}

// dockerAuth is one registry's entry in the CLI's config.json.
type dockerAuth struct {
	Auth          string `json:"auth"`
	IdentityToken string `json:"identitytoken"`
}

// config reads the CLI's config.json: the raw bytes and the entry for e's
// registry, if any.
func (d *engine) config(t testing.TB, e *env) ([]byte, *dockerAuth) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(d.Config, "config.json"))
	if err != nil {
		t.Fatalf("docker's config.json: %v", err)
	}
	var cfg struct {
		Auths      map[string]dockerAuth `json:"auths"`
		CredsStore string                `json:"credsStore"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("docker's config.json: %v", err)
	}
	if cfg.CredsStore != "" {
		t.Fatalf("docker's config.json names a credential store %q: the credentials are not in the file", cfg.CredsStore)
	}
	a, ok := cfg.Auths[e.registryAddr]
	if !ok {
		return raw, nil
	}
	return raw, &a
}

// imageExists reports whether the engine holds ref.
func (d *engine) imageExists(t testing.TB, ref string) bool {
	t.Helper()
	return d.docker(t, "", "image", "inspect", ref).err == nil
}

// removeImages removes every image from the engine, so that the next pull
// downloads everything again.
func (d *engine) removeImages(t testing.TB) {
	t.Helper()
	mustOK(t, d.docker(t, "", "image", "prune", "--all", "--force"), "docker image prune")
}

// pullOwn removes every image and pulls ref, which must come back with
// digest; the token server must have granted docker's refresh-token
// exchange for user1, the only way docker can log in without a password.
func (d *engine) pullOwn(t testing.TB, e *env, ref, digest string) {
	t.Helper()
	d.removeImages(t)
	mark := e.token.LogSize()
	out := mustOK(t, d.docker(t, "", "pull", ref), "docker pull "+ref)
	if !strings.Contains(out, "Digest: "+digest) {
		t.Errorf("docker pull %s printed no \"Digest: %s\":\n%s", ref, digest, out)
	}
	var refreshed bool
	for _, l := range e.auditSince(t, mark) {
		refreshed = refreshed || (l.Method == http.MethodPost && l.GrantType == "refresh_token" && l.ClientID == "docker" &&
			l.User == "user1" && l.Result == "granted")
	}
	if !refreshed {
		t.Errorf("no granted refresh_token grant from docker for user1 in the audit log:\n%s", e.token.LogSince(mark))
	}
}

// registryDigest is the digest the registry holds for name:ref, read as
// admin, or "" when there is none.
func (e *env) registryDigest(t testing.TB, name, ref string) string {
	t.Helper()
	tok := e.tokenFor(t, "admin", "repository:"+name+":pull")
	r := e.api(t, http.MethodHead, "/v2/"+name+"/manifests/"+ref, tok, nil, acceptAnyManifest)
	if r.status != http.StatusOK {
		return ""
	}
	return r.header.Get("Docker-Content-Digest")
}

// startDockerEnv starts a pair of daemons of its own for TestDocker, which
// restarts them: demo-config.sh's configuration with JSON logs, and users
// user1, user2 and admin.
func startDockerEnv(t *testing.T) *env {
	t.Helper()
	needTool(t, "openssl", "skopeo")
	e, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && e.token != nil {
			t.Logf("token server log (tail):\n%s", e.token.Tail())
			t.Logf("registry log (tail):\n%s", e.registry.Tail())
		}
		e.stop()
		os.RemoveAll(e.dir)
	})
	for _, u := range []string{"user1", "user2", "admin"} {
		if err := e.passwd(u); err != nil {
			t.Fatal(err)
		}
	}
	// The wrong-password login must not put user1 on hold.
	if err := testrig.AppendConf(e.tokenConf(), "log_format json", "backoff_free 100"); err != nil {
		t.Fatal(err)
	}
	if err := e.start(); err != nil {
		t.Fatal(err)
	}
	return e
}

// failover stops both daemons and starts them as the other controller
// does: the same addresses (the floating IP), new processes, configuration
// files and logs of its own, and the registry root and the token server's
// state directory moved there, as the DRBD filesystem moves. It returns
// the new token server configuration.
func (e *env) failover(t *testing.T) string {
	t.Helper()
	e.stop()
	other := filepath.Join(e.dir, "controller-1")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"storage", "state"} {
		if err := os.Rename(filepath.Join(e.dir, d), filepath.Join(other, d)); err != nil {
			t.Fatal(err)
		}
	}
	tokConf, regConf := filepath.Join(other, "stx-token-server.conf"), filepath.Join(other, "stx-registry.conf")
	if err := testrig.EditConf(e.tokenConf(), tokConf, []string{"state_directory"}, "state_directory "+filepath.Join(other, "state")); err != nil {
		t.Fatal(err)
	}
	if err := testrig.EditConf(e.registryConf(), regConf, []string{"root_directory"}, "root_directory "+filepath.Join(other, "storage")); err != nil {
		t.Fatal(err)
	}
	if err := e.startFrom(tokConf, regConf, other); err != nil {
		t.Fatal(err)
	}
	return tokConf
}

// TestDocker drives a real docker engine (a private dockerd) against both
// daemons: login, push and pull in the own namespace, refusals in another
// user's namespace, pull by digest, the stored identity (refresh) token
// through a token server restart, a failover of both daemons and a
// revocation, a wrong password, and logout. A refusal must say why, in
// docker's own output (TestRefusalMessages checks the other clients).
//
// docker treats every registry on a loopback address as insecure: it skips
// the certificate checks there, so this test does not exercise TLS trust
// (the CA under /etc/docker/certs.d is placed as an operator would, but
// docker does not need it). skopeo, podman and ctr check the certificate
// against the test CA in the other tests of this suite.
//
// The images are made with docker import from a tarball of one random
// file: no network.
func TestDocker(t *testing.T) {
	needEngine(t)
	e := startDockerEnv(t)
	d := startEngine(t, e)
	h := newClientHome(t)
	reg := e.registryAddr
	own := reg + "/user1/dock:v1"

	layer, err := testrig.RandomLayer(layoutDir(t), layerPayloadBytes, testrig.Tar)
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, d.docker(t, "", "import", layer.Path(), own), "docker import")

	// A wrong password logs nobody in and stores nothing.
	mustRefuseSaying(t, d.login(t, e, "user1", "wrong-"+e.passwords["user1"]), "docker login with a wrong password",
		`Error response from daemon: Get "https://`+reg+`/v2/": unauthorized: `+badPassword)
	if _, err := os.Stat(filepath.Join(d.Config, "config.json")); err == nil {
		if _, a := d.config(t, e); a != nil {
			t.Fatalf("a refused login stored credentials for %s", reg)
		}
	}

	// Login: the identity (refresh) token lands in config.json, the
	// password does not, in any form.
	out := mustOK(t, d.login(t, e, "user1", e.passwords["user1"]), "docker login")
	if !strings.Contains(out, "Login Succeeded") {
		t.Errorf("docker login printed no \"Login Succeeded\":\n%s", out)
	}
	raw, auth := d.config(t, e)
	if auth == nil || auth.IdentityToken == "" {
		t.Fatalf("docker login stored no identity token for %s", reg) // raw may hold the password: not printed
	}
	pw := e.passwords["user1"]
	for _, secret := range []string{pw, base64.StdEncoding.EncodeToString([]byte("user1:" + pw)), base64.StdEncoding.EncodeToString([]byte(pw))} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatal("docker's config.json holds the password")
		}
	}
	identity := auth.IdentityToken

	t.Run("push and pull", func(t *testing.T) {
		out := mustOK(t, d.docker(t, "", "push", own), "docker push "+own)
		m := pushedDigest.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("docker push printed no digest:\n%s", out)
		}
		pushed := m[1]
		if got := e.registryDigest(t, "user1/dock", "v1"); got != pushed {
			t.Fatalf("the registry holds user1/dock:v1 as %q, docker pushed %s", got, pushed)
		}
		d.pullOwn(t, e, own, pushed)
		out = mustOK(t, d.docker(t, "", "image", "inspect", "--format", "{{json .RepoDigests}}", own), "docker image inspect")
		var repoDigests []string
		if err := json.Unmarshal([]byte(out), &repoDigests); err != nil || !slices.Contains(repoDigests, reg+"/user1/dock@"+pushed) {
			t.Errorf("pulled image's RepoDigests %s (%v), want %s", out, err, reg+"/user1/dock@"+pushed)
		}

		// By digest.
		d.removeImages(t)
		byDigest := reg + "/user1/dock@" + pushed
		mustOK(t, d.docker(t, "", "pull", byDigest), "docker pull "+byDigest)
		if !d.imageExists(t, byDigest) {
			t.Errorf("docker pull %s: the engine does not hold it", byDigest)
		}
	})

	t.Run("another user's namespace", func(t *testing.T) {
		other := reg + "/user2/dock:v1"
		if !d.imageExists(t, own) {
			mustOK(t, d.docker(t, "", "pull", own), "docker pull "+own)
		}
		mustOK(t, d.docker(t, "", "tag", own, other), "docker tag")
		mustRefuseSaying(t, d.docker(t, "", "push", other), "docker push to user2's namespace as user1",
			"\ndenied: "+why(whyPush, "dock")+"\n")
		if got := e.registryDigest(t, "user2/dock", "v1"); got != "" {
			t.Errorf("the refused push left user2/dock:v1 in the registry (%s)", got)
		}

		private := reg + "/user2/private:v1"
		e.mustPush(t, h, "user2", newImage(t, "v1"), "user2/private:v1")
		mustRefuseSaying(t, d.docker(t, "", "pull", private), "docker pull of user2's private image as user1",
			"Error response from daemon: pull access denied for "+reg+"/user2/private, repository does not exist or may require 'docker login': denied: "+why(whyPull, "private"))
		if d.imageExists(t, private) {
			t.Errorf("the refused pull left %s in the engine", private)
		}
	})

	pushed := e.registryDigest(t, "user1/dock", "v1")
	if pushed == "" {
		t.Fatal("user1/dock:v1 is not in the registry")
	}

	// The stored identity token carries docker through a restart of the
	// token server and a failover of both daemons, without a new login.
	t.Run("token server restart", func(t *testing.T) {
		e.restartTokenServer(t)
		d.pullOwn(t, e, own, pushed)
	})

	tokConf := e.tokenConf()
	t.Run("failover", func(t *testing.T) {
		tokConf = e.failover(t)
		d.pullOwn(t, e, own, pushed)
	})
	if _, a := d.config(t, e); a == nil || a.IdentityToken != identity {
		t.Fatal("docker's stored identity token changed without a login")
	}

	// A revoked refresh token is refused; a new login gets a new one.
	t.Run("revoke", func(t *testing.T) {
		out, err := exec.Command(bin.TokenServer, "revoke", "-f", tokConf, "-user", "user1").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "revoked 1 refresh tokens") {
			t.Fatalf("revoke: %v: %s", err, out)
		}
		d.removeImages(t)
		mark := e.token.LogSize()
		mustRefuse(t, d.docker(t, "", "pull", own), "docker pull after revoke")
		var denied bool
		for _, l := range e.auditSince(t, mark) {
			denied = denied || (l.GrantType == "refresh_token" && l.ClientID == "docker" && l.Result == "denied")
		}
		if !denied {
			t.Errorf("no denied refresh_token grant from docker in the audit log:\n%s", e.token.LogSince(mark))
		}
		mustOK(t, d.login(t, e, "user1", e.passwords["user1"]), "docker login after revoke")
		if _, a := d.config(t, e); a == nil || a.IdentityToken == "" || a.IdentityToken == identity {
			t.Fatal("docker login after revoke stored no new identity token")
		}
		d.pullOwn(t, e, own, pushed)
	})

	// Logout forgets the token: user1's private repository is refused.
	t.Run("logout", func(t *testing.T) {
		mustOK(t, d.docker(t, "", "logout", reg), "docker logout")
		if _, a := d.config(t, e); a != nil {
			t.Errorf("docker logout left an entry for %s", reg)
		}
		d.removeImages(t)
		mustRefuse(t, d.docker(t, "", "pull", own), "docker pull after logout")
	})
}
