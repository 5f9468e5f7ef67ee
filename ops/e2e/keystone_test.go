package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"stx-registry/shared/testrig"
	"stx-registry/token/authn"
)

// Settings and bounds of the Keystone end-to-end test.
const (
	// ksTimeout is both token servers' keystone_timeout.
	ksTimeout = 3 * time.Second
	// shortCacheTTL is the cache_ttl of the token server the account-change
	// test talks to; the registry's token server keeps the default (5m), so
	// that the call-count phases all fall within one TTL.
	shortCacheTTL = 3 * time.Second
	// accountChangeWait bounds how long after a change in Keystone the
	// short-TTL token server may still accept the old credentials: the TTL
	// plus a generous margin for a loaded machine.
	accountChangeWait = shortCacheTTL + 15*time.Second
	// pollInterval is the pause between attempts while waiting for a change.
	pollInterval = 250 * time.Millisecond
	// unavailableMargin is added to keystone_timeout for a cold login while
	// Keystone is down: not a tight wall-clock bound, it only catches a
	// token server that hangs instead of answering 503.
	unavailableMargin = 10 * time.Second
	// accessLogWait bounds waiting for Keystone's request lines: wsgiref
	// writes a request's line after it has answered it.
	accessLogWait = 5 * time.Second
	// accessLogSettle is how long the access log is given after the
	// expected lines arrived, so that unexpected extra lines are seen too.
	accessLogSettle = 500 * time.Millisecond

	// The sizes of the call-count phases.
	sequentialRequests  = 1000
	concurrentRequests  = 64
	badPasswordRequests = 300
)

// The backoff configuration given to the token servers, and the Keystone
// lockout it must stay under (ops/test-keystone.sh sets
// lockout_failure_attempts 5 and lockout_duration 1800).
const (
	backoffFree             = 3
	backoffMax              = 5 * time.Minute
	lockoutAttempts         = 5
	keystoneLockoutFailures = 5
)

// The Keystone objects the test creates.
const (
	adminProject = "registry-admins"
	adminRole    = "registry-admin"
)

// keystoneUsers are created in Keystone, each with a random password:
// kuser1 and kuser2 drive the clients and the account changes, kadmin holds
// adminRole on adminProject, kseq, kconc and kbad are the call-count phases'
// users, and kcold logs in for the first time while Keystone is down.
var keystoneUsers = []string{"kuser1", "kuser2", "kadmin", "kseq", "kconc", "kbad", "kcold"}

// keystone is the test's throwaway Keystone and the IDs of the users it
// created.
type keystone struct {
	*testrig.Keystone
	userIDs map[string]string
}

// startKeystone starts a throwaway Keystone on a free loopback port; the
// test's cleanup stops it by its PID.
func startKeystone(t *testing.T) *keystone {
	t.Helper()
	needTool(t, "keystone-manage", "keystone-wsgi-public")
	k, err := testrig.StartKeystone(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		k.Stop()
		if t.Failed() {
			t.Logf("keystone logs:\n%s", k.Tail())
		}
	})
	return &keystone{Keystone: k, userIDs: map[string]string{}}
}

// login is the status of a password login straight to Keystone, unscoped.
func (k *keystone) login(t testing.TB, user, password string) int {
	t.Helper()
	status, err := k.Login(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// create makes one user, project or role and returns its ID.
func (k *keystone) create(t testing.TB, kind, name string, fields map[string]any) string {
	t.Helper()
	id, err := k.Create(kind, name, fields)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// updateUser PATCHes user's fields, e.g. {"enabled": false}.
func (k *keystone) updateUser(t testing.TB, user string, fields map[string]any) {
	t.Helper()
	if err := k.UpdateUser(k.userIDs[user], fields); err != nil {
		t.Fatal(err)
	}
}

// populate creates keystoneUsers, each with a new random password stored
// in passwords, and gives kadmin adminRole on adminProject.
func (k *keystone) populate(t testing.TB, passwords map[string]string) {
	t.Helper()
	for _, u := range keystoneUsers {
		passwords[u] = testrig.RandomHex(12)
		k.userIDs[u] = k.create(t, "users", u, map[string]any{
			"domain_id": "default", "enabled": true, "password": passwords[u],
		})
	}
	project := k.create(t, "projects", adminProject, map[string]any{"domain_id": "default"})
	role := k.create(t, "roles", adminRole, nil)
	if err := k.Assign(project, k.userIDs["kadmin"], role); err != nil {
		t.Fatal(err)
	}
}

// authPosts counts the password logins Keystone has logged.
func (k *keystone) authPosts(t testing.TB) int {
	t.Helper()
	n, err := k.AuthPosts()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startKeystoneEnv starts a registry and two token servers that check
// passwords against k, with the same signing key and service:
//   - e, the registry's realm, with the default cache_ttl;
//   - short, with cache_ttl shortCacheTTL, for direct token requests only.
//
// Both share e's passwords map, so a password changed for one is changed
// for the other.
func startKeystoneEnv(t *testing.T, k *keystone) (e, short *env) {
	t.Helper()
	needTool(t, "openssl")
	e, err := newEnv()
	if err != nil {
		t.Fatalf("laying out the daemons: %v", err)
	}
	s := *e
	short = &s
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("token server log (tail):\n%s", e.token.Tail())
			t.Logf("short-TTL token server log (tail):\n%s", short.token.Tail())
			t.Logf("registry log (tail):\n%s", e.registry.Tail())
		}
		if short.token != nil {
			short.token.Stop()
		}
		e.stop()
		os.RemoveAll(e.dir)
	})
	if short.tokenAddr, err = testrig.FreeAddr(); err != nil {
		t.Fatal(err)
	}

	// demo-config.sh writes a users-file configuration: keep everything
	// but the backend.
	if err := testrig.EditConf(e.tokenConf(), e.tokenConf(), []string{"auth_backend", "users_file"},
		"log_format json",
		"reserved_namespace platform",
		"auth_backend keystone",
		"keystone_url "+k.URL,
		"keystone_timeout "+ksTimeout.String(),
		"admin_role "+adminRole,
		"admin_project "+adminProject,
		"backoff_free "+strconv.Itoa(backoffFree),
		"backoff_max "+backoffMax.String(),
		"keystone_lockout_attempts "+strconv.Itoa(lockoutAttempts),
	); err != nil {
		t.Fatal(err)
	}
	shortConf := filepath.Join(e.dir, "stx-token-server-short.conf")
	if err := testrig.EditConf(e.tokenConf(), shortConf, []string{"listen"},
		"listen "+short.tokenAddr, "cache_ttl "+shortCacheTTL.String()); err != nil {
		t.Fatal(err)
	}

	if err := e.start(); err != nil {
		t.Fatalf("starting the daemons: %v", err)
	}
	short.token, err = testrig.StartDaemon(bin.TokenServer, shortConf, filepath.Join(e.dir, "token-short.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := short.waitHealthy(short.tokenAddr, short.token); err != nil {
		t.Fatalf("short-TTL stx-token-server: %v\nlog:\n%s", err, short.token.Tail())
	}
	return e, short
}

// tokenAttempt is tokenGet for goroutines and other clients: a transport
// error is returned, not fatal.
func (e *env) tokenAttempt(c *http.Client, user, password string, scopes ...string) (reply, error) {
	q := url.Values{"service": {e.service()}, "account": {user}, "client_id": {"e2e"}}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	req, err := http.NewRequest(http.MethodGet, e.realm()+"?"+q.Encode(), nil)
	if err != nil {
		return reply{}, err
	}
	req.SetBasicAuth(user, password)
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	return reply{status: resp.StatusCode, header: resp.Header, body: body}, err
}

// getPath sends GET https://TOKEN_SERVER+path.
func (e *env) getPath(t testing.TB, path string) reply {
	t.Helper()
	return e.do(t, newRequest(t, http.MethodGet, "https://"+e.tokenAddr+path, nil))
}

// metric sums the samples of the named metric on the token server whose
// labels include every one of labels, e.g. `backend="keystone"`.
func (e *env) metric(t testing.TB, name string, labels ...string) int {
	t.Helper()
	r := e.getPath(t, "/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics: status %d: %s", r.status, r.body)
	}
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metric, lbls, _ := strings.Cut(series, "{")
		if metric != name || !allContained(lbls, labels) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("GET /metrics: %q: %v", line, err)
		}
		sum += v
	}
	return int(sum)
}

func allContained(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// postsPerLogin is how many POST /v3/auth/tokens one successful Keystone
// call of the token server makes with admin_role set: the password login,
// then its rescope to admin_project (token/keystone.go). A refused password
// is one POST.
const postsPerLogin = 2

// callCount is how many Keystone calls the token server counted, by
// result, and how many POST /v3/auth/tokens Keystone logged.
type callCount struct{ success, failed, log int }

// calls is the number of calls that reached Keystone, by the metrics.
func (c callCount) calls() int { return c.success + c.failed }

// wantLog is how many POSTs Keystone must have logged for c's calls.
func (c callCount) wantLog() int { return c.success*postsPerLogin + c.failed }

func (c callCount) String() string {
	return fmt.Sprintf("%d (%d succeeded, %d failed) by the token server's metrics; %d POST /v3/auth/tokens in Keystone's log, %d expected from the metrics",
		c.calls(), c.success, c.failed, c.log, c.wantLog())
}

// mark reads both counters at the start of a phase, after giving the
// access log time to receive the lines of earlier requests.
func (k *keystone) mark(t testing.TB, e *env) callCount {
	t.Helper()
	time.Sleep(accessLogSettle)
	return k.calls(t, e)
}

// calls reads both counters now.
func (k *keystone) calls(t testing.TB, e *env) callCount {
	t.Helper()
	all := e.metric(t, "stx_backend_calls_total", `backend="keystone"`)
	ok := e.metric(t, "stx_backend_calls_total", `backend="keystone"`, `result="success"`)
	return callCount{success: ok, failed: all - ok, log: k.authPosts(t)}
}

// callsSince returns the calls made since mark, giving Keystone's log time
// to catch up with the metrics: wsgiref logs a request after answering it.
func (k *keystone) callsSince(t testing.TB, e *env, mark callCount) callCount {
	t.Helper()
	now := k.calls(t, e)
	c := callCount{success: now.success - mark.success, failed: now.failed - mark.failed}
	deadline := time.Now().Add(accessLogWait)
	for k.authPosts(t)-mark.log < c.wantLog() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(accessLogSettle)
	c.log = k.authPosts(t) - mark.log
	return c
}

// fromAddress returns a copy of c whose connections come from the
// loopback address ip (e.g. 127.0.0.2), so that the token server's
// per-address backoff for it does not hold the rest of the test.
func fromAddress(t testing.TB, c *http.Client, ip string) *http.Client {
	t.Helper()
	tr := c.Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: httpTimeout}
	tr.DialContext = d.DialContext
	cc := *c
	cc.Transport = tr
	return &cc
}

// TestKeystone runs both daemons against a real Keystone: real clients log
// in as Keystone users, a Keystone role makes an admin, account changes in
// Keystone reach the registry after the cache TTL, the credential cache,
// the single flight and the backoff bound the calls Keystone sees (counted
// by the token server and by Keystone itself), and a Keystone outage
// leaves recently verified users working.
func TestKeystone(t *testing.T) {
	k := startKeystone(t)
	passwords := map[string]string{}
	k.populate(t, passwords)
	e, short := startKeystoneEnv(t, k)
	for u, p := range passwords {
		e.passwords[u] = p // short shares the map
	}

	t.Run("Ready", func(t *testing.T) {
		for _, x := range []*env{e, short} {
			if r := x.getPath(t, "/readyz"); r.status != http.StatusOK {
				t.Errorf("token server %s: GET /readyz with Keystone up: status %d: %s", x.tokenAddr, r.status, r.body)
			}
		}
	})
	t.Run("Clients", func(t *testing.T) { testKeystoneClients(t, e) })
	t.Run("Namespaces", func(t *testing.T) { testKeystoneNamespaces(t, e) })
	t.Run("SequentialCalls", func(t *testing.T) { testKeystoneSequential(t, k, e) })
	t.Run("ConcurrentCalls", func(t *testing.T) { testKeystoneConcurrent(t, k, e) })
	t.Run("BadPasswords", func(t *testing.T) { testKeystoneBadPasswords(t, k, e, short) })
	t.Run("AccountChanges", func(t *testing.T) { testKeystoneAccountChanges(t, k, short) })
	// Last: it stops Keystone.
	t.Run("KeystoneDown", func(t *testing.T) { testKeystoneDown(t, k, e) })
}

// testKeystoneClients: skopeo pushes and copies back as kuser1, podman logs
// in, pushes and pulls as kuser2, ctr pulls as kuser1.
func testKeystoneClients(t *testing.T, e *env) {
	h := newClientHome(t)
	im := newImage(t, "v1")
	e.mustPush(t, h, "kuser1", im, "kuser1/app:v1")
	dir, r := e.skopeoPull(t, h, "kuser1", "kuser1/app:v1")
	if r.err != nil {
		t.Fatalf("skopeo copy kuser1/app:v1 back as kuser1: %v\n%s", r.err, r.output)
	}
	digest, layers := layoutManifest(t, dir, "pulled")
	if digest != im.Manifest.Digest || !slices.Equal(layers, im.LayerDigests()) {
		t.Errorf("skopeo pulled %s %v, pushed %s %v", digest, layers, im.Manifest.Digest, im.LayerDigests())
	}

	ph := newClientHome(t)
	ref := e.registryAddr + "/kuser2/podman:v1"
	mustOK(t, ph.podmanInput(t, e.passwords["kuser2"]+"\n", "login", "--cert-dir", e.certDir(), "-u", "kuser2", "--password-stdin", e.registryAddr), "podman login as kuser2")
	pim := newImage(t, "v1")
	id := lastLine(mustOK(t, ph.podman(t, "pull", "--signature-policy", ph.policy, pim.Ref()), "podman pull "+pim.Ref()))
	mustOK(t, ph.podman(t, "tag", id, ref), "podman tag")
	digestFile := filepath.Join(ph.dir, "digest")
	mustOK(t, ph.podman(t, "push", "--cert-dir", e.certDir(), "--digestfile", digestFile, ref), "podman push as kuser2")
	pushed, err := os.ReadFile(digestFile)
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, ph.podman(t, "rmi", "--force", "--all"), "podman rmi")
	mustOK(t, ph.podman(t, "pull", "--cert-dir", e.certDir(), "--signature-policy", ph.policy, ref), "podman pull as kuser2")
	out := mustOK(t, ph.podman(t, "image", "inspect", "--format", "{{.ID}} {{.Digest}}", ref), "podman image inspect")
	if got, want := lastLine(out), id+" "+strings.TrimSpace(string(pushed)); got != want {
		t.Errorf("podman pulled %q (ID digest), pushed %q", got, want)
	}

	c := startContainerd(t)
	cref := e.registryAddr + "/kuser1/app:v1"
	if r := c.ctr(t, "images", "pull", "--snapshotter", "native", "--user", e.creds("kuser1"), "--hosts-dir", e.hostsDir(t), cref); r.err != nil {
		t.Fatalf("ctr images pull %s as kuser1: %v\n%s", cref, r.err, r.output)
	}
	if out := c.ctr(t, "images", "ls"); out.err != nil || !strings.Contains(out.output, im.Manifest.Digest) {
		t.Errorf("ctr images ls does not list %s at %s: %v\n%s", cref, im.Manifest.Digest, out.err, out.output)
	}
}

// testKeystoneNamespaces: users stay in their own namespace; kadmin, an
// admin only through its Keystone role (admin_user does not name it),
// pushes into a reserved namespace and another user's, and reads the
// catalog, which kuser1 may not.
func testKeystoneNamespaces(t *testing.T, e *env) {
	h := newClientHome(t)
	im := newImage(t, "v1")
	for _, c := range []struct {
		user, repo string
		ok         bool
	}{
		{"kuser1", "kuser2/x:v1", false},
		{"kuser1", "platform/kx:v1", false},
		{"kadmin", "platform/kx:v1", true},
		{"kadmin", "kuser1/fromadmin:v1", true},
	} {
		r := e.skopeoPush(t, h, c.user, im, c.repo)
		if (r.err == nil) != c.ok {
			t.Errorf("skopeo push %s as %s: err %v, want success %v\n%s", c.repo, c.user, r.err, c.ok, r.output)
		}
		name, tag, _ := strings.Cut(c.repo, ":")
		tok := e.tokenFor(t, "kadmin", "repository:"+name+":pull")
		got := e.api(t, http.MethodHead, "/v2/"+name+"/manifests/"+tag, tok, nil, acceptManifest)
		if ok := got.status == http.StatusOK; ok != c.ok {
			t.Errorf("after %s pushed %s: HEAD manifest as kadmin: status %d", c.user, c.repo, got.status)
		}
	}

	// What the token server grants, seen in the tokens themselves.
	for _, c := range []struct {
		user, repo string
		want       []string
	}{
		{"kuser1", "kuser1/app", []string{"pull", "push"}},
		{"kuser1", "kuser2/x", nil},
		{"kuser1", "platform/kx", nil},
		{"kadmin", "platform/kx", []string{"pull", "push"}},
		{"kadmin", "kuser1/app", []string{"pull", "push"}},
	} {
		tok := e.tokenFor(t, c.user, "repository:"+c.repo+":pull,push")
		if got := granted(t, tok, "repository", c.repo); !slices.Equal(got, c.want) {
			t.Errorf("token for %s on %s grants %v, want %v", c.user, c.repo, got, c.want)
		}
	}

	for _, c := range []struct {
		user   string
		status int
	}{{"kadmin", http.StatusOK}, {"kuser1", http.StatusUnauthorized}} {
		tok := e.tokenFor(t, c.user, "registry:catalog:*")
		r := e.api(t, http.MethodGet, "/v2/_catalog", tok, nil, nil)
		if r.status != c.status {
			t.Errorf("GET /v2/_catalog as %s: status %d, want %d: %s", c.user, r.status, c.status, r.body)
		}
		if c.status == http.StatusOK && !bytes.Contains(r.body, []byte(`"kuser1/app"`)) {
			t.Errorf("GET /v2/_catalog as kadmin does not list kuser1/app: %s", r.body)
		}
	}
}

// testKeystoneSequential: a thousand token requests for one user cost one
// Keystone call.
func testKeystoneSequential(t *testing.T, k *keystone, e *env) {
	hits := e.metric(t, "stx_credential_cache_hits_total")
	mark := k.mark(t, e)
	for i := range sequentialRequests {
		r, err := e.tokenAttempt(e.client, "kseq", e.passwords["kseq"], "repository:kseq/app:pull")
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("token request %d for kseq: status %d, %v: %s", i+1, r.status, err, r.body)
		}
	}
	got := k.callsSince(t, e, mark)
	t.Logf("%d sequential token requests for kseq: Keystone calls %v", sequentialRequests, got)
	if got.calls() != 1 || got.success != 1 || got.log != got.wantLog() {
		t.Errorf("%d sequential token requests for one user: Keystone calls %v; want exactly 1, logged by Keystone too", sequentialRequests, got)
	}
	if h := e.metric(t, "stx_credential_cache_hits_total") - hits; h < sequentialRequests-1 {
		t.Errorf("stx_credential_cache_hits_total grew by %d, want at least %d", h, sequentialRequests-1)
	}
}

// testKeystoneConcurrent: 64 concurrent requests for a user nobody has
// verified yet cost one Keystone call.
func testKeystoneConcurrent(t *testing.T, k *keystone, e *env) {
	mark := k.mark(t, e)
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		statuses = make([]int, concurrentRequests)
		errs     = make([]error, concurrentRequests)
	)
	for i := range concurrentRequests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := e.tokenAttempt(e.client, "kconc", e.passwords["kconc"], "repository:kconc/app:pull")
			statuses[i], errs[i] = r.status, err
		}()
	}
	close(start)
	wg.Wait()
	for i := range concurrentRequests {
		if errs[i] != nil || statuses[i] != http.StatusOK {
			t.Errorf("concurrent token request %d for kconc: status %d, %v", i, statuses[i], errs[i])
		}
	}
	got := k.callsSince(t, e, mark)
	t.Logf("%d concurrent cold token requests for kconc: Keystone calls %v", concurrentRequests, got)
	if got.calls() != 1 || got.success != 1 || got.log != got.wantLog() {
		t.Errorf("%d concurrent cold token requests for one user: Keystone calls %v; want exactly 1, logged by Keystone too", concurrentRequests, got)
	}
}

// testKeystoneBadPasswords: 300 guesses for one user from one address
// reach Keystone at most as often as the backoff policy allows, fewer
// times than Keystone's lockout; the client sees 401 then 429 with
// Retry-After, always JSON; and the user is not locked out in Keystone.
// The guesses come from 127.0.0.2 so that the address's hold does not
// touch the rest of the test.
func testKeystoneBadPasswords(t *testing.T, k *keystone, e, short *env) {
	c := fromAddress(t, e.client, "127.0.0.2")
	mark := k.mark(t, e)
	counts := map[int]int{}
	var sawRetryAfter bool
	first := time.Now()
	for i := range badPasswordRequests {
		// A different guess each time, as a real attacker sends: a repeat
		// of the same one is answered as a duplicate without a call.
		r, err := e.tokenAttempt(c, "kbad", fmt.Sprintf("wrong-%d-%s", i, e.passwords["kbad"]), "repository:kbad/app:pull")
		if err != nil {
			t.Fatalf("bad-password request %d: %v", i+1, err)
		}
		counts[r.status]++
		if _, ok := jsonError(r); !ok {
			t.Errorf("bad-password request %d: status %d, not a JSON error: %q", i+1, r.status, r.body)
		}
		switch r.status {
		case http.StatusUnauthorized:
			if sawRetryAfter {
				// A 401 after a 429 is a call let through after a hold.
				t.Logf("bad-password request %d: 401 after a 429", i+1)
			}
		case http.StatusTooManyRequests:
			// The Keystone lockout guard's refusal has no Retry-After:
			// waiting does not end it; its message names unlock.
			held := bytes.Contains(r.body, []byte("stx-token-server unlock"))
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			if !held && (err != nil || ra <= 0) {
				t.Errorf("bad-password request %d: 429 with Retry-After %q, want a positive number of seconds", i+1, r.header.Get("Retry-After"))
			}
			sawRetryAfter = true
		default:
			t.Fatalf("bad-password request %d: status %d, want 401 or 429: %s", i+1, r.status, r.body)
		}
		if i == 0 && r.status != http.StatusUnauthorized {
			t.Errorf("first bad-password request: status %d, want 401", r.status)
		}
	}
	elapsed := time.Since(first)
	got := k.callsSince(t, e, mark)
	bound := authn.MaxBackendFailures(authn.BackoffConfig{Free: backoffFree, Max: backoffMax,
		LockoutAttempts: lockoutAttempts}, badPasswordRequests, elapsed)
	t.Logf("%d bad-password requests for kbad in %v: statuses %v; Keystone calls %v; the backoff allows at most %d",
		badPasswordRequests, elapsed.Round(time.Millisecond), counts, got, bound)
	if got.calls() > bound || got.success != 0 || got.log != got.wantLog() {
		t.Errorf("bad-password Keystone calls %v; want none succeeded, at most %d, logged by Keystone too", got, bound)
	}
	if got.calls() < 1 {
		t.Errorf("no bad-password request reached Keystone: %v", got)
	}
	if bound >= keystoneLockoutFailures {
		t.Errorf("the configured backoff allows %d calls, Keystone locks out at %d: the test's configuration is wrong", bound, keystoneLockoutFailures)
	}
	if counts[http.StatusTooManyRequests] == 0 {
		t.Errorf("no bad-password request was answered 429: %v", counts)
	}

	// Not locked out: the right password works through a token server that
	// never saw kbad (a cold cache and no hold), and straight at Keystone.
	if r, _ := short.tokenGet(t, "kbad", e.passwords["kbad"], "repository:kbad/app:pull"); r.status != http.StatusOK {
		t.Errorf("kbad with the right password after the guesses, cold cache: status %d, want 200: %s", r.status, r.body)
	}
	if status := k.login(t, "kbad", e.passwords["kbad"]); status != http.StatusCreated {
		t.Errorf("kbad login straight at Keystone after the guesses: status %d, want 201 (locked out?)", status)
	}
}

// testKeystoneAccountChanges: a disabled user and an old password stop
// working once the short cache TTL has passed; the new password works.
func testKeystoneAccountChanges(t *testing.T, k *keystone, short *env) {
	scope := "repository:kuser2/app:pull"
	if r, _ := short.tokenGet(t, "kuser2", short.passwords["kuser2"], scope); r.status != http.StatusOK {
		t.Fatalf("kuser2 before the change: status %d: %s", r.status, r.body)
	}
	k.updateUser(t, "kuser2", map[string]any{"enabled": false})
	waitRefused(t, short, "kuser2", short.passwords["kuser2"], scope)

	scope = "repository:kuser1/app:pull"
	old := short.passwords["kuser1"]
	if r, _ := short.tokenGet(t, "kuser1", old, scope); r.status != http.StatusOK {
		t.Fatalf("kuser1 before the change: status %d: %s", r.status, r.body)
	}
	newPassword := testrig.RandomHex(12)
	k.updateUser(t, "kuser1", map[string]any{"password": newPassword})
	short.passwords["kuser1"] = newPassword
	waitRefused(t, short, "kuser1", old, scope)
	if r, _ := short.tokenGet(t, "kuser1", newPassword, scope); r.status != http.StatusOK {
		t.Errorf("kuser1 with the new password: status %d, want 200: %s", r.status, r.body)
	}
}

// waitRefused polls until the token server answers 401 for user and
// password, at most accountChangeWait; until then only 200 is acceptable.
func waitRefused(t *testing.T, e *env, user, password, scope string) {
	t.Helper()
	start := time.Now()
	for {
		r, _ := e.tokenGet(t, user, password, scope)
		switch r.status {
		case http.StatusUnauthorized:
			if _, ok := jsonError(r); !ok {
				t.Errorf("%s refused without a JSON error: %q", user, r.body)
			}
			t.Logf("%s refused %v after the change in Keystone (cache_ttl %v)", user, time.Since(start).Round(time.Millisecond), shortCacheTTL)
			return
		case http.StatusOK:
		default:
			t.Fatalf("%s after the change in Keystone: status %d, want 200 then 401: %s", user, r.status, r.body)
		}
		if time.Since(start) > accountChangeWait {
			t.Fatalf("%s still gets tokens %v after the change in Keystone (cache_ttl %v)", user, accountChangeWait, shortCacheTTL)
		}
		time.Sleep(pollInterval)
	}
}

// testKeystoneDown stops Keystone: a user verified within the TTL keeps
// getting tokens, /readyz turns 503, and a user nobody has verified gets a
// JSON 503 in about keystone_timeout, not a hang.
func testKeystoneDown(t *testing.T, k *keystone, e *env) {
	scope := "repository:kseq/app:pull"
	if r, _ := e.tokenGet(t, "kseq", e.passwords["kseq"], scope); r.status != http.StatusOK {
		t.Fatalf("kseq with Keystone up: status %d: %s", r.status, r.body)
	}
	k.Stop()

	if r, _ := e.tokenGet(t, "kseq", e.passwords["kseq"], scope); r.status != http.StatusOK {
		t.Errorf("kseq, verified within the TTL, with Keystone down: status %d, want 200: %s", r.status, r.body)
	}

	deadline := time.Now().Add(ksTimeout + unavailableMargin)
	for {
		r := e.getPath(t, "/readyz")
		if r.status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("GET /readyz with Keystone down: status %d, want 503: %s", r.status, r.body)
			break
		}
		time.Sleep(pollInterval)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), ksTimeout+unavailableMargin)
	defer cancel()
	q := url.Values{"service": {e.service()}, "scope": {"repository:kcold/app:pull"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.realm()+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("kcold", e.passwords["kcold"])
	r := e.do(t, req)
	took := time.Since(start)
	if msg, ok := jsonError(r); r.status != http.StatusServiceUnavailable || !ok {
		t.Errorf("kcold with Keystone down: status %d (%q), want a JSON 503: %s", r.status, msg, r.body)
	}
	t.Logf("kcold with Keystone down: status %d in %v (keystone_timeout %v)", r.status, took.Round(time.Millisecond), ksTimeout)
}
