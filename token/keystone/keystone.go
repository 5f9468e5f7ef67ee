package keystone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"stx-registry/shared/tlsconf"
	"stx-registry/token/access"
	"stx-registry/token/authn"
)

const (
	// maxKeystoneUserBytes is the longest user name sent to Keystone: its
	// user name column is 255 characters, so anything longer cannot exist.
	maxKeystoneUserBytes = 255
	// maxKeystonePasswordBytes is Keystone's default max_password_length; a
	// longer password cannot be right and is not worth a login attempt.
	maxKeystonePasswordBytes = 4096
	// maxKeystoneResponseBytes bounds one Keystone reply. A token with its
	// roles is a few kilobytes; this is far above that and still small.
	maxKeystoneResponseBytes = 1 << 20
	// keystoneMaxConns bounds the connections open to Keystone at once, so
	// a flood of logins queues here (each bounded by the timeout) instead
	// of swamping Keystone.
	keystoneMaxConns = 16
	// keystoneMaxIdleConns is how many of those stay open for reuse.
	keystoneMaxIdleConns = 4
	// defaultRetryAfter is used when a 429 has no usable Retry-After.
	defaultRetryAfter = time.Second
	// maxRetryAfter caps the Retry-After passed on to clients, so that a
	// confused Keystone cannot lock users out for hours.
	maxRetryAfter = 5 * time.Minute
)

// Config is the auth_backend keystone part of the configuration.
type Config struct {
	URL, UserDomain, CAFile string        // keystone_url, keystone_user_domain, keystone_ca
	Timeout                 time.Duration // keystone_timeout: bound on one whole login
	AdminRole, AdminProject string        // admin_role, admin_project: both or neither
	Service                 Service       // the refresh re-check's account; zero when not configured
}

// Backend checks passwords with Keystone v3 password authentication.
//
// Without admin_role every login is one call: an unscoped password login,
// POST /v3/auth/tokens. With admin_role and admin_project a successful login
// is followed by a second call that rescopes the fresh token to
// admin_project (token method; the password is not sent again). That call
// answers 401 when the user holds no role on the project, and the user is
// then simply not an admin. Logging in scoped first and retrying unscoped on
// 401 would save that call for admins, but a wrong password would then count
// twice towards Keystone's lockout_failure_attempts and cost two password
// hashes; the credential cache makes the second call rare anyway.
//
// The password goes to Keystone only, never follows a redirect, and is never
// part of an error or a log line. The Keystone token is used once and
// dropped.
type Backend struct {
	identity     *gophercloud.ServiceClient // the v3 endpoint, .../v3/
	client       *http.Client               // the same client, for Ready
	domain       string
	timeout      time.Duration
	adminRole    string
	adminProject string
	log          *slog.Logger

	service   Service    // keystone_service_*; User "" when not configured
	serviceMu sync.Mutex // guards state
	state     serviceState
}

// New checks c and builds the backend. It makes no network call.
func New(c Config, log *slog.Logger) (*Backend, error) {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("keystone_url: %w", err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return nil, fmt.Errorf("keystone_url %q must be an https:// URL such as https://controller:5000/v3", c.URL)
	case c.UserDomain == "":
		return nil, errors.New("keystone_user_domain must not be empty; the usual one is Default")
	case c.Timeout <= 0:
		return nil, errors.New("keystone_timeout must be positive")
	case (c.AdminRole == "") != (c.AdminProject == ""):
		return nil, errors.New("admin_role and admin_project go together: give both or neither")
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12} // system roots
	if c.CAFile != "" {
		if tlsConfig, err = tlsconf.ClientConfig(c.CAFile); err != nil {
			return nil, fmt.Errorf("keystone_ca: %w", err)
		}
	}
	client := &http.Client{
		Transport: limitedTransport{&http.Transport{
			Proxy:                 nil, // never an HTTPS_PROXY from the environment: passwords go to Keystone only
			DialContext:           (&net.Dialer{Timeout: c.Timeout}).DialContext,
			TLSClientConfig:       tlsConfig,
			TLSHandshakeTimeout:   c.Timeout,
			ResponseHeaderTimeout: c.Timeout,
			MaxConnsPerHost:       keystoneMaxConns,
			MaxIdleConns:          keystoneMaxIdleConns,
			MaxIdleConnsPerHost:   keystoneMaxIdleConns,
			IdleConnTimeout:       time.Minute,
		}},
		// A redirect is answered as it stands (an error below): a login
		// request, password included, is never re-sent somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       c.Timeout,
	}
	provider, err := openstack.NewClient(c.URL)
	if err != nil {
		return nil, fmt.Errorf("keystone_url %q: %w", c.URL, err)
	}
	provider.HTTPClient = *client
	provider.UserAgent.Prepend("stx-token-server")
	identity, err := openstack.NewIdentityV3(provider, gophercloud.EndpointOpts{})
	if err != nil {
		return nil, fmt.Errorf("keystone_url %q: %w", c.URL, err)
	}
	if u.Scheme == "http" {
		log.Warn("keystone_url is plain http: passwords cross the network unencrypted; use https",
			"keystone_url", c.URL)
	}
	return &Backend{
		identity:     identity,
		client:       client,
		domain:       c.UserDomain,
		timeout:      c.Timeout,
		adminRole:    c.AdminRole,
		adminProject: c.AdminProject,
		log:          log,
		service:      c.Service,
	}, nil
}

// Authenticate logs c.User in to keystone_user_domain with c.Password. The
// Identity's name is the user name in Keystone's token. The whole login,
// admin check included, takes at most keystone_timeout.
func (k *Backend) Authenticate(ctx context.Context, c authn.Credentials) (access.Identity, error) {
	// Keystone answers an empty name with 400 and counts an empty password
	// as a failed login; neither can be right, so neither is sent.
	if c.User == "" || c.Password == "" ||
		len(c.User) > maxKeystoneUserBytes || len(c.Password) > maxKeystonePasswordBytes {
		return access.Identity{}, authn.ErrBadCredentials
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	r := tokens.Create(ctx, k.identity, &tokens.AuthOptions{
		Username:   c.User,
		DomainName: k.domain,
		Password:   c.Password,
	})
	if r.Err != nil {
		return access.Identity{}, keystoneError("password login", r.Err)
	}
	user, err := r.ExtractUser()
	if err != nil || user == nil || user.Name == "" || user.ID == "" {
		return access.Identity{}, fmt.Errorf("keystone: %w: password login reply names no user", authn.ErrUnavailable)
	}
	id := access.Identity{Name: user.Name, ID: user.ID}
	if k.adminRole == "" {
		return id, nil
	}
	token, _ := r.ExtractTokenID()
	if token == "" {
		return access.Identity{}, fmt.Errorf("keystone: %w: password login reply has no X-Subject-Token", authn.ErrUnavailable)
	}
	if id.Admin, err = k.isAdmin(ctx, token); err != nil {
		return access.Identity{}, err
	}
	return id, nil
}

// isAdmin rescopes token to admin_project and looks for admin_role among
// the roles Keystone puts in the scoped token.
func (k *Backend) isAdmin(ctx context.Context, token string) (bool, error) {
	r := tokens.Create(ctx, k.identity, &tokens.AuthOptions{
		TokenID: token,
		Scope:   tokens.Scope{ProjectName: k.adminProject, DomainName: k.domain},
	})
	if r.Err != nil {
		err := keystoneError("admin_project scope", r.Err)
		if errors.Is(err, authn.ErrBadCredentials) {
			// No role at all on admin_project (or no such project).
			k.log.Debug("keystone: user has no role on admin_project", "admin_project", k.adminProject)
			return false, nil
		}
		return false, err
	}
	roles, err := r.ExtractRoles()
	if err != nil {
		return false, fmt.Errorf("keystone: %w: admin_project scope reply: %v", authn.ErrUnavailable, err)
	}
	return slices.ContainsFunc(roles, func(r tokens.Role) bool { return r.Name == k.adminRole }), nil
}

// Ready asks for Keystone's v3 version document: any answer below 400
// within keystone_timeout means Keystone is up.
func (k *Backend) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.identity.Endpoint, nil)
	if err != nil {
		return fmt.Errorf("keystone: %w: %v", authn.ErrUnavailable, err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("keystone: %w: %v", authn.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body) // bounded by limitedTransport
	if resp.StatusCode >= 400 {
		return fmt.Errorf("keystone: %w: GET %s answered %s", authn.ErrUnavailable, k.identity.Endpoint, resp.Status)
	}
	return nil
}

// keystoneError maps a failed token request to the backend's errors: 401
// is ErrBadCredentials, 429 a RetryAfterError, anything else (other
// statuses, timeouts, refused connections, TLS failures, oversized or
// malformed replies) wraps ErrUnavailable. A 400 is not the user's fault:
// the only credential-shaped 400, an empty name, is never sent. Response
// bodies are left out of the message: they are Keystone's to word.
func keystoneError(what string, err error) error {
	var status gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &status) {
		return fmt.Errorf("keystone: %w: %s: %v", authn.ErrUnavailable, what, err)
	}
	switch status.Actual {
	case http.StatusUnauthorized:
		return authn.ErrBadCredentials
	case http.StatusTooManyRequests:
		return &authn.RetryAfterError{After: parseRetryAfter(status.ResponseHeader.Get("Retry-After"), time.Now())}
	}
	return fmt.Errorf("keystone: %w: %s: %s %s answered HTTP %d",
		authn.ErrUnavailable, what, status.Method, status.URL, status.Actual)
}

// parseRetryAfter reads a Retry-After header, delay-seconds or an HTTP date
// (RFC 9110 10.2.3), as a delay from now between 1 s and maxRetryAfter.
// Anything else, or a delay not in the future, gives defaultRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	switch {
	case d < time.Second:
		return defaultRetryAfter
	case d > maxRetryAfter:
		return maxRetryAfter
	}
	return d
}

// limitedTransport caps every response body at maxKeystoneResponseBytes, so
// that a broken or hostile Keystone cannot make gophercloud buffer an
// unbounded reply.
type limitedTransport struct{ next http.RoundTripper }

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: maxKeystoneResponseBytes}
	return resp, nil
}

// errResponseTooLarge is what reading past the cap returns.
var errResponseTooLarge = fmt.Errorf("keystone reply is %d bytes or more", maxKeystoneResponseBytes)

// limitedBody reads at most left more bytes, then fails: a reply of
// maxKeystoneResponseBytes or more is an error, not silently cut.
type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errResponseTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
