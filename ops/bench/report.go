package main

// Results: medians with min and max, the table, the BENCH lines and
// BENCHMARKS.md.

import (
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// profileNotes is the hand-written part of BENCHMARKS.md: where the token
// path spends its time, and what was changed, with before and after.
//
//go:embed profile.md
var profileNotes string

// requiredRatios are the BENCH names issues 6 and 15 ask for by name.
var requiredRatios = []string{
	"token_vs_ceiling_ratio",
	"token_noreuse_vs_ceiling_ratio",
	"refresh_vs_ceiling_ratio",
	"push_vs_upstream_ratio",
	"pull_vs_upstream_ratio",
	"push_small_layers_vs_upstream_ratio",
	"pull_small_layers_vs_upstream_ratio",
	"keystone_requests_per_call",
	"blob_push_vs_ceiling_cpu_ratio",
	"blob_push_vs_upstream_cpu_ratio",
	"blob_pull_vs_ceiling_cpu_ratio",
	"blob_pull_vs_upstream_cpu_ratio",
	"blob_push_vs_ceiling_rate_ratio",
	"blob_push_vs_upstream_rate_ratio",
	"blob_pull_vs_ceiling_rate_ratio",
	"blob_pull_vs_upstream_rate_ratio",
}

// metric is one measured quantity, one value per run.
type metric struct {
	name, unit string
	values     []float64
}

// summary is the median, min and max of the values.
func (m *metric) summary() (median, lo, hi float64) {
	return median3(m.values)
}

// median3 is the median, the minimum and the maximum of vs (the mean of the
// middle two when their number is even); zeros for none.
func median3(vs []float64) (median, lo, hi float64) {
	if len(vs) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}

type report struct {
	s       settings
	metrics []*metric
	elapsed time.Duration
}

func newReport(s settings) *report { return &report{s: s} }

// add records one run's value of name.
func (r *report) add(name, unit string, v float64) {
	for _, m := range r.metrics {
		if m.name == name {
			m.values = append(m.values, v)
			return
		}
	}
	r.metrics = append(r.metrics, &metric{name: name, unit: unit, values: []float64{v}})
}

func (r *report) get(name string) *metric {
	for _, m := range r.metrics {
		if m.name == name {
			return m
		}
	}
	return nil
}

// missing lists the required ratios that have no value.
func (r *report) missing() []string {
	var out []string
	for _, n := range requiredRatios {
		if r.get(n) == nil {
			out = append(out, n)
		}
	}
	return out
}

// format gives a value as many digits as are meaningful for its size.
func format(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// print writes the table, then one BENCH line per metric (its median).
func (r *report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "name\tmedian\tmin\tmax\tunit\truns\t\n")
	for _, m := range r.metrics {
		med, lo, hi := m.summary()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t\n", m.name, format(med), format(lo), format(hi), m.unit, len(m.values))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, m := range r.metrics {
		med, _, _ := m.summary()
		fmt.Fprintf(w, "BENCH %s %s %s\n", m.name, format(med), strings.ReplaceAll(m.unit, " ", "_"))
	}
}

// machine describes where the numbers were measured.
func machine(goVersion string) []string {
	nproc, _ := exec.Command("nproc").Output()
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return []string{
		"CPUs (nproc): " + strings.TrimSpace(string(nproc)),
		"CPU model: " + model,
		"memory: " + mem,
		"kernel: Linux " + strings.TrimSpace(string(kernel)),
		"go: " + goVersion,
		"date: " + time.Now().UTC().Format("2006-01-02 15:04 UTC"),
	}
}

// writeMarkdown writes BENCHMARKS.md through a temporary file and rename.
func (r *report) writeMarkdown(path, goVersion string) error {
	var b strings.Builder
	mode := "full"
	if r.s.quick {
		mode = "quick (QUICK=1: smaller images and loads; not for publishing)"
	}
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (ops/bench). Every number is the median of %d runs, with the\n", r.s.runs)
	fmt.Fprintf(&b, "minimum and maximum; every ratio is taken within one run, against a reference measured\n")
	fmt.Fprintf(&b, "in that run on the same machine, and then summarized. Mode: %s. Wall time: %s.\n\n",
		mode, r.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "## Machine\n\n")
	for _, l := range machine(goVersion) {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	fmt.Fprintf(&b, "\nThe machine is shared: other jobs may have run at the same time, which is why only\n")
	fmt.Fprintf(&b, "ratios to a reference measured in the same run are meant to be compared.\n\n")
	fmt.Fprintf(&b, "## Set-up\n\n")
	for _, l := range r.setup() {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	fmt.Fprintf(&b, "\n## Results\n\n")
	fmt.Fprintf(&b, "| name | median | min | max | unit | what |\n|---|--:|--:|--:|---|---|\n")
	for _, m := range r.metrics {
		med, lo, hi := m.summary()
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", m.name, format(med), format(lo), format(hi), m.unit, describe(m.name))
	}
	fmt.Fprintf(&b, "\n```\n")
	for _, m := range r.metrics {
		med, _, _ := m.summary()
		fmt.Fprintf(&b, "BENCH %s %s %s\n", m.name, format(med), strings.ReplaceAll(m.unit, " ", "_"))
	}
	fmt.Fprintf(&b, "```\n\n")
	b.WriteString(profileNotes)

	tmp, err := os.CreateTemp(filepath.Dir(path), ".benchmarks-*.md")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// setup describes the sizes and counts of this invocation.
func (r *report) setup() []string {
	s := r.s
	return []string{
		fmt.Sprintf("token loads: %d concurrent clients, GET with Basic auth for one push/pull scope, credentials cached; each load stops after %d requests or %v", s.tokenWorkers, s.tokenCount, s.tokenTime),
		"token reuse: the token server runs with the default token_reuse_percent (10 % of token_ttl, 30 s), so the token loads measure reuse; a second token server on the same keys and users with token_reuse_percent 0 gives the _noreuse figures in the same run",
		fmt.Sprintf("the mix: %d keep-alive clients as %d users, each user pulling %d different repositories of its own (%d distinct user and scope pairs, asked for in turn), credentials cached, against each token server", mixClients, mixUsers, mixRepos, mixUsers*mixRepos),
		"ceiling: a process serving a fixed JSON body of a token reply's size through the same shared/serve server, shared/tlsconf configuration and certificate, asked with the same GET request (query and Basic auth); the refresh grant is compared with the same keep-alive ceiling",
		"ceiling with the audit line (ceiling_audit): the same process also writing, before each reply, the token server's audit line for a grant (same attributes, the daemons' text logger, standard error appended to a file like the token server's): what the one line per request costs",
		"refresh token store: a token server started on a state file of 1000 or 100000 refresh tokens of other users; sequential requests of one client: a cached GET token (the reference), an offline login (adds a refresh token), a refresh grant of another user (a lookup), and that grant again while the bench user loops offline logins",
		fmt.Sprintf("Keystone: a real Keystone (ops/test-keystone.sh); %d sequential requests of one user, %d concurrent cold requests of another, %d bad passwords of a third, each run with new users and a fresh token server", s.ksSequential, s.ksConcurrent, s.ksBad),
		fmt.Sprintf("images: one layer of %d MiB, and %d layers of %d KiB; random (incompressible) data in uncompressed tar layers, so that the registries move bytes rather than skopeo compressing them", s.bigBytes>>20, s.smallLayers, s.smallLayerBytes>>10),
		"skopeo copy from an OCI layout to each registry (push) and back to a new OCI layout (pull), through TLS and token auth; each run starts both registries on new, empty storage roots in the same file system",
		"upstream: distribution v3.1.2 cmd/registry built from the module cache, with the same certificate, token server, issuer, service, signing certificate bundle, filesystem driver, in-memory blob descriptor cache and deletes enabled",
		fmt.Sprintf("parallel pulls: %d clients at once, each with its own TLS connections: token, manifest, then every blob, digests checked, of an image of %d layers of %d KiB", s.parallelPulls, s.concLayers, s.concLayerBytes>>10),
		fmt.Sprintf("parallel tokens: %d requests at once, each on its own new TLS connection", s.parallelTokens),
		blobSetup(s),
		fmt.Sprintf("referrers: %d artifacts naming one subject, each also tagged, and %d other manifests in the same repository, pushed to stx-registry on new storage; then %d timed GETs of the referrers listing and of the tag list, each one page of %d entries", s.referrers, s.unrelated, s.listRepeats, s.referrers),
		"RSS: VmHWM (peak resident memory) from /proc; CPU: utime+stime from /proc",
	}
}

// describe says what a metric is, for BENCHMARKS.md.
func describe(name string) string {
	d := map[string]string{
		"token_server_rss_idle":                     "token server peak RSS after start and one login",
		"token_server_rss_token_load":               "token server peak RSS after the token loads",
		"token_server_rss_parallel_tokens":          "token server peak RSS after the parallel loads",
		"ceiling_rate":                              "ceiling, keep-alive",
		"token_rate":                                "GET token, keep-alive",
		"token_noreuse_rate":                        "GET token, keep-alive, token_reuse_percent 0",
		"token_noreuse_vs_ceiling_ratio":            "token/s over ceiling/s (keep-alive), token_reuse_percent 0",
		"token_noreuse_cpu_seconds_per_1000":        "token server CPU per 1000 tokens (keep-alive), token_reuse_percent 0",
		"token_mix_rate":                            "GET token, the mix (200 clients, 20 users × 50 repositories)",
		"token_mix_noreuse_rate":                    "GET token, the mix, token_reuse_percent 0",
		"token_mix_vs_noreuse_ratio":                "the mix's tokens/s with reuse over without",
		"refresh_rate":                              "POST grant_type=refresh_token, keep-alive",
		"ceiling_newconn_rate":                      "ceiling, new TLS connection per request",
		"token_newconn_rate":                        "GET token, new TLS connection per request",
		"token_vs_ceiling_ratio":                    "token/s over ceiling/s (keep-alive)",
		"refresh_vs_ceiling_ratio":                  "refresh/s over ceiling/s (keep-alive)",
		"token_newconn_vs_ceiling_ratio":            "token/s over ceiling/s, new connection per request",
		"token_cpu_seconds_per_1000":                "token server CPU per 1000 tokens (keep-alive)",
		"ceiling_cpu_seconds_per_1000":              "ceiling CPU per 1000 replies (keep-alive)",
		"ceiling_audit_rate":                        "ceiling writing the audit line, keep-alive",
		"ceiling_audit_vs_ceiling_ratio":            "ceiling with the audit line over the ceiling, replies/s (keep-alive)",
		"token_vs_ceiling_audit_ratio":              "token/s over the ceiling with the audit line (keep-alive)",
		"ceiling_audit_cpu_seconds_per_1000":        "ceiling with the audit line, CPU per 1000 replies (keep-alive)",
		"refresh_store_get_1k_p50":                  "p50 latency of a cached GET token, store of 1k",
		"refresh_store_get_1k_p99":                  "p99 latency of a cached GET token, store of 1k",
		"refresh_store_get_100k_p50":                "p50 latency of a cached GET token, store of 100k",
		"refresh_store_get_100k_p99":                "p99 latency of a cached GET token, store of 100k",
		"refresh_store_add_1k_p50":                  "p50 latency of an offline login (adds a refresh token), store of 1k",
		"refresh_store_add_1k_p99":                  "p99 latency of an offline login (adds a refresh token), store of 1k",
		"refresh_store_add_100k_p50":                "p50 latency of an offline login (adds a refresh token), store of 100k",
		"refresh_store_add_100k_p99":                "p99 latency of an offline login (adds a refresh token), store of 100k",
		"refresh_store_lookup_1k_p50":               "p50 latency of a refresh grant (a lookup), store of 1k",
		"refresh_store_lookup_1k_p99":               "p99 latency of a refresh grant (a lookup), store of 1k",
		"refresh_store_lookup_100k_p50":             "p50 latency of a refresh grant (a lookup), store of 100k",
		"refresh_store_lookup_100k_p99":             "p99 latency of a refresh grant (a lookup), store of 100k",
		"refresh_store_lookup_during_adds_1k_p50":   "p50 latency of another user's refresh grant while one user loops logins, store of 1k",
		"refresh_store_lookup_during_adds_1k_p99":   "p99 latency of another user's refresh grant while one user loops logins, store of 1k",
		"refresh_store_lookup_during_adds_100k_p50": "p50 latency of another user's refresh grant while one user loops logins, store of 100k",
		"refresh_store_lookup_during_adds_100k_p99": "p99 latency of another user's refresh grant while one user loops logins, store of 100k",
		"refresh_store_add_vs_get_1k_ratio":         "offline login p50 over cached GET p50, store of 1k",
		"refresh_store_add_vs_get_100k_ratio":       "offline login p50 over cached GET p50, store of 100k",
		"refresh_store_lookup_vs_get_1k_ratio":      "refresh grant p50 over cached GET p50, store of 1k",
		"refresh_store_lookup_vs_get_100k_ratio":    "refresh grant p50 over cached GET p50, store of 100k",
		"keystone_calls_sequential":                 "Keystone calls for the sequential requests of one user",
		"keystone_calls_concurrent_cold":            "Keystone calls for the concurrent first requests of one user",
		"keystone_calls_bad_passwords":              "Keystone calls for the bad passwords of one user",
		"keystone_requests_per_call":                "token requests answered per Keystone call, all three phases",
		"push_rate":                                 "stx-registry push, one large layer",
		"push_upstream_rate":                        "upstream push, one large layer",
		"pull_rate":                                 "stx-registry pull, one large layer",
		"pull_upstream_rate":                        "upstream pull, one large layer",
		"pull_ceiling_rate":                         "cat blob | sha256sum of the same blob",
		"push_vs_upstream_ratio":                    "stx-registry/upstream push MB/s, large layer",
		"pull_vs_upstream_ratio":                    "stx-registry/upstream pull MB/s, large layer",
		"pull_vs_ceiling_ratio":                     "stx-registry pull MB/s over cat | sha256sum",
		"push_small_layers_rate":                    "stx-registry push, many small layers",
		"push_small_layers_upstream_rate":           "upstream push, many small layers",
		"pull_small_layers_rate":                    "stx-registry pull, many small layers",
		"pull_small_layers_upstream_rate":           "upstream pull, many small layers",
		"push_small_layers_vs_upstream_ratio":       "stx-registry/upstream push MB/s, small layers",
		"pull_small_layers_vs_upstream_ratio":       "stx-registry/upstream pull MB/s, small layers",
		"registry_rss_idle":                         "stx-registry peak RSS after start",
		"upstream_rss_idle":                         "upstream peak RSS after start",
		"registry_rss_push_pull":                    "stx-registry peak RSS after the pushes and pulls",
		"upstream_rss_push_pull":                    "upstream peak RSS after the pushes and pulls",
		"parallel_pulls_ok":                         "stx-registry: successful pulls of the parallel pulls",
		"parallel_pulls_upstream_ok":                "upstream: successful pulls of the parallel pulls",
		"parallel_pulls_wall":                       "stx-registry: wall time of all parallel pulls",
		"parallel_pulls_upstream_wall":              "upstream: wall time of all parallel pulls",
		"parallel_pulls_p99":                        "stx-registry: 99th percentile of one pull",
		"parallel_pulls_upstream_p99":               "upstream: 99th percentile of one pull",
		"registry_rss_parallel_pulls":               "stx-registry peak RSS after the parallel pulls",
		"upstream_rss_parallel_pulls":               "upstream peak RSS after the parallel pulls",
		"parallel_tokens_errors":                    "failed requests of the parallel token requests",
		"parallel_tokens_wall":                      "wall time of the parallel token requests",
		"parallel_tokens_p99":                       "99th percentile of one parallel token request",
		"referrers_list_p50":                        "GET referrers of one subject, one page (see set-up)",
		"referrers_list_p99":                        "GET referrers of one subject, one page (p99)",
		"tags_list_p50":                             "GET tags/list, one page of as many tags, same repository",
		"tags_list_p99":                             "GET tags/list, one page of as many tags (p99)",
		"referrers_vs_tags_list_ratio":              "referrers listing p50 over tag list p50",
	}
	if v, ok := d[name]; ok {
		return v
	}
	if v, ok := blobDescribe(name); ok {
		return v
	}
	for _, suf := range []string{"_p50", "_p99"} {
		if base, ok := strings.CutSuffix(name, suf); ok {
			return suf[1:] + " latency of " + strings.TrimSuffix(describe(base+"_rate"), ".")
		}
	}
	return ""
}
