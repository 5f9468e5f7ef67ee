package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"stx-registry/registry/config"
	"stx-registry/registry/referrers"
)

// rebuildSynopsis is the referrers-rebuild subcommand's usage.
const rebuildSynopsis = "referrers-rebuild [-f file]"

// rebuildMain is "stx-registry referrers-rebuild [-f CONFIG]": it makes the
// referrer records under root_directory match the manifests (see
// referrers.Store.Rebuild), beside the running daemon or without it, and
// prints and logs what it wrote and removed. It exits 0, 1 on an error or 2
// on a usage error. Run it as the user the daemon runs as.
func rebuildMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stx-registry referrers-rebuild", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("f", config.DefaultFile, "configuration `file`")
	if code, ok := parseSub(fs, args, rebuildSynopsis, stdout, stderr); !ok {
		return code
	}
	cfg, logger, err := loadRoot(*configFile, stderr)
	if err != nil {
		return fail(stderr, err)
	}
	store, err := referrers.Open(cfg.RootDirectory)
	if err != nil {
		return fail(stderr, err)
	}
	defer store.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	start := time.Now()
	res, err := store.Rebuild(ctx)
	if err != nil {
		logger.Error("referrers rebuild failed", "err", err)
		return fail(stderr, err)
	}
	took := time.Since(start).Round(time.Millisecond)
	fmt.Fprintf(stdout, "referrers-rebuild: read %d manifests in %d repositories in %s; wrote %d records, removed %d\n",
		res.Manifests, res.Repositories, took, res.Written, res.Removed)
	logger.Info("referrers rebuild", "repositories", res.Repositories, "manifests", res.Manifests,
		"written", res.Written, "removed", res.Removed, "duration", took.String())
	return exitOK
}
