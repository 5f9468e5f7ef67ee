package e2e

import (
	"strings"
	"testing"
)

// The reasons the token server gives user1 (see access.Policy.Grant), which
// every client must show when the registry refuses it.
const (
	// whyPush is why user1 may not push to user2/NAME: a push asks for
	// pull and push, and its first refused request is often a HEAD.
	whyPush = "user1 may not pull from or push to user2/%s: user1 may push only to user1/..., and pull from there and from public namespaces"
	// whyPull is why user1 may not pull from user2/NAME.
	whyPull = "user1 may not pull from user2/%s: user1 may pull only from user1/... and public namespaces"
	// badPassword is what the token server says of a wrong password.
	badPassword = "invalid username or password"
)

// why is the reason format for the repository user2/name.
func why(format, name string) string {
	return strings.Replace(format, "%s", name, 1)
}

// mustRefuseSaying fails the test unless r failed and its output holds
// each of want, and logs what the client printed.
func mustRefuseSaying(t testing.TB, r result, what string, want ...string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("%s succeeded:\n%s", what, r.output)
	}
	t.Logf("%s is refused; the client prints:\n%s", what, r.output)
	for _, w := range want {
		if !strings.Contains(r.output, w) {
			t.Errorf("%s: the client does not print %q; it prints:\n%s", what, w, r.output)
		}
	}
}

// TestRefusalMessages checks that skopeo, podman and ctr tell user1 why it
// is refused a push to user2's namespace and a pull of user2's private
// image, and that a wrong password is called one. TestDocker checks the
// same for docker.
func TestRefusalMessages(t *testing.T) {
	e := sharedEnv(t)
	h := newClientHome(t)
	im := newImage(t, "v1")
	e.mustPush(t, h, "user2", im, "user2/private:v1")
	e.mustPush(t, h, "user1", im, "user1/refusal:v1")
	reg := e.registryAddr

	t.Run("skopeo", func(t *testing.T) {
		// The first refused request of a push is a HEAD: c/image cannot
		// read a body there and says so after the reason.
		mustRefuseSaying(t, e.skopeoPush(t, h, "user1", im, "user2/skopeo:v1"), "skopeo copy to user2's namespace as user1",
			`errors:\ndenied: `+why(whyPush, "skopeo")+`\n`)
		_, r := e.skopeoPull(t, h, "user1", "user2/private:v1")
		mustRefuseSaying(t, r, "skopeo copy of user2's private image as user1",
			`errors:\ndenied: `+why(whyPull, "private")+`\ndenied: requested access to the resource is denied\n`)
		r = h.skopeo(t, "copy", "--src-creds", "user1:wrong-password", "--src-cert-dir", e.certDir(),
			"docker://"+reg+"/user1/refusal:v1", "oci:"+t.TempDir()+":x")
		mustRefuseSaying(t, r, "skopeo copy with a wrong password",
			"unable to retrieve auth token: invalid username/password: unauthorized: "+badPassword)
	})

	t.Run("podman", func(t *testing.T) {
		ph := h // podman wants a short runroot: a subtest's TempDir is too long
		certs := "--cert-dir=" + e.certDir()
		mustOK(t, ph.podmanInput(t, e.passwords["user1"]+"\n", "login", certs, "-u", "user1", "--password-stdin", reg), "podman login")
		mustOK(t, ph.podman(t, "pull", certs, "--signature-policy", ph.policy, reg+"/user1/refusal:v1"), "podman pull")
		mustOK(t, ph.podman(t, "tag", reg+"/user1/refusal:v1", reg+"/user2/podman:v1"), "podman tag")
		mustRefuseSaying(t, ph.podman(t, "push", certs, reg+"/user2/podman:v1"), "podman push to user2's namespace as user1",
			"errors:\ndenied: "+why(whyPush, "podman")+"\n")
		mustRefuseSaying(t, ph.podman(t, "pull", certs, "--signature-policy", ph.policy, reg+"/user2/private:v1"),
			"podman pull of user2's private image as user1",
			"errors:\ndenied: "+why(whyPull, "private")+"\ndenied: requested access to the resource is denied\n")
		// podman login checks the password itself, and says so in its
		// own words; a pull with a wrong stored password shows ours.
		mustRefuseSaying(t, ph.podmanInput(t, "wrong-password\n", "login", certs, "-u", "user1", "--password-stdin", reg),
			"podman login with a wrong password", "invalid username/password")
		mustRefuseSaying(t, ph.podman(t, "pull", certs, "--creds", "user1:wrong-password", "--signature-policy", ph.policy, reg+"/user1/refusal:v1"),
			"podman pull with a wrong password",
			"unable to retrieve auth token: invalid username/password: unauthorized: "+badPassword)
	})

	t.Run("ctr", func(t *testing.T) {
		c := startContainerd(t)
		hosts := e.hostsDir(t)
		own, other := reg+"/user1/refusal:v1", reg+"/user2/ctr:v1"
		mustOK(t, c.ctr(t, "images", "pull", "--snapshotter", "native", "--user", e.creds("user1"), "--hosts-dir", hosts, own), "ctr images pull")
		mustOK(t, c.ctr(t, "images", "tag", own, other), "ctr images tag")
		// containerd prints the error of the first challenge only.
		mustRefuseSaying(t, c.ctr(t, "images", "push", "--user", e.creds("user1"), "--hosts-dir", hosts, other),
			"ctr push to user2's namespace as user1",
			"server message: "+why(whyPush, "ctr")+": authorization failed")
		mustRefuseSaying(t, c.ctr(t, "images", "pull", "--snapshotter", "native", "--user", e.creds("user1"), "--hosts-dir", hosts, reg+"/user2/private:v1"),
			"ctr pull of user2's private image as user1",
			"pull access denied, repository does not exist or may require authorization: server message: "+why(whyPull, "private")+": authorization failed")
		// ctr never prints the token server's answer.
		mustRefuseSaying(t, c.ctr(t, "images", "pull", "--snapshotter", "native", "--user", "user1:wrong-password", "--hosts-dir", hosts, own),
			"ctr pull with a wrong password",
			"failed to fetch oauth token: unexpected status: 401 Unauthorized")
	})
}
