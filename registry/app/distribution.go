package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"

	// The filesystem driver registers itself by name; with the token
	// access controller (linked by tokenauth, which builds it by name)
	// it is the only plug-in linked in.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"stx-registry/registry/config"
	"stx-registry/registry/tokenauth"
)

// httpSecretBytes is the size of the random key distribution uses to sign
// upload session state, made fresh at every start.
const httpSecretBytes = 32

// layerURLsAllowed is the pattern a layer URL of a pushed manifest must
// match: any http or https URL.
const layerURLsAllowed = `^https?://`

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
// Authorization goes through tokens, our tokenauth.Controller around
// distribution's token verifier, so that token_certificate can change
// without a restart.
func distributionConfig(c *config.Config, tokens *tokenauth.Controller) (*configuration.Configuration, error) {
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
			// No blob descriptor cache: "stx-registry gc" removes blobs
			// from another process, and a cached "this blob exists" would
			// let a client skip an upload and push a manifest naming a
			// blob that is gone.
			// The filesystem driver cannot redirect; say so explicitly.
			"redirect": configuration.Parameters{"disable": true},
		},
		// The token options live in tokens, which builds distribution's
		// "token" access controller from them at each load.
		Auth: configuration.Auth{
			tokenauth.Name: configuration.Parameters{tokenauth.ControllerOption: tokens},
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
		// A non-distributable layer (OCI media type
		// ...layer.nondistributable.v1.tar, +gzip, +zstd, or Docker's
		// foreign layer) names the URLs clients may fetch it from.
		// Distribution accepts no URL at all unless told which, and
		// answers such a manifest with a 500. Any http or https URL is
		// accepted (distribution itself refuses other schemes and
		// fragments, and the front door refuses them first, as a 400).
		// This is safe: the registry never fetches, follows or serves
		// these URLs, it only stores the manifest that names them; a
		// client that fetches one checks the digest of what it gets, and
		// anyone who may push could as well push any layer content.
		Validation: configuration.Validation{
			Manifests: configuration.ValidationManifests{
				URLs: configuration.URLs{Allow: []string{layerURLsAllowed}},
			},
		},
		// The access log is ours (package accesslog); distribution's would go
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
