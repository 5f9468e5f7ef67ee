package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"stx-registry/shared/testrig"

	"github.com/distribution/distribution/v3/registry/auth/token"
)

// Bounds of the rotation tests.
const (
	// loadWorkers is how many clients pull throughout a rotation.
	loadWorkers = 4
	// loadMaxIterations bounds each worker's loop by count.
	loadMaxIterations = 100_000
	// loadMaxTime bounds each worker's loop by time.
	loadMaxTime = 3 * time.Minute
	// rotationWait bounds waiting for one rotation step to take effect.
	rotationWait = 20 * time.Second
	// rotationPoll is the pause between looks at a step's effect.
	rotationPoll = 50 * time.Millisecond
	// maxFailureNotes is how many failed requests are described in full.
	maxFailureNotes = 10
)

// TestRotationSigningKey runs the documented signing-key rotation with
// pulls going on throughout, and asserts that not one of them fails:
//
//  1. add the new certificate to the registry's token_certificate;
//  2. list the new signing_key first, the old second, and SIGHUP the
//     token server;
//  3. wait until no token signed by the old key is in use;
//  4. remove the old certificate from token_certificate.
func TestRotationSigningKey(t *testing.T) {
	e := startRotationEnv(t)
	const name = "user1/rotation"
	e.mustPush(t, newClientHome(t), "user1", newImage(t, "v1"), name+":v1")

	oldTok := e.tokenFor(t, "user1", "repository:"+name+":pull")
	oldKid := tokenKid(t, oldTok)
	issuer := decodeClaims(t, oldTok).Issuer
	if r := e.api(t, http.MethodGet, "/v2/"+name+"/manifests/v1", oldTok, nil, acceptManifests); r.status != http.StatusOK {
		t.Fatalf("pull before the rotation: status %d: %s", r.status, r.body)
	}

	// A new key and its self-signed certificate, as an operator would
	// make them with openssl.
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	newKid := token.GetJWKThumbprint(newKey.Public())
	newKeyFile := filepath.Join(e.dir, "token-new.key")
	replaceFile(t, newKeyFile, pkcs8PEM(t, newKey))
	newCert := selfSignedPEM(t, newKey, "stx-token-server signing key 2")
	bundle := filepath.Join(e.dir, "token.pem")
	oldCert, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	// A token signed by the new key, made here: the registry must accept
	// it once step 1 is done, before the token server signs with it.
	newKeyTok := signES256(t, newKey, newKid, map[string]any{
		"iss": issuer, "sub": "user1", "aud": e.service(),
		"iat": time.Now().Unix(), "nbf": time.Now().Add(-10 * time.Second).Unix(),
		"exp": time.Now().Add(5 * time.Minute).Unix(), "jti": testrig.RandomHex(16),
		"access": []access{{Type: "repository", Name: name, Actions: []string{"pull"}}},
	})
	if r := e.api(t, http.MethodGet, "/v2/"+name+"/manifests/v1", newKeyTok, nil, acceptManifests); r.status != http.StatusUnauthorized {
		t.Fatalf("a new-key token before step 1: status %d, want 401", r.status)
	}

	load := startPullLoad(t, e, name, "v1", keepAliveClients(t, e, loadWorkers))

	// 1. Add the new certificate; the registry notices the change on its
	// own (at most a second later) and keeps serving meanwhile.
	replaceFile(t, bundle, append(append([]byte{}, oldCert...), newCert...))
	waitFor(t, "the registry to accept a token signed by the new key", func() bool {
		return e.api(t, http.MethodGet, "/v2/"+name+"/manifests/v1", newKeyTok, nil, acceptManifests).status == http.StatusOK
	})

	// 2. The new key signs, the old one is still listed; SIGHUP.
	conf, err := os.ReadFile(e.tokenConf())
	if err != nil {
		t.Fatal(err)
	}
	oldLine := "signing_key " + filepath.Join(e.dir, "token.key")
	if !strings.Contains(string(conf), oldLine+"\n") {
		t.Fatalf("%s has no line %q", e.tokenConf(), oldLine)
	}
	replaceFile(t, e.tokenConf(), []byte(strings.Replace(string(conf), oldLine+"\n",
		"signing_key "+newKeyFile+"\n"+oldLine+"\n", 1)))
	if err := e.token.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the token server to sign with the new key", func() bool {
		return tokenKid(t, e.tokenFor(t, "user1", "repository:"+name+":pull")) == newKid
	})

	// 3. Wait until tokens signed by the old key are no longer used. In
	// production that is token_ttl plus distribution's 60 s leeway after
	// step 2, since a client may keep a token until it expires. Here every
	// iteration takes a fresh token, so two more iterations of each
	// worker are enough.
	load.waitIterations(t, 2)

	// 4. Remove the old certificate.
	replaceFile(t, bundle, newCert)
	waitFor(t, "the registry to refuse the old key", func() bool {
		return e.api(t, http.MethodGet, "/v2/"+name+"/manifests/v1", oldTok, nil, acceptManifests).status == http.StatusUnauthorized
	})
	load.waitIterations(t, 2)

	load.stop(t)
	if kid := tokenKid(t, e.tokenFor(t, "user1", "repository:"+name+":pull")); kid != newKid {
		t.Errorf("token kid %q after the rotation, want the new key's %q (old %q)", kid, newKid, oldKid)
	}
	if r := e.api(t, http.MethodGet, "/v2/"+name+"/manifests/v1", oldTok, nil, acceptManifests); r.status != http.StatusUnauthorized {
		t.Errorf("a token signed by the removed key: status %d, want 401", r.status)
	}
	// SIGHUP re-reads the bundle even when it has not changed.
	mark := e.registry.LogSize()
	if err := e.registry.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the registry to re-read token_certificate on SIGHUP", func() bool {
		return strings.Contains(string(e.registry.LogSince(mark)), "token_certificate loaded")
	})
	e.checkHealthy(t)
	for _, l := range []string{"token_certificate loaded", "certificates=2", "certificates=1"} {
		if !strings.Contains(string(e.registry.Log()), l) {
			t.Errorf("registry log has no %q", l)
		}
	}
}

// TestRotationTLSCertificate replaces the server certificate and key both
// daemons use while clients keep making requests, some on a new connection
// each time, some on kept-alive ones: not one request may fail, and new
// connections get the new certificate.
func TestRotationTLSCertificate(t *testing.T) {
	e := startRotationEnv(t)
	const name = "user1/tlsrotation"
	e.mustPush(t, newClientHome(t), "user1", newImage(t, "v1"), name+":v1")
	oldSerials := map[string]*big.Int{}
	for _, addr := range []string{e.tokenAddr, e.registryAddr} {
		oldSerials[addr] = servedSerial(t, e, addr)
	}

	clients := append(keepAliveClients(t, e, loadWorkers/2), newConnClients(t, e, loadWorkers-loadWorkers/2)...)
	load := startPullLoad(t, e, name, "v1", clients)
	load.waitIterations(t, 2)

	// A new key and a certificate from the same CA, as demo-config.sh
	// makes them; key first, then certificate, each by rename. The daemons
	// may see the new key with the old certificate for a moment: that
	// pair is refused, logged, and the old one kept until the
	// certificate follows.
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, serial := issueServerCert(t, e, newKey)
	replaceFile(t, filepath.Join(e.dir, "server.key"), pkcs8PEM(t, newKey))
	replaceFile(t, filepath.Join(e.dir, "server.pem"), certPEM)

	for _, addr := range []string{e.tokenAddr, e.registryAddr} {
		waitFor(t, "new connections to "+addr+" to get the new certificate", func() bool {
			return servedSerial(t, e, addr).Cmp(serial) == 0
		})
	}
	load.waitIterations(t, 2)
	load.stop(t)
	for addr, old := range oldSerials {
		if got := servedSerial(t, e, addr); got.Cmp(serial) != 0 || got.Cmp(old) == 0 {
			t.Errorf("%s serves serial %x, want the new %x (old %x)", addr, got, serial, old)
		}
	}
	e.checkHealthy(t)
}

// startRotationEnv starts a pair of daemons of the test's own, with user1,
// so that the test may change their files; they stop at cleanup.
func startRotationEnv(t *testing.T) *env {
	t.Helper()
	needTool(t, "openssl", "skopeo")
	e, err := newEnv()
	if err != nil {
		t.Fatalf("setting up the daemons: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("token server log (tail):\n%s", e.token.Tail())
			t.Logf("registry log (tail):\n%s", e.registry.Tail())
		}
		e.stop()
		os.RemoveAll(e.dir)
	})
	if err := e.passwd("user1"); err != nil {
		t.Fatal(err)
	}
	if err := e.start(); err != nil {
		t.Fatalf("starting the daemons: %v", err)
	}
	return e
}

// acceptManifests is what a pulling client accepts.
var acceptManifests = http.Header{"Accept": {mediaManifest + ", application/vnd.docker.distribution.manifest.v2+json"}}

// pullLoad is loadWorkers clients, each looping: get a fresh token (GET
// realm with Basic auth, pull scope), then GET the manifest with it.
type pullLoad struct {
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	iterations []atomic.Int64 // per worker, completed loops
	requests   atomic.Int64
	failures   atomic.Int64
	mu         sync.Mutex
	notes      []string // the first maxFailureNotes failures
}

func startPullLoad(t *testing.T, e *env, name, tag string, clients []*http.Client) *pullLoad {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), loadMaxTime)
	l := &pullLoad{cancel: cancel, iterations: make([]atomic.Int64, len(clients))}
	t.Cleanup(l.halt)
	for i, c := range clients {
		l.wg.Go(func() {
			for n := 0; n < loadMaxIterations && ctx.Err() == nil; n++ {
				if err := pullOnce(ctx, e, c, name, tag); err != nil && ctx.Err() == nil {
					l.fail(fmt.Sprintf("worker %d iteration %d: %v", i, n, err))
				}
				l.requests.Add(2)
				l.iterations[i].Add(1)
			}
		})
	}
	return l
}

func (l *pullLoad) fail(note string) {
	l.failures.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.notes) < maxFailureNotes {
		l.notes = append(l.notes, note)
	}
}

// waitIterations waits until every worker has completed n more loops.
func (l *pullLoad) waitIterations(t *testing.T, n int64) {
	t.Helper()
	want := make([]int64, len(l.iterations))
	for i := range l.iterations {
		want[i] = l.iterations[i].Load() + n
	}
	waitFor(t, fmt.Sprintf("every worker to pull %d more times", n), func() bool {
		for i := range l.iterations {
			if l.iterations[i].Load() < want[i] {
				return false
			}
		}
		return true
	})
}

// halt stops the workers and waits for them.
func (l *pullLoad) halt() {
	l.cancel()
	l.wg.Wait()
}

// stop halts the load and asserts that it ran and that nothing failed.
func (l *pullLoad) stop(t *testing.T) {
	t.Helper()
	l.halt()
	t.Logf("%d requests by %d workers, %d failed", l.requests.Load(), len(l.iterations), l.failures.Load())
	if f := l.failures.Load(); f != 0 {
		t.Errorf("%d of %d requests failed during the rotation:\n%s", f, l.requests.Load(), strings.Join(l.notes, "\n"))
	}
	for i := range l.iterations {
		if l.iterations[i].Load() < 2 {
			t.Errorf("worker %d pulled only %d times", i, l.iterations[i].Load())
		}
	}
}

// pullOnce is one docker-like pull of a manifest: a token for the pull
// scope, then the manifest with it. Any answer but 200 is an error.
func pullOnce(ctx context.Context, e *env, c *http.Client, name, tag string) error {
	q := url.Values{"service": {e.service()}, "account": {"user1"}, "client_id": {"e2e-rotation"},
		"scope": {"repository:" + name + ":pull"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.realm()+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth("user1", e.passwords["user1"])
	body, err := send(c, req)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	var tr tokenReply
	if err := json.Unmarshal(body, &tr); err != nil || tr.Token == "" {
		return fmt.Errorf("token reply %q: %v", body, err)
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, "https://"+e.registryAddr+"/v2/"+name+"/manifests/"+tag, nil)
	if err != nil {
		return err
	}
	req.Header = acceptManifests.Clone()
	req.Header.Set("Authorization", "Bearer "+tr.Token)
	if _, err := send(c, req); err != nil {
		return fmt.Errorf("manifest (token kid %s): %w", kidOf(tr.Token), err)
	}
	return nil
}

// send does req and returns the body of a 200 answer; another status is
// an error.
func send(c *http.Client, req *http.Request) ([]byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	return body, nil
}

// keepAliveClients returns n clients that keep their connections.
func keepAliveClients(t *testing.T, e *env, n int) []*http.Client {
	t.Helper()
	var cs []*http.Client
	for range n {
		c, err := testrig.Client(e.caFile())
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

// newConnClients returns n clients that open a new connection, with a new
// TLS handshake, for every request.
func newConnClients(t *testing.T, e *env, n int) []*http.Client {
	t.Helper()
	cs := keepAliveClients(t, e, n)
	for _, c := range cs {
		c.Transport.(*http.Transport).DisableKeepAlives = true
	}
	return cs
}

// servedSerial is the serial of the certificate addr presents on a new
// connection.
func servedSerial(t *testing.T, e *env, addr string) *big.Int {
	t.Helper()
	pem, err := os.ReadFile(e.caFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: httpTimeout}, Config: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	ctx, cancel := context.WithTimeout(context.Background(), httpTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber
}

// issueServerCert signs a server certificate for key with the demo CA in
// e.dir, for the names demo-config.sh uses, and returns it with its serial.
func issueServerCert(t *testing.T, e *env, key crypto.Signer) ([]byte, *big.Int) {
	t.Helper()
	caCert := readPEMBlock(t, e.caFile(), "CERTIFICATE")
	ca, err := x509.ParseCertificate(caCert)
	if err != nil {
		t.Fatal(err)
	}
	caKeyDER := readPEMBlock(t, filepath.Join(e.dir, "ca.key"), "PRIVATE KEY")
	caKey, err := x509.ParsePKCS8PrivateKey(caKeyDER)
	if err != nil {
		t.Fatal(err)
	}
	serial := randomSerial(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), serial
}

// selfSignedPEM is a self-signed certificate for key, as a token signing
// certificate.
func selfSignedPEM(t *testing.T, key crypto.Signer, cn string) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func randomSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func pkcs8PEM(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// readPEMBlock returns the DER of the first block of type typ in path.
func readPEMBlock(t *testing.T, path, typ string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			t.Fatalf("%s: no %s block", path, typ)
		}
		if b.Type == typ {
			return b.Bytes
		}
	}
}

// replaceFile writes data to path as an operator should: a temporary file
// in the same directory, mode 0600, then rename(2).
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after rotationWait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(rotationWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", rotationWait, what)
		}
		time.Sleep(rotationPoll)
	}
}

// kidOf returns the kid in a JWT's header, or "" if there is none.
func kidOf(jwt string) string {
	h, _, _ := strings.Cut(jwt, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	var header struct {
		Kid string `json:"kid"`
	}
	if json.Unmarshal(raw, &header) != nil {
		return ""
	}
	return header.Kid
}

func tokenKid(t testing.TB, jwt string) string {
	t.Helper()
	kid := kidOf(jwt)
	if kid == "" {
		t.Fatalf("token header has no kid")
	}
	return kid
}

// signES256 makes a JWT with key, as the token server would: only for the
// check that the registry trusts a new key before the token server uses it.
func signES256(t *testing.T, key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	header, err := json.Marshal(map[string]string{"typ": "JWT", "alg": "ES256", "kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(body)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	return input + "." + enc.EncodeToString(sig)
}
