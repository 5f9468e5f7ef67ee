package app

import (
	"bytes"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/sirupsen/logrus"

	"stx-registry/registry/config"
	"stx-registry/registry/tokenauth"
	"stx-registry/registry/tokenauth/tokentest"
)

func TestDistributionConfig(t *testing.T) {
	c := config.Default()
	c.RootDirectory = "/srv/r"
	c.ReadOnly = true
	bundle := tokentest.WriteBundle(t, tokentest.NewKey(t, "P-256"))
	c.TokenRealm, c.TokenService, c.TokenIssuer, c.TokenCertificate = tokentest.Realm, tokentest.Service, tokentest.Issuer, bundle
	tokens, err := tokenauth.New(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d, err := distributionConfig(c, tokens)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := distributionConfig(c, tokens)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.HTTP.Secret) != httpSecretBytes || d.HTTP.Secret == d2.HTTP.Secret {
		t.Error("http secret is not a fresh random value")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"storage type", d.Storage.Type(), "filesystem"},
		{"rootdirectory", d.Storage["filesystem"]["rootdirectory"], "/srv/r"},
		{"delete", d.Storage["delete"]["enabled"], true},
		{"readonly", d.Storage["maintenance"]["readonly"], map[any]any{"enabled": true}},
		{"uploadpurging default", d.Storage["maintenance"]["uploadpurging"], nil},
		// No blob descriptor cache: gc removes blobs from another process.
		{"cache", d.Storage["cache"] == nil, true},
		{"auth type", d.Auth.Type(), tokenauth.Name},
		{"auth options", d.Auth[tokenauth.Name], configuration.Parameters{tokenauth.ControllerOption: tokens}},
		// realm, service, issuer, rootcertbundle and autoredirect are
		// checked by tokenauth's TestTokenOptions.
		{"signingalgorithms", tokens.Algorithms(), []any{"ES256"}},
		{"nosniff", d.HTTP.Headers.Get("X-Content-Type-Options"), "nosniff"},
		{"layer URLs", d.Validation.Manifests.URLs, configuration.URLs{Allow: []string{"^https?://"}}},
		{"manifest validation on", d.Validation.Disabled, false},
		{"debug addr", d.HTTP.Debug.Addr, ""},
		{"prometheus", d.HTTP.Debug.Prometheus.Enabled, false},
		{"notifications", len(d.Notifications.Endpoints), 0},
		{"redis", len(d.Redis.Options.Addrs), 0},
		{"proxy", d.Proxy.RemoteURL, ""},
		{"accesslog", d.Log.AccessLog.Disabled, true},
		{"relative urls", d.HTTP.RelativeURLs, true},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

// TestDistributionLogClientErrors checks that distribution's error lines
// about 4xx answers are logged at info, and those about 5xx at error.
func TestDistributionLogClientErrors(t *testing.T) {
	for _, level := range []string{"info", "error"} {
		var buf bytes.Buffer
		if err := configureDistributionLog(&buf, "text", level); err != nil {
			t.Fatal(err)
		}
		logrus.WithField("http.response.status", 404).Error("response completed with error: blob unknown")
		logrus.WithField("http.response.status", 500).Error("response completed with error: disk")
		out := buf.String()
		if level == "info" && !strings.Contains(out, `level=info msg="response completed with error: blob unknown"`) {
			t.Errorf("log level %s: the 404 line is not at info: %q", level, out)
		}
		if level == "error" && strings.Contains(out, "blob unknown") {
			t.Errorf("log level %s: the 404 line is written: %q", level, out)
		}
		if !strings.Contains(out, `level=error msg="response completed with error: disk"`) {
			t.Errorf("log level %s: the 500 line is not at error: %q", level, out)
		}
	}
	_ = configureDistributionLog(os.Stderr, "text", "error")
}

func TestDistributionLogScrubsQuery(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := configureDistributionLog(&buf, format, "info"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = configureDistributionLog(os.Stderr, "text", "error") })
			logrus.WithFields(logrus.Fields{
				"http.request.uri":     "/v2/a/blobs/uploads/u?_state=abc&x=secret",
				"http.request.referer": "https://example/?q=secret",
			}).Info("response completed")
			logrus.Debug("hidden at info")
			out := buf.String()
			if strings.Contains(out, "secret") || strings.Contains(out, "_state") || strings.Contains(out, "hidden") {
				t.Errorf("log output %q", out)
			}
			if !strings.Contains(out, "/v2/a/blobs/uploads/u") {
				t.Errorf("log output %q lost the path", out)
			}
			if format == "json" && !strings.HasPrefix(out, "{") {
				t.Errorf("json log output %q", out)
			}
		})
	}
	if err := configureDistributionLog(os.Stderr, "text", "verbose"); err == nil {
		t.Error("log level verbose accepted")
	}
}
