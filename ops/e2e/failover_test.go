package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"stx-registry/shared/testrig"
)

// The failover drill simulates two controllers on this machine, as SM runs
// them (FACTS §3):
//
//   - each controller has its own configuration files, PID files, logs and
//     mount point under its own directory;
//   - the floating management IP is failoverVIP on lo, added and removed by
//     the real ocf:heartbeat:IPaddr2 agent (it works on lo). Linux answers
//     for all of 127.0.0.0/8 on lo whether or not the address is added, so
//     the address moving is simulated; what the drill proves is the order
//     and that nothing depends on the address staying put;
//   - the DRBD filesystem is an ext4 image on a loop device (losetup),
//     mounted by the real ocf:heartbeat:Filesystem agent on the active side
//     only;
//   - both daemons are started, monitored and stopped only through
//     ops/ocf/stx-token-server and ops/ocf/stx-registry, with OCF_ROOT and
//     OCF_RESKEY_* exactly as SM passes them.
const (
	// failoverVIP is the simulated floating management IP.
	failoverVIP = "127.0.0.77"
	// fsImageBytes is the size of the sparse ext4 image standing in for
	// the DRBD device: room for the big layer three times over.
	fsImageBytes = 512 << 20
	// bigLayerBytes is the payload of the layer pushed while the daemons
	// are killed: large enough that the push is still running when the
	// first bytes reach the registry.
	bigLayerBytes = 96 << 20
	// agentTimeout bounds one OCF agent run; SM allows 15 s for start and
	// stop, the heartbeat agents get a little more.
	agentTimeout = 60 * time.Second
	// midPushWait bounds waiting for the big upload to reach the registry.
	midPushWait = 60 * time.Second
)

// OCF exit codes (ocf-returncodes).
const (
	ocfSuccess       = 0
	ocfErrGeneric    = 1
	ocfErrConfigured = 6
	ocfNotRunning    = 7
)

// heartbeatAgents is where Debian's resource-agents installs IPaddr2 and
// Filesystem; ocfRoot is OCF_ROOT.
const (
	ocfRoot         = "/usr/lib/ocf"
	heartbeatAgents = ocfRoot + "/resource.d/heartbeat"
)

// controller is one simulated controller: its files and its view of the
// shared DRBD device.
type controller struct {
	name string
	dir  string // configs, PID files, logs
	mnt  string // where the DRBD filesystem is mounted when active
}

func (c *controller) regConf() string { return filepath.Join(c.dir, "stx-registry.conf") }
func (c *controller) tokConf() string { return filepath.Join(c.dir, "stx-token-server.conf") }
func (c *controller) pidfile(d string) string {
	return filepath.Join(c.dir, "run", d+".pid")
}
func (c *controller) logfile(d string) string { return filepath.Join(c.dir, d+".log") }

// drill is the whole simulated cluster.
type drill struct {
	t      *testing.T
	base   string
	device string // /dev/loopN
	marker string // the Kubernetes marker file
	e      *env   // clients' view: addresses, CA, passwords
	a, b   *controller
}

// agentRun is one agent invocation's result.
type agentRun struct {
	rc  int
	out string
}

// agent runs an OCF agent action with params as OCF_RESKEY_*, as SM does.
func (d *drill) agent(path, instance, action string, params map[string]string) agentRun {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, action)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"OCF_ROOT=" + ocfRoot,
		"OCF_RESOURCE_INSTANCE=" + instance,
		"OCF_RESKEY_CRM_meta_timeout=15000",
		"HA_LOGFACILITY=none",
		"HA_LOGFILE=" + filepath.Join(d.base, "ocf.log"),
	}
	for k, v := range params {
		cmd.Env = append(cmd.Env, "OCF_RESKEY_"+k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		d.t.Fatalf("%s %s: no answer within %v\n%s", filepath.Base(path), action, agentTimeout, out)
	}
	rc := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		rc = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("%s %s: %v", path, action, err)
	}
	d.t.Logf("%s: %s %s: rc %d", instance, filepath.Base(path), action, rc)
	return agentRun{rc: rc, out: string(out)}
}

// daemonParams are the OCF_RESKEY_* of our agents on controller c.
func (d *drill) daemonParams(c *controller, daemon string) map[string]string {
	binary := filepath.Join(bin.Dir, daemon)
	conf := c.regConf()
	if daemon == "stx-token-server" {
		conf = c.tokConf()
	}
	return map[string]string{
		"binary":       binary,
		"config":       conf,
		"pidfile":      c.pidfile(daemon),
		"logfile":      c.logfile(daemon),
		"k8s_marker":   d.marker,
		"stop_timeout": "10",
	}
}

// ours runs ops/ocf/DAEMON ACTION on c.
func (d *drill) ours(c *controller, daemon, action string) agentRun {
	d.t.Helper()
	return d.agent(filepath.Join(moduleRoot, "ops", "ocf", daemon), c.name+"-"+daemon, action, d.daemonParams(c, daemon))
}

// ip runs ocf:heartbeat:IPaddr2 for the floating IP on c.
func (d *drill) ip(c *controller, action string) agentRun {
	d.t.Helper()
	return d.agent(filepath.Join(heartbeatAgents, "IPaddr2"), c.name+"-management-ip", action, map[string]string{
		"ip": failoverVIP, "cidr_netmask": "32", "nic": "lo",
	})
}

// fs runs ocf:heartbeat:Filesystem for the DRBD stand-in on c.
func (d *drill) fs(c *controller, action string) agentRun {
	d.t.Helper()
	return d.agent(filepath.Join(heartbeatAgents, "Filesystem"), c.name+"-dockerdistribution-fs", action, map[string]string{
		"device": d.device, "directory": c.mnt, "fstype": "ext4",
	})
}

// must fails the test unless r.rc is want.
func (d *drill) must(r agentRun, want int, what string) {
	d.t.Helper()
	if r.rc != want {
		d.t.Fatalf("%s: rc %d, want %d\n%s\n%s", what, r.rc, want, r.out, d.logs())
	}
}

// logs returns the tails of every daemon log, for failures.
func (d *drill) logs() string {
	var b strings.Builder
	for _, c := range []*controller{d.a, d.b} {
		for _, dm := range []string{"stx-token-server", "stx-registry"} {
			fmt.Fprintf(&b, "--- %s %s log (tail):\n%s\n", c.name, dm, testrig.TailFile(c.logfile(dm)))
		}
	}
	return b.String()
}

// activate brings c up in SM's order: floating IP, filesystem, token
// server, registry. It returns the time the first agent started.
func (d *drill) activate(c *controller, first bool) time.Time {
	d.t.Helper()
	start := time.Now()
	d.must(d.ip(c, "start"), ocfSuccess, c.name+": IPaddr2 start")
	d.must(d.fs(c, "start"), ocfSuccess, c.name+": Filesystem start")
	if first {
		// A new filesystem: the registry root must be 0700 and the token
		// server's state directory must exist on it.
		if err := os.Chmod(c.mnt, 0o700); err != nil {
			d.t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(c.mnt, "token-state"), 0o700); err != nil {
			d.t.Fatal(err)
		}
	}
	d.must(d.ours(c, "stx-token-server", "start"), ocfSuccess, c.name+": stx-token-server start")
	d.must(d.ours(c, "stx-registry", "start"), ocfSuccess, c.name+": stx-registry start")
	d.must(d.ours(c, "stx-token-server", "monitor"), ocfSuccess, c.name+": stx-token-server monitor")
	d.must(d.ours(c, "stx-registry", "monitor"), ocfSuccess, c.name+": stx-registry monitor")
	return start
}

// deactivate stops c in the reverse order. Every step is idempotent, so it
// also cleans up after a crash.
func (d *drill) deactivate(c *controller) {
	d.t.Helper()
	d.must(d.ours(c, "stx-registry", "stop"), ocfSuccess, c.name+": stx-registry stop")
	d.must(d.ours(c, "stx-token-server", "stop"), ocfSuccess, c.name+": stx-token-server stop")
	d.must(d.fs(c, "stop"), ocfSuccess, c.name+": Filesystem stop")
	d.must(d.ip(c, "stop"), ocfSuccess, c.name+": IPaddr2 stop")
	for _, dm := range []string{"stx-registry", "stx-token-server"} {
		d.must(d.ours(c, dm, "monitor"), ocfNotRunning, c.name+": "+dm+" monitor after stop")
	}
	d.must(d.fs(c, "monitor"), ocfNotRunning, c.name+": Filesystem monitor after stop")
}

// standbyQuiet checks that c, the standby, runs nothing: the agents' monitor
// says NOT_RUNNING even though the floating IP answers (from the active
// controller).
func (d *drill) standbyQuiet(c *controller) {
	d.t.Helper()
	for _, dm := range []string{"stx-registry", "stx-token-server"} {
		d.must(d.ours(c, dm, "monitor"), ocfNotRunning, c.name+" (standby): "+dm+" monitor")
	}
}

// pidOf reads a PID file written by our agent.
func pidOf(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("PID file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("PID file %s: %q is not a PID", path, b)
	}
	return pid
}

// killByPidfile sends SIGKILL to the process in a PID file, if any.
func killByPidfile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// newBigImage writes an image with one layer of n random bytes, stored
// without compression (gzip level 0) so that making it is quick.
func newBigImage(t *testing.T, tag string, n int) *testrig.Image {
	t.Helper()
	im, err := testrig.NewImage(layoutDir(t), tag, 1, int64(n), testrig.GzipStored)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// uploadedBytes is the size of the largest upload in progress under the
// registry root mnt for repo.
func uploadedBytes(mnt, repo string) int64 {
	var most int64
	dir := filepath.Join(mnt, "docker", "registry", "v2", "repositories", repo, "_uploads")
	_ = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() && de.Name() == "data" {
			if fi, err := de.Info(); err == nil && fi.Size() > most {
				most = fi.Size()
			}
		}
		return nil
	})
	return most
}

// pullSame pulls repo as user and fails unless the manifest and layers are
// im's.
func (d *drill) pullSame(h *clientHome, user, repo string, im *testrig.Image) {
	d.t.Helper()
	dir, r := d.e.skopeoPull(d.t, h, user, repo)
	if r.err != nil {
		d.t.Fatalf("pulling %s as %s: %v\n%s\n%s", repo, user, r.err, r.output, d.logs())
	}
	digest, layers := layoutManifest(d.t, dir, "pulled")
	if digest != im.Manifest.Digest {
		d.t.Errorf("%s: pulled manifest %s, pushed %s", repo, digest, im.Manifest.Digest)
	}
	if strings.Join(layers, ",") != strings.Join(im.LayerDigests(), ",") {
		d.t.Errorf("%s: pulled layers %v, pushed %v", repo, layers, im.LayerDigests())
	}
}

// refreshLogin is docker login's token request; it returns the refresh
// token.
func (d *drill) refreshLogin(user string) string {
	d.t.Helper()
	q := url.Values{"service": {d.e.service()}, "account": {user}, "client_id": {"docker"}, "offline_token": {"true"}}
	req := newRequest(d.t, http.MethodGet, d.e.realm()+"?"+q.Encode(), nil)
	req.SetBasicAuth(user, d.e.passwords[user])
	r := d.e.do(d.t, req)
	var tr struct {
		RefreshToken string `json:"refresh_token"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &tr) != nil || tr.RefreshToken == "" {
		d.t.Fatalf("docker login as %s: status %d, no refresh_token: %s", user, r.status, r.body)
	}
	return tr.RefreshToken
}

// refreshPull is docker's later token request with the refresh token; it
// fails the test unless the token server grants pull on repo.
func (d *drill) refreshPull(rt, repo string) {
	d.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"docker"},
		"service": {d.e.service()}, "scope": {"repository:" + repo + ":pull"}}
	r := d.e.postForm(d.t, form)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &tr) != nil || tr.AccessToken == "" {
		d.t.Fatalf("refresh grant for %s: status %d: %s", repo, r.status, r.body)
	}
	if got := granted(d.t, tr.AccessToken, "repository", repo); strings.Join(got, ",") != "pull" {
		d.t.Errorf("refresh grant for %s: granted %v, want [pull]", repo, got)
	}
}

// newDrill lays out both controllers, the certificates (ops/stx-gencerts,
// with the floating IP in the SANs), the users and the loop device.
func newDrill(t *testing.T) *drill {
	needTool(t, "openssl", "skopeo", "losetup", "mkfs.ext4", "umount", "ip", "modprobe")
	for _, a := range []string{"IPaddr2", "Filesystem"} {
		if _, err := os.Stat(filepath.Join(heartbeatAgents, a)); err != nil {
			t.Fatalf("ocf:heartbeat:%s is not installed (package resource-agents): run make test-deps", a)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("the failover drill mounts filesystems and adds addresses: run it as root")
	}
	base := t.TempDir()
	d := &drill{t: t, base: base}
	d.a = &controller{name: "controller-0", dir: filepath.Join(base, "controller-0"), mnt: filepath.Join(base, "controller-0", "docker-distribution")}
	d.b = &controller{name: "controller-1", dir: filepath.Join(base, "controller-1"), mnt: filepath.Join(base, "controller-1", "docker-distribution")}
	for _, c := range []*controller{d.a, d.b} {
		for _, dir := range []string{c.dir, filepath.Join(c.dir, "run"), c.mnt} {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	d.marker = filepath.Join(base, "admin.conf")
	writeFile(t, d.marker, []byte("# stands for /etc/kubernetes/admin.conf\n"))

	// Certificates: the system's self-signed certificate for registry.local
	// and the floating IP, and the token signing key, from ops/stx-gencerts.
	pki := filepath.Join(base, "pki")
	out, err := exec.Command("sh", filepath.Join(moduleRoot, "ops", "stx-gencerts"), "-o", pki, failoverVIP).CombinedOutput()
	if err != nil {
		t.Fatalf("ops/stx-gencerts: %v\n%s", err, out)
	}
	for _, f := range []string{"registry.pem", "registry.key", "token.pem", "token.key"} {
		fi, err := os.Stat(filepath.Join(pki, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("stx-gencerts %s: %v, mode %v; want mode 0600", f, err, fi.Mode())
		}
	}
	// The clients trust the self-signed certificate.
	clientDir := filepath.Join(base, "client")
	if err := os.MkdirAll(filepath.Join(clientDir, "certs.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	cert, err := os.ReadFile(filepath.Join(pki, "registry.pem"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(clientDir, "ca.pem"), cert)
	writeFile(t, filepath.Join(clientDir, "certs.d", "ca.crt"), cert)

	regPort, err := testrig.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	tokPort, err := testrig.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	d.e = &env{
		dir:          clientDir,
		registryAddr: failoverVIP + regPort[strings.LastIndexByte(regPort, ':'):],
		tokenAddr:    failoverVIP + tokPort[strings.LastIndexByte(tokPort, ':'):],
		passwords:    map[string]string{},
	}
	if d.e.client, err = testrig.Client(d.e.caFile()); err != nil {
		t.Fatal(err)
	}

	// Users, made once and copied to both controllers (as a configuration
	// management tool would).
	users := filepath.Join(base, "users")
	for _, u := range []string{"user1", "user2"} {
		pw := testrig.RandomHex(12)
		if err := testrig.Passwd(context.Background(), bin.TokenServer, users, u, pw); err != nil {
			t.Fatal(err)
		}
		d.e.passwords[u] = pw
	}
	usersData, err := os.ReadFile(users)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []*controller{d.a, d.b} {
		if err := os.WriteFile(filepath.Join(c.dir, "users"), usersData, 0o600); err != nil {
			t.Fatal(err)
		}
		tok := []string{
			"listen " + d.e.tokenAddr,
			"tls_certificate " + filepath.Join(pki, "registry.pem"),
			"tls_key " + filepath.Join(pki, "registry.key"),
			"service " + d.e.registryAddr,
			"issuer bird-token-server",
			"signing_key " + filepath.Join(pki, "token.key"),
			"auth_backend users",
			"users_file " + filepath.Join(c.dir, "users"),
			"state_directory " + filepath.Join(c.mnt, "token-state"),
		}
		writeConf(t, c.tokConf(), tok)
		writeConf(t, c.regConf(), []string{
			"listen " + d.e.registryAddr,
			"tls_certificate " + filepath.Join(pki, "registry.pem"),
			"tls_key " + filepath.Join(pki, "registry.key"),
			"root_directory " + c.mnt,
			"require_mount yes",
			"token_realm " + d.e.realm(),
			"token_service " + d.e.registryAddr,
			"token_issuer bird-token-server",
			"token_certificate " + filepath.Join(pki, "token.pem"),
		})
	}

	// The DRBD stand-in: a sparse ext4 image on a loop device.
	device, detach, err := testrig.LoopDevice(base, fsImageBytes)
	if err != nil {
		t.Fatal(err)
	}
	d.device = device

	// Cleanup runs in reverse: daemons, mounts, address, loop device. The
	// temporary directory (registered first) goes last.
	t.Cleanup(func() {
		if err := detach(); err != nil {
			t.Log(err)
		}
	})
	t.Cleanup(func() {
		_ = exec.Command("ip", "addr", "del", failoverVIP+"/32", "dev", "lo").Run()
	})
	t.Cleanup(func() {
		for _, c := range []*controller{d.a, d.b} {
			for _, dm := range []string{"stx-registry", "stx-token-server"} {
				killByPidfile(c.pidfile(dm))
			}
		}
		time.Sleep(200 * time.Millisecond)
		for _, c := range []*controller{d.a, d.b} {
			_ = exec.Command("umount", c.mnt).Run()
		}
	})
	return d
}

// writeConf writes a configuration file from its lines.
func writeConf(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := testrig.WriteConf(path, lines...); err != nil {
		t.Fatal(err)
	}
}

// TestFailover is the drill of issue 5: push on controller-0, kill -9 both
// daemons in the middle of a push, fail over to controller-1 through the
// OCF agents in SM's order, check that nothing is lost and no partial push
// is visible, then fail back and check again.
func TestFailover(t *testing.T) {
	d := newDrill(t)
	h := newClientHome(t)

	// A registry must never serve an unmounted (empty) root: on a standby
	// controller start fails with the reason, and monitor says not running.
	r := d.ours(d.b, "stx-registry", "start")
	if r.rc != ocfErrGeneric || !strings.Contains(r.out, "not a mount point") || !strings.Contains(r.out, "root_directory") {
		t.Fatalf("stx-registry start without the filesystem: rc %d, want %d (OCF_ERR_GENERIC) and a reason naming root_directory:\n%s", r.rc, ocfErrGeneric, r.out)
	}
	if _, err := os.Stat(d.b.pidfile("stx-registry")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stx-registry start without the filesystem left a PID file: %v", err)
	}
	d.must(d.ours(d.b, "stx-registry", "monitor"), ocfNotRunning, "stx-registry monitor without the filesystem")
	d.must(d.ours(d.b, "stx-registry", "validate-all"), ocfSuccess, "stx-registry validate-all without the filesystem (a probe)")

	// 1. controller-0 active; push as two users.
	d.activate(d.a, true)
	d.standbyQuiet(d.b)
	im1 := newImage(t, "v1")
	im2 := newImage(t, "v1")
	d.e.mustPush(t, h, "user1", im1, "user1/app:v1")
	d.e.mustPush(t, h, "user2", im2, "user2/app:v1")
	rt := d.refreshLogin("user1")
	d.refreshPull(rt, "user1/app")

	// 2. kill -9 the registry and the token server while a big push runs.
	big := newBigImage(t, "v1", bigLayerBytes)
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	push := exec.CommandContext(ctx, "skopeo", "--policy", h.policy, "copy", "--dest-creds", d.e.creds("user1"),
		"--dest-cert-dir", d.e.certDir(), big.Ref(), "docker://"+d.e.registryAddr+"/user1/big:v1")
	push.Env = h.environ()
	var pushOut bytes.Buffer
	push.Stdout, push.Stderr = &pushOut, &pushOut
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(midPushWait)
	var sent int64
	for sent < 1<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("the big push did not reach the registry within %v:\n%s", midPushWait, pushOut.String())
		}
		time.Sleep(5 * time.Millisecond)
		sent = uploadedBytes(d.a.mnt, "user1/big")
	}
	for _, dm := range []string{"stx-registry", "stx-token-server"} {
		if err := syscall.Kill(pidOf(t, d.a.pidfile(dm)), syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %s: %v", dm, err)
		}
	}
	t.Logf("killed both daemons with %d of %d bytes of the big layer uploaded", sent, big.Layers[0].Size)
	if err := push.Wait(); err == nil {
		t.Fatalf("the push survived kill -9 of the registry:\n%s", pushOut.String())
	}
	// A crashed daemon is seen by the next monitor.
	time.Sleep(100 * time.Millisecond)
	for _, dm := range []string{"stx-registry", "stx-token-server"} {
		d.must(d.ours(d.a, dm, "monitor"), ocfNotRunning, "controller-0: "+dm+" monitor after kill -9")
	}

	// 3. Fail over: stop what is left on controller-0, then controller-1.
	d.deactivate(d.a)
	began := d.activate(d.b, false)
	d.pullSame(h, "user1", "user1/app:v1", im1)
	took := time.Since(began)
	t.Logf("failover: %.2f s from the first agent start on controller-1 to the first successful pull", took.Seconds())
	fmt.Printf("FAILOVER_SECONDS %.2f\n", took.Seconds())
	d.standbyQuiet(d.a)

	// 4. Nothing lost, nothing partial.
	d.checkAfter(h, im1, im2, big, rt, true)

	// 5. Fail back to controller-0 and check everything once more.
	d.deactivate(d.b)
	d.activate(d.a, false)
	d.standbyQuiet(d.b)
	d.checkAfter(h, im1, im2, big, rt, false)
	d.deactivate(d.a)
}

// checkAfter checks the state after a failover: the earlier images pull with
// their digests, the refresh token still works, and the interrupted push
// left nothing visible until it is retried (first time only), after which
// it pulls too.
func (d *drill) checkAfter(h *clientHome, im1, im2, big *testrig.Image, rt string, retry bool) {
	d.t.Helper()
	d.pullSame(h, "user1", "user1/app:v1", im1)
	d.pullSame(h, "user2", "user2/app:v1", im2)
	d.refreshPull(rt, "user1/app")
	if retry {
		tok := d.e.tokenFor(d.t, "user1", "repository:user1/big:pull")
		if got := d.e.api(d.t, "GET", "/v2/user1/big/manifests/v1", tok, nil, map[string][]string{"Accept": {mediaManifest}}); got.status != http.StatusNotFound {
			d.t.Errorf("interrupted push: GET user1/big:v1 answered %d before the retry, want 404", got.status)
		}
		if got := d.e.api(d.t, "HEAD", "/v2/user1/big/blobs/"+big.Layers[0].Digest, tok, nil, nil); got.status != http.StatusNotFound {
			d.t.Errorf("interrupted push: HEAD of the big layer answered %d before the retry, want 404", got.status)
		}
		d.e.mustPush(d.t, h, "user1", big, "user1/big:v1")
	}
	d.pullSame(h, "user1", "user1/big:v1", big)
}
