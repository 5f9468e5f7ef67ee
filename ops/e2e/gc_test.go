package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"stx-registry/shared/testrig"
)

// Bounds of the concurrent collection test: 3 clients push 6 images each
// (2 small layers, one shared by every image), deleting every other one,
// while stx-registry gc runs in a loop: every 3rd run with
// -delete-untagged, every 4th killed with SIGKILL after 15, 30, 45 or
// 60 ms, so that some are cut in the middle of their sweep.
const (
	gcClients    = 3
	gcRounds     = 6
	gcGrace      = 2 * time.Second
	gcPause      = 150 * time.Millisecond // between two collections
	gcKillEvery  = 4
	gcKillAfter  = 15 * time.Millisecond // times 1 to 4
	gcUntagEvery = 3
	gcTestBudget = 4 * time.Minute
)

// gcEnv starts a private pair of daemons whose registry configuration
// loses the keywords in drop and gains the lines add; before, if set,
// runs just before the daemons start.
func gcEnv(t *testing.T, before func(*env), drop []string, add ...string) *env {
	t.Helper()
	needTool(t, "openssl", "skopeo")
	e, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.stop(); os.RemoveAll(e.dir) })
	for _, u := range testUsers {
		if err := e.passwd(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := testrig.EditConf(e.registryConf(), e.registryConf(), drop, add...); err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(e)
	}
	if err := e.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("registry log (tail):\n%s", e.registry.Tail())
		}
	})
	return e
}

// storageRoot is the registry's root_directory in a demo layout.
func (e *env) storageRoot() string { return filepath.Join(e.dir, "storage") }

// gcRun is one stx-registry gc run.
type gcRun struct {
	killed   bool
	err      error
	output   string
	bytes    int64
	duration time.Duration // lock held
	waited   time.Duration // waiting for commit steps in flight
}

var gcLine = regexp.MustCompile(`gc: (?:removed|would remove) (\d+) blobs \((\d+) bytes.*\), (\d+) manifests, (\d+) layer links in (\S+); kept (\d+) blobs \(\d+ unreferenced but younger than gc_grace \S+\); waited (\S+) for pushes`)

// runGC runs stx-registry gc with args; with kill > 0 it sends SIGKILL
// after kill.
func (e *env) runGC(kill time.Duration, args ...string) gcRun {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.Registry, append([]string{"gc", "-f", e.registryConf()}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return gcRun{err: err}
	}
	if kill > 0 {
		time.Sleep(kill)
		_ = cmd.Process.Signal(syscall.SIGKILL)
	}
	err := cmd.Wait()
	r := gcRun{killed: kill > 0, err: err, output: out.String()}
	if m := gcLine.FindStringSubmatch(r.output); m != nil {
		r.bytes, _ = strconv.ParseInt(m[2], 10, 64)
		r.duration, _ = time.ParseDuration(m[5])
		r.waited, _ = time.ParseDuration(m[7])
	} else if err == nil {
		r.err = fmt.Errorf("no summary line in %q", r.output)
	}
	return r
}

// pushed is one image a client pushed.
type pushed struct {
	user, repo string
	im         *testrig.Image
	err        error
	output     string
	deleted    bool
	took       time.Duration
}

// runClient runs a client program without the test's t, for goroutines.
func runClient(h *clientHome, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = h.environ()
	cmd.Dir = h.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestGCWhilePushing pushes and deletes images from several clients while
// garbage collections run (some killed with SIGKILL), then checks that
// every image whose push succeeded pulls with identical digests, every
// deleted image is gone, and the storage holds no blob nothing references.
func TestGCWhilePushing(t *testing.T) {
	e := gcEnv(t, nil, nil, fmt.Sprintf("gc_grace %s", gcGrace))
	users := []string{"user1", "user2", "user10"}[:gcClients]
	base := newImage(t, "base")
	work := make([][]*pushed, gcClients)
	homes := make([]*clientHome, gcClients)
	for c, user := range users {
		homes[c] = newClientHome(t)
		for i := range gcRounds {
			tag := fmt.Sprintf("r%d", i)
			work[c] = append(work[c], &pushed{user: user, repo: user + "/gc:" + tag, im: newImageSharing(t, tag, base)})
		}
	}

	deadline := time.Now().Add(gcTestBudget)
	stop := make(chan struct{})
	var runs []gcRun
	var gcWG sync.WaitGroup
	gcWG.Add(1)
	go func() {
		defer gcWG.Done()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			var kill time.Duration
			if n%gcKillEvery == 0 {
				kill = gcKillAfter * time.Duration(1+n/gcKillEvery%4)
			}
			var args []string
			if n%gcUntagEvery == 0 {
				args = append(args, "-delete-untagged")
			}
			runs = append(runs, e.runGC(kill, args...))
			time.Sleep(gcPause)
		}
	}()

	var wg sync.WaitGroup
	for c := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := homes[c]
			for i, p := range work[c] {
				if time.Now().After(deadline) {
					p.err = fmt.Errorf("not pushed: test budget spent")
					continue
				}
				start := time.Now()
				p.output, p.err = runClient(h, "skopeo", "--policy", h.policy, "copy", "--dest-creds", e.creds(p.user),
					"--dest-cert-dir", e.certDir(), p.im.Ref(), "docker://"+e.registryAddr+"/"+p.repo)
				p.took = time.Since(start)
				if p.err == nil && i%2 == 1 {
					out, err := runClient(h, "skopeo", "--policy", h.policy, "delete", "--creds", e.creds(p.user),
						"--cert-dir", e.certDir(), "docker://"+e.registryAddr+"/"+p.repo)
					if err != nil {
						p.err = fmt.Errorf("delete: %w: %s", err, out)
						continue
					}
					p.deleted = true
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	gcWG.Wait()

	// Every blob is now older than the grace age once it has passed; a
	// last collection removes everything unreferenced.
	time.Sleep(gcGrace + 500*time.Millisecond)
	final := e.runGC(0)
	if final.err != nil {
		t.Fatalf("final gc: %v\n%s", final.err, final.output)
	}
	again := e.runGC(0)
	if !strings.Contains(again.output, "removed 0 blobs (0 bytes") {
		t.Errorf("a collection right after a collection removed something: %s", again.output)
	}

	// Report: how long collections held the lock (the most a commit step
	// can wait), how long commit steps were held, and what was reclaimed.
	var maxHeld, maxWaited time.Duration
	var freed int64
	completed, killed := 0, 0
	for _, r := range append(runs, final) {
		switch {
		case r.killed:
			killed++
		case r.err != nil:
			t.Errorf("gc run failed: %v\n%s", r.err, r.output)
		default:
			completed++
			freed += r.bytes
			maxHeld = max(maxHeld, r.duration)
			maxWaited = max(maxWaited, r.waited)
		}
	}
	held := heldCommitSteps(t, e)
	var maxPushHeld time.Duration
	for _, d := range held {
		maxPushHeld = max(maxPushHeld, d)
	}
	var pushes, failed int
	var maxPush time.Duration
	for _, c := range work {
		for _, p := range c {
			pushes++
			maxPush = max(maxPush, p.took)
			if p.err != nil {
				failed++
				t.Errorf("push %s as %s failed during collections: %v\n%s", p.repo, p.user, p.err, p.output)
			}
		}
	}
	t.Logf("gc report: %d pushes (%d failed, slowest %s), %d collections completed and %d killed with SIGKILL; "+
		"a collection held the lock at most %s and waited at most %s for pushes in flight; "+
		"%d push commit steps were held longer than 10ms, the longest %s; %d bytes reclaimed",
		pushes, failed, maxPush.Round(time.Millisecond), completed, killed, maxHeld, maxWaited,
		len(held), maxPushHeld, freed)
	if completed < 3 {
		t.Errorf("only %d collections completed beside the pushes", completed)
	}

	// Every surviving image pulls with identical digests; every deleted one
	// is gone.
	referenced := map[string]bool{}
	for _, c := range work {
		for _, p := range c {
			if p.err != nil {
				continue
			}
			repo, tag, _ := strings.Cut(p.repo, ":")
			tok := e.tokenFor(t, p.user, "repository:"+repo+":pull")
			if p.deleted {
				if r := e.api(t, "GET", "/v2/"+repo+"/manifests/"+p.im.Manifest.Digest, tok, nil, acceptOCI); r.status != 404 {
					t.Errorf("deleted %s@%s: status %d, want 404", repo, p.im.Manifest.Digest, r.status)
				}
				if r := e.api(t, "GET", "/v2/"+repo+"/blobs/"+p.im.Layers[1].Digest, tok, nil, nil); r.status != 404 {
					t.Errorf("deleted %s: its own layer still served: %d", p.repo, r.status)
				}
				continue
			}
			r := e.api(t, "GET", "/v2/"+repo+"/manifests/"+tag, tok, nil, acceptOCI)
			if r.status != 200 || r.header.Get("Docker-Content-Digest") != p.im.Manifest.Digest || sha(r.body) != p.im.Manifest.Digest {
				t.Errorf("%s: status %d, digest %s, want %s", p.repo, r.status, r.header.Get("Docker-Content-Digest"), p.im.Manifest.Digest)
			}
			referenced[p.im.Manifest.Digest] = true
			for _, d := range append([]string{p.im.Config.Digest}, p.im.LayerDigests()...) {
				referenced[d] = true
				if r := e.api(t, "GET", "/v2/"+repo+"/blobs/"+d, tok, nil, nil); r.status != 200 || sha(r.body) != d {
					t.Errorf("%s blob %s: status %d", p.repo, d, r.status)
				}
			}
		}
	}

	// The storage holds nothing else.
	for _, d := range storedBlobs(t, e.storageRoot()) {
		if !referenced[d] {
			t.Errorf("blob %s is stored but no image references it", d)
		}
	}
	e.checkHealthy(t)
}

// acceptOCI asks for OCI manifests.
var acceptOCI = map[string][]string{"Accept": {testrig.MediaManifest}}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// storedBlobs lists the digests of every blob in the storage root.
func storedBlobs(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	base := filepath.Join(root, "docker/registry/v2/blobs/sha256")
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == "data" {
			out = append(out, "sha256:"+filepath.Base(filepath.Dir(p)))
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

var heldLine = regexp.MustCompile(`push commit step held by garbage collection.*?held=(\S+)`)

// heldCommitSteps reads from the registry log how long each held commit
// step waited.
func heldCommitSteps(t *testing.T, e *env) []time.Duration {
	t.Helper()
	b, err := os.ReadFile(e.registry.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Duration
	for _, m := range heldLine.FindAllStringSubmatch(string(b), -1) {
		if d, err := time.ParseDuration(strings.Trim(m[1], `"`)); err == nil {
			out = append(out, d)
		}
	}
	return out
}
