package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	// The token access controller and the filesystem driver register
	// themselves by name; these are the only two plug-ins linked in.
	// tokenController (accesscontroller.go) builds the former by name.
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

const (
	// maxTokenBundleBytes bounds token_certificate: a few certificates
	// take a few kilobytes.
	maxTokenBundleBytes = 1 << 20
	// httpSecretBytes is the size of the random key distribution uses to
	// sign upload session state, made fresh at every start.
	httpSecretBytes = 32
)

// tokenAlgorithms reads the token server's signing certificate bundle and
// returns the JWS algorithms its keys sign with, as distribution wants them
// ([]any of strings; a []string is rejected). Pinning matters: by default
// distribution accepts every algorithm, including HMAC ones.
func tokenAlgorithms(path string) ([]any, error) {
	algs, _, err := readTokenBundle(path)
	return algs, err
}

// readTokenBundle is tokenAlgorithms that also counts the certificates.
func readTokenBundle(path string) (algs []any, certs int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("token_certificate: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenBundleBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("token_certificate %s: %w", path, err)
	}
	if len(data) > maxTokenBundleBytes {
		return nil, 0, fmt.Errorf("token_certificate %s is larger than %d bytes: give only the token server's signing certificates", path, maxTokenBundleBytes)
	}
	algs, certs, err = bundleAlgorithms(data)
	if err != nil {
		return nil, 0, fmt.Errorf("token_certificate %s: %w", path, err)
	}
	return algs, certs, nil
}

// bundleAlgorithms maps each certificate's public key in a PEM bundle to its
// JWS algorithm, without duplicates, in the order first seen, and counts the
// certificates.
func bundleAlgorithms(data []byte) (algs []any, certs int, err error) {
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, 0, fmt.Errorf("PEM block %d is %q, want only CERTIFICATE blocks", n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, 0, fmt.Errorf("certificate %d: %w", n, err)
		}
		alg, err := keyAlgorithm(cert.PublicKey)
		if err != nil {
			return nil, 0, fmt.Errorf("certificate %d (%s): %w", n, cert.Subject, err)
		}
		if !slices.Contains(algs, any(alg)) {
			algs = append(algs, alg)
		}
		certs++
	}
	if certs == 0 {
		return nil, 0, errors.New("no PEM certificate found: give the token server's signing certificate")
	}
	return algs, certs, nil
}

// keyAlgorithm names the one JWS algorithm accepted for a token signing
// key. RSA keys get RS256 only, which is what token servers sign with.
func keyAlgorithm(pub any) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
		return "", fmt.Errorf("unsupported elliptic curve %s: use P-256, P-384 or P-521", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return "RS256", nil
	case ed25519.PublicKey:
		return "EdDSA", nil
	}
	return "", fmt.Errorf("unsupported public key type %T: use ECDSA, RSA or Ed25519", pub)
}

// Page bounds for the catalog and tag lists (distribution's own defaults).
const (
	maxCatalogEntries = 1000
	maxTagsPerPage    = 1000
)

// distributionConfig translates our configuration into distribution's, in
// code: operators never write distribution YAML. Everything not set here is
// off: no debug server, no Prometheus, no notifications, no Redis, no proxy
// mode, no health checks of distribution's own.
//
// Authorization goes through tokens, our tokenController around
// distribution's token verifier, so that token_certificate can change
// without a restart.
func distributionConfig(c *Config, tokens *tokenController) (*configuration.Configuration, error) {
	// Distribution HMAC-signs upload session state with this secret. It is
	// random per start and not shared, so an upload in progress does not
	// survive a restart or failover: the client gets "blob upload unknown"
	// and starts that layer's upload again.
	secret := make([]byte, httpSecretBytes)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generating the upload session secret: %w", err)
	}
	return &configuration.Configuration{
		Version: configuration.MajorMinorVersion(0, 1),
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": c.RootDirectory},
			// StarlingX deletes images; garbage collection runs offline.
			"delete": configuration.Parameters{"enabled": true},
			// uploadpurging is left out so distribution's default applies
			// (purge uploads older than a week, daily).
			"maintenance": configuration.Parameters{
				"readonly": map[any]any{"enabled": c.ReadOnly},
			},
			"cache": configuration.Parameters{"blobdescriptor": "inmemory"},
			// The filesystem driver cannot redirect; say so explicitly.
			"redirect": configuration.Parameters{"disable": true},
		},
		// The token options (tokenOptions) live in tokens, which builds
		// distribution's "token" access controller from them at each load.
		Auth: configuration.Auth{
			tokenAuthName: configuration.Parameters{controllerOption: tokens},
		},
		HTTP: configuration.HTTP{
			Secret: string(secret),
			// Location headers are relative, so they are never built from
			// the client's Host or X-Forwarded-* headers.
			RelativeURLs: true,
			Headers:      http.Header{"X-Content-Type-Options": {"nosniff"}},
		},
		// Distribution fills these defaults only when it parses YAML; a
		// zero MaxEntries would make the catalog always empty, a zero
		// MaxTags would leave tags/list?n= unbounded.
		Catalog: configuration.Catalog{MaxEntries: maxCatalogEntries},
		Tags:    configuration.Tags{MaxTags: maxTagsPerPage},
		// The access log is ours (accessLog); distribution's would go
		// through gorilla handlers and is only used by its own server.
		Log: configuration.Log{AccessLog: configuration.AccessLog{Disabled: true}},
	}, nil
}

// newApp builds distribution's handler. NewApp reports configuration
// problems by panicking; turn that into an error for the operator.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			app, err = nil, fmt.Errorf("starting the registry: %v", r)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// configureDistributionLog points distribution's logrus output at w with our
// level and format. Distribution logs per request the method, host, URI,
// user agent, remote address (from X-Forwarded-For when present), content
// type and user name, never the Authorization header or the token; the
// query is cut from the URI by queryScrubber.
func configureDistributionLog(w io.Writer, format, level string) error {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	var f logrus.Formatter = &logrus.TextFormatter{DisableColors: true, FullTimestamp: true, TimestampFormat: time.RFC3339Nano}
	if format == "json" {
		f = &logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano}
	}
	logrus.SetOutput(w)
	logrus.SetLevel(lvl)
	logrus.SetFormatter(queryScrubber{f})
	return nil
}

// queryScrubber removes the query string from the URIs distribution puts in
// its log lines, as accessLog does: a /v2 query holds no credentials, but a
// client may put anything there.
type queryScrubber struct{ logrus.Formatter }

func (q queryScrubber) Format(e *logrus.Entry) ([]byte, error) {
	// e.Data is this log call's own copy (logrus clones it per call).
	for _, k := range []string{"http.request.uri", "http.request.referer"} {
		if v, ok := e.Data[k].(string); ok {
			e.Data[k], _, _ = strings.Cut(v, "?")
		}
	}
	return q.Formatter.Format(e)
}
