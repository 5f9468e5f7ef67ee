// Command bench measures stx-registry and stx-token-server side by side with
// a reference measured in the same run on the same machine (make bench).
//
// Usage:
//
//	go run ./ops/bench [-quick] [-runs N] [-out BENCHMARKS.md] [-keep] [-only STEP]
//	bench ceiling -cert F -key F -addr IP:PORT -size N   (started by bench itself)
//	bench dataceiling -cert F -key F -addr IP:PORT -dir D  (likewise)
//
// It builds both daemons and upstream distribution's registry into a
// temporary directory, lays out certificates and configurations with
// ops/demo-config.sh on free 127.0.0.1 ports, and measures:
//
//   - token issuance (keep-alive, refresh grant, new TLS connection per
//     request) against a ceiling: a process of this tool serving a fixed JSON
//     body of a token reply's size through the same shared/serve server and
//     shared/tlsconf configuration; with token reuse at its default, and
//     without (a second token server with token_reuse_percent 0); and a
//     realistic mix of 200 clients as 20 users pulling 50 repositories each,
//     with reuse and without;
//   - the refresh token store at 1k and 100k entries: an offline login (an
//     add) and a refresh grant (a lookup), also while another user loops
//     logins, against a cached GET token through the same server;
//   - Keystone calls made for 1000 sequential, 64 concurrent cold and 300
//     bad-password token requests, against a real Keystone
//     (ops/test-keystone.sh);
//   - skopeo push and pull throughput of a large single-layer and a
//     100-layer image, against upstream distribution's registry configured
//     alike, and pull against cat | sha256sum of the same blob;
//   - push and pull of one large blob with plain HTTP requests: MB/s and
//     the server's CPU seconds per GiB for stx-registry, upstream and a
//     data ceiling, a process of this tool that stores and serves the
//     blob through the same shared/serve server and certificate;
//   - 200 parallel pulls and 500 parallel token requests;
//   - the p99 of a correct, uncached login from one address while another
//     floods made-up names, bursts 500 bad logins or loops one user's bad
//     passwords;
//   - the referrers listing of a subject with 1000 referrers among 10000
//     other manifests, against the tag list of as many tags;
//   - peak RSS and CPU time of the daemons.
//
// Every number is the median of -runs runs with min and max. Ratios are
// computed within one run and then summarized. Output: a table and lines
// "BENCH name value unit" on standard output, and the Markdown report -out.
// Every load is bounded by a count and a time; everything listens on
// 127.0.0.1; every process started is killed by its PID on exit, also on
// error or interrupt.
//
// The daemons, their set-up, Keystone and the images come from the test rig
// (shared/testrig). It drives the built binaries and imports nothing from
// registry/ or token/, so it stays out of the daemons' import graph.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"stx-registry/shared/testrig"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ceiling" {
		if err := ceilingMain(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "bench ceiling: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "dataceiling" {
		if err := dataCeilingMain(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "bench dataceiling: %v\n", err)
			os.Exit(1)
		}
		return
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "small sizes and counts: finishes in under 3 minutes")
	runs := fs.Int("runs", 3, "runs per measurement (the median is reported), 1 to 9")
	out := fs.String("out", "BENCHMARKS.md", "Markdown report `file` (\"\" for none)")
	keep := fs.Bool("keep", false, "keep the work directory (logs, configs) for inspection")
	only := fs.String("only", "", "run only the step `STEP` (tokens, refresh, keystone, datapath, blob, concurrency, attacks or referrers), e.g. while tuning; the report then lacks the other figures")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *runs < 1 || *runs > maxRuns {
		fmt.Fprintf(os.Stderr, "bench: -runs %d is out of range, use 1 to %d\n", *runs, maxRuns)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s := settingsFor(*quick, *runs)
	s.only = *only
	if err := run(ctx, s, *out, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// maxRuns bounds -runs: each run repeats every measurement.
const maxRuns = 9

// settings are the sizes and counts of one bench invocation.
type settings struct {
	quick bool
	runs  int
	only  string // the one step to run; "" for all

	tokenCount   int           // requests per token load
	tokenTime    time.Duration // bound on one token load
	tokenWorkers int           // concurrent clients

	bigBytes        int64 // the single-layer image
	smallLayers     int   // the many-layer image
	smallLayerBytes int64
	concLayers      int // the image pulled concurrently
	concLayerBytes  int64
	parallelPulls   int
	parallelTokens  int

	ksSequential int // Keystone phases
	ksConcurrent int
	ksBad        int

	referrers   int // referrers of one subject, each also tagged
	unrelated   int // other manifests in the same repository
	listRepeats int // timed GETs of each listing
}

func settingsFor(quick bool, runs int) settings {
	s := settings{
		quick: quick, runs: runs,
		tokenCount: 20000, tokenTime: 15 * time.Second, tokenWorkers: 32,
		bigBytes: 512 << 20, smallLayers: 100, smallLayerBytes: 1 << 20,
		concLayers: 4, concLayerBytes: 1 << 20, parallelPulls: 200, parallelTokens: 500,
		ksSequential: 1000, ksConcurrent: 64, ksBad: 300,
		referrers: 1000, unrelated: 10000, listRepeats: 50,
	}
	if quick {
		s.tokenCount, s.tokenTime = 3000, 4*time.Second
		s.bigBytes, s.smallLayers, s.smallLayerBytes = 64<<20, 20, 512<<10
		s.unrelated, s.listRepeats = 1000, 20
	}
	return s
}

func run(ctx context.Context, s settings, out string, keep bool) (err error) {
	began := time.Now()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	w, err := newWorkspace(ctx, log)
	if err != nil {
		return err
	}
	defer func() {
		w.procs.stopAll()
		if keep || err != nil {
			log.Info("work directory kept", "dir", w.dir)
			if w.layout != nil {
				log.Info("daemons kept", "dir", w.layout.Bin.Dir)
			}
			return
		}
		testrig.RemoveDaemons()
		os.RemoveAll(w.dir)
	}()
	type step struct {
		key, name string
		fn        func(context.Context, settings, *report) error
	}
	steps := []step{
		{"tokens", "token issuance", w.benchTokens},
		{"refresh", "refresh token store", w.benchRefreshStore},
		{"keystone", "keystone load", w.benchKeystone},
		{"datapath", "registry data path", w.benchDataPath},
		{"blob", "blob data path", w.benchBlob},
		{"concurrency", "concurrency", w.benchConcurrency},
		{"attacks", "attacks", w.benchAttacks},
		{"referrers", "referrers listing", w.benchReferrers},
	}
	if s.only != "" && !slices.ContainsFunc(steps, func(st step) bool { return st.key == s.only }) {
		return fmt.Errorf("-only %q: no such step, give tokens, refresh, keystone, datapath, blob, concurrency, attacks or referrers", s.only)
	}
	rep := newReport(s)
	if err := w.build(ctx); err != nil {
		return err
	}
	if err := w.setup(ctx); err != nil {
		return err
	}
	for _, st := range steps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.only != "" && st.key != s.only {
			continue
		}
		log.Info("bench step", "step", st.name)
		t0 := time.Now()
		if err := st.fn(ctx, s, rep); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		log.Info("bench step done", "step", st.name, "seconds", int(time.Since(t0).Seconds()))
	}
	rep.elapsed = time.Since(began)
	rep.print(os.Stdout)
	if out != "" {
		if err := rep.writeMarkdown(out, w.goVersion); err != nil {
			return err
		}
	}
	if missing := rep.missing(); len(missing) > 0 && s.only == "" {
		return errors.New("no value for " + fmt.Sprint(missing))
	}
	return nil
}
