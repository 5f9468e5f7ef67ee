package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"stx-registry/registry/config"
	"stx-registry/registry/referrers"
	"stx-registry/registry/storageroot"
	"stx-registry/shared/logging"
)

// rebuildUsage is the synopsis of the referrers-rebuild subcommand.
const rebuildUsage = "usage: stx-registry referrers-rebuild [-f file]"

// rebuildMain is "stx-registry referrers-rebuild [-f CONFIG]": it makes the
// referrer records under root_directory match the manifests (see
// referrers.Store.Rebuild), beside the running daemon or without it, and
// prints and logs what it wrote and removed. It exits 0, 1 on an error or 2
// on a usage error. Run it as the user the daemon runs as.
func rebuildMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stx-registry referrers-rebuild", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("f", config.DefaultFile, "configuration `file`")
	usage := func(w io.Writer) {
		fmt.Fprintln(w, rebuildUsage)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return exitOK
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "stx-registry: %v\n", err)
		usage(stderr)
		return exitUsage
	}
	cfg, err := config.Load(*configFile)
	if err != nil {
		return fail(stderr, err)
	}
	logger, err := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return fail(stderr, err)
	}
	if err := storageroot.Check(cfg.RootDirectory, cfg.RequireMount); err != nil {
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
