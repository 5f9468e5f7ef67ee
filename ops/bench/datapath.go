package main

// The registry data path: skopeo push and pull through stx-registry and
// through upstream distribution's registry, configured alike.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"stx-registry/shared/testrig"
)

const (
	// imageTag is the tag of every image the bench pushes.
	imageTag = "v1"
	// skopeoTimeout bounds one skopeo copy: 512 MB at a slow 10 MB/s.
	skopeoTimeout = 3 * time.Minute
	// ceilingTimeout bounds cat | sha256sum of one blob.
	ceilingTimeout = time.Minute
)

// registries is one pair of freshly started registries on new storage roots.
type registries struct {
	stx, upstream         *proc
	stxRoot, upstreamRoot string
}

func (r *registries) stop() {
	r.stx.Stop()
	r.upstream.Stop()
	os.RemoveAll(r.stxRoot)
	os.RemoveAll(r.upstreamRoot)
}

// startRegistries starts stx-registry (demo-config.sh's configuration) and
// upstream's registry (the same settings as YAML) on new, empty storage
// roots named after tag.
func (w *workspace) startRegistries(ctx context.Context, tag string) (*registries, error) {
	r := &registries{stxRoot: filepath.Join(w.dir, "storage-stx-"+tag), upstreamRoot: filepath.Join(w.dir, "storage-upstream-"+tag)}
	for _, d := range []string{r.stxRoot, r.upstreamRoot} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	conf := filepath.Join(w.dir, "stx-registry-"+tag+".conf")
	err := testrig.EditConf(w.layout.RegistryConf(), conf, []string{"root_directory"}, "root_directory "+r.stxRoot)
	if err != nil {
		return nil, err
	}
	yaml := filepath.Join(w.dir, "upstream-"+tag+".yml")
	if err := os.WriteFile(yaml, []byte(w.upstreamConfig(r.upstreamRoot)), 0o600); err != nil {
		return nil, err
	}
	if r.stx, err = w.startDaemon(ctx, "stx-registry-"+tag, w.registryAddr, w.layout.Bin.Registry, "-f", conf); err != nil {
		return nil, err
	}
	if r.upstream, err = w.startDaemon(ctx, "upstream-"+tag, w.upstreamAddr, filepath.Join(w.bin, "upstream-registry"), "serve", yaml); err != nil {
		r.stx.Stop()
		return nil, err
	}
	return r, nil
}

// upstreamConfig is distribution's YAML for what stx-registry sets in code
// (registry/distribution.go): filesystem root, deletes, the in-memory blob
// descriptor cache, no redirects, relative URLs, token auth pinned to the
// signing key's algorithm, the same certificate and the same token server
// and service, so that one token server serves both.
func (w *workspace) upstreamConfig(root string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  redirect:
    disable: true
http:
  addr: %s
  secret: %s
  relativeurls: true
  headers:
    X-Content-Type-Options: [nosniff]
  tls:
    certificate: %s
    key: %s
auth:
  token:
    realm: https://%s/token/
    service: %s
    issuer: %s
    rootcertbundle: %s
    signingalgorithms: [ES256]
`, root, w.upstreamAddr, testrig.RandomHex(32), w.layout.ServerCert(), w.layout.ServerKey(),
		w.tokenAddr, w.registryAddr, benchIssuer, w.layout.TokenCert())
}

// skopeo runs one skopeo copy and returns how long it took.
func (w *workspace) skopeo(ctx context.Context, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, skopeoTimeout)
	defer cancel()
	argv := append([]string{"copy", "--preserve-digests", "--retry-times", "0"}, args...)
	cmd := exec.CommandContext(ctx, "skopeo", argv...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("skopeo %s: %w\n%s", strings.Join(args[len(args)-2:], " "), err, out)
	}
	return d, nil
}

// push copies img to repo at addr; pull copies it back into a new layout.
func (w *workspace) push(ctx context.Context, img *testrig.Image, addr, repo string) (time.Duration, error) {
	return w.skopeo(ctx, "--dest-cert-dir", w.layout.CertDir(), "--dest-creds", benchUser+":"+w.password,
		img.Ref(), "docker://"+addr+"/"+repo+":"+imageTag)
}

func (w *workspace) pull(ctx context.Context, addr, repo string) (time.Duration, error) {
	out := filepath.Join(w.dir, "pulled")
	os.RemoveAll(out)
	defer os.RemoveAll(out)
	return w.skopeo(ctx, "--src-cert-dir", w.layout.CertDir(), "--src-creds", benchUser+":"+w.password,
		"docker://"+addr+"/"+repo+":"+imageTag, "oci:"+out+":"+imageTag)
}

// mbps is megabytes (10^6) per second.
func mbps(bytes int64, d time.Duration) float64 {
	return float64(bytes) / 1e6 / d.Seconds()
}

// benchDataPath pushes and pulls the large and the many-layer image through
// both registries, per run on new storage, alternating which goes first.
func (w *workspace) benchDataPath(ctx context.Context, s settings, rep *report) error {
	t0 := time.Now()
	big, err := testrig.NewImage(filepath.Join(w.dir, "image-big"), imageTag, 1, s.bigBytes, testrig.Tar)
	if err != nil {
		return err
	}
	small, err := testrig.NewImage(filepath.Join(w.dir, "image-small"), imageTag, s.smallLayers, s.smallLayerBytes, testrig.Tar)
	if err != nil {
		return err
	}
	w.log.Info("images written", "seconds", int(time.Since(t0).Seconds()))
	defer os.RemoveAll(big.Dir)
	defer os.RemoveAll(small.Dir)
	for run := range s.runs {
		w.log.Info("registry data path", "run", run+1)
		regs, err := w.startRegistries(ctx, fmt.Sprint("data-", run))
		if err != nil {
			return err
		}
		err = w.dataRun(ctx, rep, regs, big, small, run%2 == 1)
		regs.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *workspace) dataRun(ctx context.Context, rep *report, regs *registries, big, small *testrig.Image, upstreamFirst bool) error {
	for _, p := range []struct {
		name string
		proc *proc
	}{{"registry_rss_idle", regs.stx}, {"upstream_rss_idle", regs.upstream}} {
		v, err := p.proc.peakRSS()
		if err != nil {
			return err
		}
		rep.add(p.name, "MiB", v)
	}
	type target struct{ suffix, addr string }
	targets := []target{{"", w.registryAddr}, {"_upstream", w.upstreamAddr}}
	if upstreamFirst {
		targets[0], targets[1] = targets[1], targets[0]
	}
	for _, im := range []struct {
		img  *testrig.Image
		kind string // "" or "_small_layers"
		repo string
	}{{big, "", benchUser + "/big"}, {small, "_small_layers", benchUser + "/small"}} {
		rates := map[string]float64{}
		for _, op := range []string{"push", "pull"} {
			for _, t := range targets {
				var d time.Duration
				var err error
				if op == "push" {
					d, err = w.push(ctx, im.img, t.addr, im.repo)
				} else {
					d, err = w.pull(ctx, t.addr, im.repo)
				}
				if err != nil {
					return err
				}
				name := op + im.kind + t.suffix
				rates[name] = mbps(im.img.LayerBytes(), d)
				rep.add(name+"_rate", "MB/s", rates[name])
			}
			rep.add(op+im.kind+"_vs_upstream_ratio", "ratio", rates[op+im.kind]/rates[op+im.kind+"_upstream"])
		}
		if im.kind == "" {
			blob := filepath.Join(regs.stxRoot, "docker", "registry", "v2", "blobs", "sha256",
				im.img.Layers[0].Digest[7:9], im.img.Layers[0].Digest[7:], "data")
			d, err := catSHA256(ctx, blob)
			if err != nil {
				return err
			}
			c := mbps(im.img.LayerBytes(), d)
			rep.add("pull_ceiling_rate", "MB/s", c)
			rep.add("pull_vs_ceiling_ratio", "ratio", rates["pull"]/c)
		}
	}
	for _, p := range []struct {
		name string
		proc *proc
	}{{"registry_rss_push_pull", regs.stx}, {"upstream_rss_push_pull", regs.upstream}} {
		v, err := p.proc.peakRSS()
		if err != nil {
			return err
		}
		rep.add(p.name, "MiB", v)
	}
	return nil
}

// catSHA256 times cat FILE | sha256sum: reading a blob and hashing it, the
// least a pull must do.
func catSHA256(ctx context.Context, file string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, ceilingTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `cat "$1" | sha256sum >/dev/null`, "sh", file)
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("cat %s | sha256sum: %w\n%s", file, err, out)
	}
	return time.Since(t0), nil
}
