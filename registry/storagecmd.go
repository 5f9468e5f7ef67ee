package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
	"time"

	"stx-registry/registry/config"
	"stx-registry/registry/gc"
	"stx-registry/registry/storageroot"
	"stx-registry/registry/usage"
	"stx-registry/shared/logging"
)

// maxLockWait bounds how long "stx-registry gc" waits for the storage lock.
const maxLockWait = 5 * time.Minute

// gcMain is "stx-registry gc [-n] [-delete-untagged] [-f CONFIG]": one
// garbage collection of root_directory, run in this process beside the
// daemon or without it (see package gc for why that is safe). It prints
// and logs what it removed, and exits 0, 1 on an error or 2 on a usage
// error. It must run as the user the daemon runs as.
func gcMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stx-registry gc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("f", config.DefaultFile, "configuration `file`")
	dryRun := fs.Bool("n", false, "dry run: report what would be removed, remove nothing")
	deleteUntagged := fs.Bool("delete-untagged", false, "also remove manifests no tag reaches")
	if code, ok := parseSub(fs, args, "gc [-n] [-delete-untagged] [-f file]", stdout, stderr); !ok {
		return code
	}
	cfg, logger, err := loadRoot(*configFile, stderr)
	if err != nil {
		return fail(stderr, err)
	}
	lock, err := gc.OpenLock(cfg.RootDirectory)
	if err != nil {
		return fail(stderr, err)
	}
	// SIGINT or SIGTERM while waiting for the lock gives up cleanly; once
	// the collection runs they are left to their default, and an
	// interrupted collection is finished by the next one.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, maxLockWait)
	defer cancel()
	res, err := gc.Collect(ctx, cfg.RootDirectory, lock, gc.Options{
		DryRun: *dryRun, DeleteUntagged: *deleteUntagged, Grace: cfg.GCGrace})
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("gc: pushes kept the storage lock busy for %s: try again later", maxLockWait)
	}
	if err != nil {
		logger.Error("garbage collection failed", "err", err)
		return fail(stderr, err)
	}
	verb := "removed"
	if *dryRun {
		verb = "would remove"
	}
	fmt.Fprintf(stdout, "gc: %s %d blobs (%d bytes, %s), %d manifests, %d layer links in %s; kept %d blobs (%d unreferenced but younger than gc_grace %s); waited %s for pushes in flight\n",
		verb, res.Blobs, res.Bytes, usage.Human(res.Bytes), res.Manifests, res.LayerLinks,
		res.Duration.Round(1e6), res.Kept, res.Young, cfg.GCGrace, res.Waited.Round(1e6))
	logger.Info("garbage collection", "dry_run", *dryRun, "delete_untagged", *deleteUntagged,
		"blobs", res.Blobs, "manifests", res.Manifests, "layer_links", res.LayerLinks, "bytes", res.Bytes,
		"kept", res.Kept, "young", res.Young, "duration", res.Duration.String(), "waited", res.Waited.String())
	return exitOK
}

// usageMain is "stx-registry usage [-f CONFIG]": bytes per namespace and the
// total, read without any lock.
func usageMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stx-registry usage", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("f", config.DefaultFile, "configuration `file`")
	if code, ok := parseSub(fs, args, "usage [-f file]", stdout, stderr); !ok {
		return code
	}
	cfg, _, err := loadRoot(*configFile, stderr)
	if err != nil {
		return fail(stderr, err)
	}
	r, err := usage.Measure(cfg.RootDirectory)
	if err != nil {
		return fail(stderr, err)
	}
	if err := r.Write(stdout); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

// parseSub parses a subcommand's flags; ok false means return code.
func parseSub(fs *flag.FlagSet, args []string, synopsis string, stdout, stderr io.Writer) (code int, ok bool) {
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usage: stx-registry "+synopsis)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return exitOK, false
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "stx-registry: %v\n", err)
		usage(stderr)
		return exitUsage, false
	}
	return 0, true
}

// loadRoot loads the configuration, checks the storage root, as the
// daemon does at start, and makes the subcommand's logger on stderr.
func loadRoot(file string, stderr io.Writer) (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, nil, err
	}
	if err := storageroot.Check(cfg.RootDirectory, cfg.RequireMount); err != nil {
		return nil, nil, err
	}
	logger, err := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return nil, nil, err
	}
	return cfg, logger, nil
}
