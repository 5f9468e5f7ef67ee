package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stx-registry/shared/testrig"
)

// ocfTesterTimeout bounds one ocf-tester run: two starts and stops of a
// daemon, each well under SM's 15 s.
const ocfTesterTimeout = 3 * time.Minute

// TestOCFTester runs ocf-tester (package resource-agents) on both agents
// against a demo set-up: meta-data valid per ra-api-1.dtd, validate-all,
// monitor of a stopped resource, start, start again, stop, stop again,
// reload. It also checks the Kubernetes gating.
func TestOCFTester(t *testing.T) {
	needTool(t, "ocf-tester", "openssl", "xmllint")
	e, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(e.dir) })
	marker := filepath.Join(e.dir, "admin.conf")
	writeFile(t, marker, []byte("# stands for /etc/kubernetes/admin.conf\n"))

	for _, a := range []struct{ agent, conf string }{
		{"stx-token-server", e.tokenConf()},
		{"stx-registry", filepath.Join(e.dir, "stx-registry.conf")},
	} {
		t.Run(a.agent, func(t *testing.T) {
			agent := filepath.Join(moduleRoot, "ops", "ocf", a.agent)
			pidfile := filepath.Join(e.dir, a.agent+".pid")
			params := map[string]string{
				"binary":     filepath.Join(bin.Dir, a.agent),
				"config":     a.conf,
				"pidfile":    pidfile,
				"logfile":    filepath.Join(e.dir, a.agent+".log"),
				"k8s_marker": marker,
			}
			t.Cleanup(func() { killByPidfile(pidfile) })

			args := []string{"-n", "e2e-" + a.agent}
			for k, v := range params {
				args = append(args, "-o", k+"="+v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ocfTesterTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, "ocf-tester", append(args, agent)...)
			cmd.Env = append(os.Environ(), "OCF_ROOT="+ocfRoot)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "passed all tests") {
				t.Fatalf("ocf-tester %s: %v\n%s\nlog:\n%s", a.agent, err, out, testrig.TailFile(params["logfile"]))
			}

			// Kubernetes gating: without the marker, validate-all and start
			// are OCF_ERR_CONFIGURED with a reason, and nothing starts.
			params["k8s_marker"] = filepath.Join(e.dir, "no-such-admin.conf")
			for _, action := range []string{"validate-all", "start"} {
				r := runOCF(t, agent, action, params)
				if r.rc != ocfErrConfigured || !strings.Contains(r.out, "ocf-exit-reason:Kubernetes is not configured") {
					t.Errorf("%s without the Kubernetes marker: rc %d, want %d and a reason:\n%s", action, r.rc, ocfErrConfigured, r.out)
				}
			}
			if _, err := os.Stat(pidfile); err == nil {
				t.Errorf("start without the Kubernetes marker wrote %s", pidfile)
			}
		})
	}

	// A standby controller: the token server's state_directory lives on the
	// DRBD filesystem, which is not mounted. validate-all must still pass
	// (it is not a configuration error), and start must fail with a
	// generic error and the daemon's reason, without starting anything.
	t.Run("stx-token-server standby", func(t *testing.T) {
		conf, err := os.ReadFile(e.tokenConf())
		if err != nil {
			t.Fatal(err)
		}
		unmounted := filepath.Join(e.dir, "drbd-not-mounted", "state")
		lines := strings.Split(string(conf), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "state_directory ") {
				lines[i] = "state_directory " + unmounted
			}
		}
		standby := filepath.Join(e.dir, "standby-token.conf")
		writeFile(t, standby, []byte(strings.Join(lines, "\n")))
		pidfile := filepath.Join(e.dir, "standby-token.pid")
		t.Cleanup(func() { killByPidfile(pidfile) })
		params := map[string]string{
			"binary":     bin.TokenServer,
			"config":     standby,
			"pidfile":    pidfile,
			"logfile":    filepath.Join(e.dir, "standby-token.log"),
			"k8s_marker": marker,
		}
		agent := filepath.Join(moduleRoot, "ops", "ocf", "stx-token-server")
		if r := runOCF(t, agent, "validate-all", params); r.rc != ocfSuccess {
			t.Errorf("validate-all with state_directory unmounted: rc %d, want %d:\n%s", r.rc, ocfSuccess, r.out)
		}
		r := runOCF(t, agent, "start", params)
		if r.rc != ocfErrGeneric || !strings.Contains(r.out, "ocf-exit-reason:") || !strings.Contains(r.out, "state") {
			t.Errorf("start with state_directory unmounted: rc %d, want %d and a reason naming the state directory:\n%s", r.rc, ocfErrGeneric, r.out)
		}
		if _, err := os.Stat(pidfile); err == nil {
			t.Errorf("start with state_directory unmounted wrote %s", pidfile)
		}
	})
}

// runOCF runs one agent action outside a drill.
func runOCF(t *testing.T, agent, action string, params map[string]string) agentRun {
	t.Helper()
	d := &drill{t: t, base: t.TempDir()}
	return d.agent(agent, "e2e", action, params)
}
