package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"stx-registry/shared/testrig"
)

// containerd is a private containerd daemon from the test rig.
type containerd struct{ *testrig.Containerd }

// startContainerd starts a private containerd under one short temporary
// directory (a Unix socket path must stay under 108 bytes), stopped and
// removed at cleanup.
func startContainerd(t *testing.T) *containerd {
	t.Helper()
	needTool(t, "containerd", "ctr")
	dir, err := os.MkdirTemp("", "ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c, err := testrig.StartContainerd(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stop exactly the containerd started here, by its PID.
		c.Stop()
		if t.Failed() {
			t.Logf("containerd log:\n%s", c.Proc().Log())
		}
	})
	return &containerd{c}
}

// ctr runs ctr against this containerd, in its own namespace.
func (c *containerd) ctr(t testing.TB, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.Sock, "--namespace", "e2e"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.Dir}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ctr %s: timed out after %v\n%s", args[0], clientTimeout, out.String())
	}
	return result{err: err, output: out.String()}
}

// hostsDir writes DIR/REG/hosts.toml trusting the test CA, as a StarlingX
// node's /etc/containerd/certs.d does.
func (e *env) hostsDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	hostDir := filepath.Join(dir, e.registryAddr)
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("server = %q\n\n[host.%q]\n  ca = %q\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n",
		"https://"+e.registryAddr, "https://"+e.registryAddr, e.caFile())
	writeFile(t, filepath.Join(hostDir, "hosts.toml"), []byte(conf))
	return dir
}

// auditLine is one token server audit line (JSON log format).
type auditLine struct {
	Msg       string `json:"msg"`
	Result    string `json:"result"`
	Status    int    `json:"status"`
	Method    string `json:"method"`
	User      string `json:"user"`
	ClientID  string `json:"client_id"`
	GrantType string `json:"grant_type"`
	Granted   string `json:"granted"`
}

// auditSince returns the token server's audit lines logged after mark.
func (e *env) auditSince(t testing.TB, mark int64) []auditLine {
	t.Helper()
	var lines []auditLine
	sc := bufio.NewScanner(bytes.NewReader(e.token.LogSince(mark)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l auditLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "token" {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestContainerdPull pulls with ctr through a hosts directory, the way
// kubelet's containerd does on a StarlingX node: containerd must get its
// token with the POST password grant. With a wrong password ctr must fail
// after the POST and the GET fallback are both refused.
func TestContainerdPull(t *testing.T) {
	e := sharedEnv(t)
	h := newClientHome(t)
	im := newImage(t, "v1")
	e.mustPush(t, h, "user1", im, "user1/ctr:v1")

	c := startContainerd(t)
	hosts := e.hostsDir(t)
	ref := e.registryAddr + "/user1/ctr:v1"

	mark := e.token.LogSize()
	r := c.ctr(t, "images", "pull", "--snapshotter", "native", "--user", e.creds("user1"), "--hosts-dir", hosts, ref)
	if r.err != nil {
		t.Fatalf("ctr images pull: %v\n%s", r.err, r.output)
	}
	out := c.ctr(t, "images", "ls")
	if out.err != nil || !strings.Contains(out.output, im.Manifest.Digest) {
		t.Errorf("ctr images ls does not list %s at %s: %v\n%s", ref, im.Manifest.Digest, out.err, out.output)
	}
	var posted bool
	for _, l := range e.auditSince(t, mark) {
		if l.Method == "POST" && l.ClientID == "containerd-client" && l.User == "user1" && l.Result == "granted" &&
			strings.Contains(l.Granted, "repository:user1/ctr:pull") {
			posted = true
		}
		if l.Method == "GET" {
			t.Errorf("containerd fell back to GET although the POST password grant should have worked: %+v", l)
		}
	}
	if !posted {
		t.Errorf("no granted POST password grant from containerd-client for user1 in the audit log:\n%s", e.token.LogSince(mark))
	}

	// containerd pushing a layer it pulled from user1/ctr into user2's
	// namespace tries a cross-repository mount from user1/ctr (the layer's
	// distribution.source label), without checking access first. The
	// registry must answer the refused mount with a normal upload (202),
	// not a 401 that would fail the whole push.
	copyRef := e.registryAddr + "/user2/ctrcopy:v1"
	mustOK(t, c.ctr(t, "images", "tag", ref, copyRef), "ctr images tag")
	regMark := e.registry.LogSize()
	r = c.ctr(t, "images", "push", "--user", e.creds("user2"), "--hosts-dir", hosts, copyRef)
	if r.err != nil {
		t.Fatalf("ctr images push %s as user2: %v\n%s", copyRef, r.err, r.output)
	}
	if got := e.manifestDigest(t, "user2/ctrcopy", "v1"); got != im.Manifest.Digest {
		t.Errorf("user2/ctrcopy:v1 is %q, want %s", got, im.Manifest.Digest)
	}
	mounts := mountRequests(e.registry.LogSince(regMark))
	if len(mounts) == 0 {
		t.Errorf("containerd did not try a cross-repository mount from user1/ctr; registry log:\n%s", e.registry.LogSince(regMark))
	}
	t.Logf("containerd tried %d cross-repository mounts: %v", len(mounts), mounts)
	for _, m := range mounts {
		if m.from != "user1/ctr" || m.status != "202" {
			t.Errorf("mount from %s answered %s, want from user1/ctr answered 202 (a normal upload)", m.from, m.status)
		}
	}

	// A wrong password: the POST is refused, containerd falls back to GET
	// with Basic auth, which is refused too.
	mark = e.token.LogSize()
	r = c.ctr(t, "images", "pull", "--snapshotter", "native", "--user", "user1:wrong-password", "--hosts-dir", hosts, ref)
	if r.err == nil {
		t.Fatalf("ctr images pull with a wrong password succeeded:\n%s", r.output)
	}
	var sawPost, sawGetAfterPost bool
	for _, l := range e.auditSince(t, mark) {
		if l.User != "user1" {
			continue
		}
		if l.Result == "granted" {
			t.Errorf("a wrong password was granted a token: %+v", l)
		}
		switch l.Method {
		case "POST":
			sawPost = sawPost || (l.ClientID == "containerd-client" && l.Status == 401)
		case "GET":
			sawGetAfterPost = sawGetAfterPost || (sawPost && l.Status == 401)
		}
	}
	if !sawPost || !sawGetAfterPost {
		t.Errorf("want a denied POST (401) then a denied GET fallback (401) in the audit log; POST %v, GET after it %v:\n%s",
			sawPost, sawGetAfterPost, e.token.LogSince(mark))
	}
}

// mountRequest is a blob mount attempt seen in the registry's access log.
type mountRequest struct{ status, from string }

// accessLine matches the registry's access log line of a mount attempt
// (text format: msg=request ... status=N ... mount=D from=R).
var accessLine = regexp.MustCompile(`msg=request method=POST path=\S+/blobs/uploads/ status=(\d+) .*mount=(\S+) from=(\S+)`)

// mountRequests lists the mount attempts in a registry log excerpt.
func mountRequests(log []byte) []mountRequest {
	var ms []mountRequest
	for _, m := range accessLine.FindAllSubmatch(log, -1) {
		ms = append(ms, mountRequest{status: string(m[1]), from: string(m[3])})
	}
	return ms
}
