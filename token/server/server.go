package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"stx-registry/shared/listen"
	"stx-registry/token/access"
	"stx-registry/token/authn"
	"stx-registry/token/config"
	"stx-registry/token/issuer"
	"stx-registry/token/metrics"
	"stx-registry/token/refresh"
	"stx-registry/token/reuse"
)

// Bounds on what a client may send. Headers as a whole are bounded by the
// shared server's MaxHeaderBytes.
const (
	maxQueryBytes    = 8 << 10 // a GET with the maximum number of scopes fits
	maxFormBytes     = 8 << 10 // same for a POST body
	maxPasswordBytes = 1024    // far above any real password; Keystone's limit is 4096 but nobody types that
	maxClientIDBytes = 255
)

// heldMessage answers a login refused by the Keystone lockout guard: what
// happened and what to do. It does not say whether the user exists.
const heldMessage = "login refused without asking Keystone: this user has had too many failed logins since the last " +
	"success here, one more would lock the account in Keystone; only the password that last worked here is tried. " +
	"Log in with it, or ask an administrator to run: stx-token-server unlock USER"

// readyTimeout bounds the backend check behind GET /readyz: a probe (SM,
// pacemaker, a load balancer) wants an answer, not a hang.
const readyTimeout = 2 * time.Second

// Server answers the Docker token protocol: GET with Basic auth and the
// OAuth2 POST form. It knows nothing of TLS or listening.
type Server struct {
	auth     authn.Authenticator
	policy   *access.Policy
	issuer   atomic.Pointer[issuer.Issuer] // swapped by a signing key reload (SIGHUP)
	reuse    *reuse.Cache                  // token_reuse; nil: every token is signed anew
	services map[string]bool
	audit    *Audit
	log      *slog.Logger
	now      func() time.Time

	metrics     *metrics.Metrics // may be nil in tests
	metricsNets []netip.Prefix   // who may GET /metrics; nil means loopback only
	ready       authn.Checker    // the backend's readiness check, or nil
	backendName string           // "users" or "keystone", for /readyz replies

	refresh    refresh.Store     // nil: refresh tokens are off (no state_directory)
	refreshTTL time.Duration     // refresh_token_ttl
	users      authn.UserChecker // re-checks a refresh token's user; nil: no re-check
	recheck    time.Duration     // how old a check may be before the next; 0: every refresh
}

// Options are what New needs; each field is described on Server.
type Options struct {
	Auth            authn.Authenticator // the whole chain, see authn.Chain
	Policy          *access.Policy
	Issuer          *issuer.Issuer
	Reuse           *reuse.Cache // nil: reuse is off
	Services        []string     // service: the audiences tokens may be issued for
	Log             *slog.Logger
	Metrics         *metrics.Metrics
	MetricsNetworks []netip.Prefix // metrics_network; nil means loopback only
	Ready           authn.Checker  // the backend's readiness check, or nil
	BackendName     string         // auth_backend
	Refresh         refresh.Store  // nil: refresh tokens are off
	RefreshTTL      time.Duration
	Users           authn.UserChecker // nil: no re-check of refresh tokens' users
	Recheck         time.Duration     // 0: re-check on every refresh
}

// New builds the server from o.
func New(o Options) *Server {
	services := make(map[string]bool, len(o.Services))
	for _, s := range o.Services {
		services[s] = true
	}
	s := &Server{
		auth:        o.Auth,
		policy:      o.Policy,
		reuse:       o.Reuse,
		services:    services,
		audit:       &Audit{log: o.Log},
		log:         o.Log,
		now:         time.Now,
		metrics:     o.Metrics,
		metricsNets: o.MetricsNetworks,
		ready:       o.Ready,
		backendName: o.BackendName,
		refresh:     o.Refresh,
		refreshTTL:  o.RefreshTTL,
		users:       o.Users,
		recheck:     o.Recheck,
	}
	s.issuer.Store(o.Issuer)
	return s
}

// Issuer is the issuer signing now.
func (s *Server) Issuer() *issuer.Issuer { return s.issuer.Load() }

// Handler routes the token server's few paths. Every reply, errors and 404s
// included, is JSON.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/token/{$}", s.token) // StarlingX clients use the slash
	mux.HandleFunc("/healthz", s.healthz)
	mux.HandleFunc("/readyz", s.readyz)
	m, nets := s.metrics, s.metricsNets
	if m == nil {
		m = metrics.New(s.backendName, "")
	}
	if nets == nil {
		nets = config.DefaultMetricsNetworks
	}
	mux.Handle("/metrics", MetricsHandler(m, nets))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return recoverJSON(s.log, mux)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is the readiness probe: 200 when the backend (if it can tell)
// answers within readyTimeout, 503 otherwise. /healthz stays liveness only.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		errc := make(chan error, 1) // buffered: a check that overruns does not leak a blocked goroutine
		go func() { errc <- s.ready.Ready(ctx) }()
		var err error
		select {
		case err = <-errc:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			s.log.Warn("readiness check failed", "backend", s.backendName, "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": s.backendName + " unreachable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// finish writes the audit line for one token request and counts it.
func (s *Server) finish(rec auditRecord) {
	s.audit.Token(rec)
	denied := rec.status == http.StatusOK && len(rec.requested) > 0 && len(rec.granted) == 0
	s.metrics.Request(metrics.RequestResult(rec.status, denied))
}

// tokenRequest is one parsed request, from either form of the protocol.
type tokenRequest struct {
	grantType string // "password" for both GET and a POST password grant
	creds     authn.Credentials
	refresh   string // the refresh_token of a refresh grant; a secret
	service   string
	scopes    []access.Access
	clientID  string
	offline   bool
	post      bool
}

// requestError is a client mistake: its status and OAuth2 error code go to
// the client, its message too (never with a secret in it).
type requestError struct {
	status int
	code   string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{http.StatusBadRequest, "invalid_request", fmt.Sprintf(format, args...)}
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	client := clientAddr(r)
	var (
		req *tokenRequest
		err error
	)
	switch r.Method {
	case http.MethodGet:
		req, err = s.parseGet(r)
	case http.MethodPost:
		req, err = s.parsePost(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.metrics.Request("bad_request")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET or POST")
		return
	}
	rec := auditRecord{client: client, method: r.Method}
	if req != nil {
		rec.user, rec.service, rec.requested, rec.clientID = req.creds.User, req.service, req.scopes, req.clientID
		rec.grantType = req.grantType
	}
	if err != nil {
		var re *requestError
		if !errors.As(err, &re) {
			re = &requestError{http.StatusInternalServerError, "server_error", "internal error"}
		}
		if re.status == http.StatusUnauthorized && r.Method == http.MethodGet {
			w.Header().Set("WWW-Authenticate", `Basic realm="stx-token-server", charset="UTF-8"`)
		}
		rec.status, rec.reason = re.status, re.msg
		s.finish(rec)
		writeError(w, re.status, re.code, re.msg)
		return
	}
	if req.grantType == "refresh_token" {
		s.refreshGrant(w, r, req, rec, start)
		return
	}
	req.creds.Client = client

	id, err := s.auth.Authenticate(r.Context(), req.creds)
	if err != nil {
		status, code, msg := http.StatusUnauthorized, "invalid_grant", "invalid username or password"
		var ra *authn.RetryAfterError
		switch {
		case errors.Is(err, authn.ErrBadCredentials):
		case errors.As(err, &ra):
			secs := retryAfterSeconds(ra.After)
			w.Header().Set("Retry-After", fmt.Sprint(secs))
			status, code, msg = http.StatusTooManyRequests, "slow_down", fmt.Sprintf("too many failed logins, retry after %ds", secs)
		case errors.Is(err, authn.ErrHeld):
			status, code, msg = http.StatusTooManyRequests, "slow_down", heldMessage
		case errors.Is(err, authn.ErrBusy):
			w.Header().Set("Retry-After", "1")
			status, code, msg = http.StatusServiceUnavailable, "temporarily_unavailable", "too many logins are being checked, retry after 1 second"
		default:
			status, code, msg = http.StatusServiceUnavailable, "temporarily_unavailable", "authentication backend unavailable, try again later"
			s.log.Error("authentication backend failed", "err", err)
		}
		if status == http.StatusUnauthorized && !req.post {
			w.Header().Set("WWW-Authenticate", `Basic realm="stx-token-server", charset="UTF-8"`)
		}
		rec.status, rec.reason = status, msg
		s.finish(rec)
		writeError(w, status, code, msg)
		return
	}

	granted, refused := s.policy.Grant(id, req.scopes)
	tok, reused, err := s.sign(id, req.service, granted, refused, start)
	if err != nil {
		s.log.Error("signing a token failed", "err", err)
		rec.status, rec.reason = http.StatusInternalServerError, "signing failed"
		s.finish(rec)
		writeError(w, http.StatusInternalServerError, "server_error", "internal error")
		return
	}
	var refresh string
	if req.offline {
		refresh, rec.refreshID = s.issueRefresh(id, req.service, req.clientID, start)
	}
	rec.subject, rec.granted, rec.jti, rec.reused, rec.status = id.Name, granted, tok.ID, reused, http.StatusOK
	s.finish(rec)

	resp := replyFor(tok, reused, start)
	resp.RefreshToken = refresh
	if req.post {
		resp.Scope = access.FormatScopes(granted)
	}
	writeToken(w, &resp)
}

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	Scope       string `json:"scope,omitempty"`
	// RefreshToken is set on an offline login, and on a refresh grant
	// (the same token again: docker keeps reusing the one it has).
	RefreshToken string `json:"refresh_token,omitempty"`
}

// retryAfterSeconds is d in whole seconds for the Retry-After header,
// rounded up and at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}

// parseGet reads the Docker token GET: Basic auth and query parameters
// service, scope (repeatable), account, offline_token, client_id.
func (s *Server) parseGet(r *http.Request) (*tokenRequest, error) {
	if len(r.URL.RawQuery) > maxQueryBytes {
		return nil, badRequest("query string longer than %d bytes", maxQueryBytes)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string")
	}
	req := &tokenRequest{grantType: "password"}
	if err := s.parseCommon(req, q, q["scope"]); err != nil {
		return req, err
	}
	if v, err := single(q, "offline_token", 8); err != nil {
		return req, err
	} else {
		req.offline = v == "true"
	}
	account, err := single(q, "account", access.MaxUsernameBytes)
	if err != nil {
		return req, err
	}

	if _, ok := r.Header["Authorization"]; !ok {
		return req, &requestError{http.StatusUnauthorized, "invalid_client", "credentials required: log in first (docker login, podman login) with your user name and password"}
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return req, badRequest("malformed Authorization header: want Basic with base64 user:password")
	}
	req.creds = authn.Credentials{User: user, Password: pass}
	if err := checkCredentials(req.creds); err != nil {
		return req, err
	}
	if account != "" && account != user {
		return req, badRequest("account does not match the authenticated user")
	}
	return req, nil
}

// parsePost reads the OAuth2 form (RFC 6749 §4.3, as containerd sends it).
func (s *Server) parsePost(w http.ResponseWriter, r *http.Request) (*tokenRequest, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, badRequest("Content-Type must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &requestError{http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("form body longer than %d bytes", maxFormBytes)}
		}
		return nil, badRequest("reading the form body failed")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("malformed form body")
	}
	req := &tokenRequest{post: true}
	req.grantType, err = single(form, "grant_type", 32)
	if err != nil {
		return req, err
	}
	// scope in the OAuth2 form is space-separated, and containerd repeats it too.
	if err := s.parseCommon(req, form, form["scope"]); err != nil {
		return req, err
	}
	switch req.grantType {
	case "password":
	case "refresh_token":
		return req, s.parseRefresh(req, form)
	case "":
		return req, badRequest("grant_type is required")
	default:
		return req, &requestError{http.StatusBadRequest, "unsupported_grant_type", "grant_type must be password or refresh_token"}
	}
	accessType, err := single(form, "access_type", 16)
	if err != nil {
		return req, err
	}
	req.offline = accessType == "offline"
	user, err := single(form, "username", access.MaxUsernameBytes)
	if err != nil {
		return req, err
	}
	pass, err := single(form, "password", maxPasswordBytes)
	if err != nil {
		return req, err
	}
	req.creds = authn.Credentials{User: user, Password: pass}
	return req, checkCredentials(req.creds)
}

// parseCommon reads what both forms share: service, scope, client_id.
func (s *Server) parseCommon(req *tokenRequest, v url.Values, scopes []string) error {
	svc, err := single(v, "service", access.MaxServiceBytes)
	if err != nil {
		return err
	}
	if svc == "" {
		return badRequest("service is required")
	}
	if !s.services[svc] {
		return badRequest("unknown service %q", svc)
	}
	req.service = svc
	if req.clientID, err = single(v, "client_id", maxClientIDBytes); err != nil {
		return err
	}
	if req.scopes, err = access.ParseScopes(scopes); err != nil {
		return badRequest("scope: %v", err)
	}
	return nil
}

// single returns the one value of key, "" when absent, and an error when it
// repeats or is longer than max. Values never go back to the client.
func single(v url.Values, key string, max int) (string, error) {
	vs := v[key]
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", badRequest("%s must not repeat", key)
	case len(vs[0]) > max:
		return "", badRequest("%s longer than %d bytes", key, max)
	}
	return vs[0], nil
}

func checkCredentials(c authn.Credentials) error {
	switch {
	case c.User == "":
		return &requestError{http.StatusUnauthorized, "invalid_client", "a user name is required"}
	case len(c.User) > access.MaxUsernameBytes:
		return badRequest("user name longer than %d bytes", access.MaxUsernameBytes)
	case len(c.Password) > maxPasswordBytes:
		return badRequest("password longer than %d bytes", maxPasswordBytes)
	case strings.ContainsFunc(c.User, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return badRequest("user name contains control characters")
	}
	return nil
}

// clientAddr is the TCP peer. There is no proxy in front of this server, so
// no forwarding header is trusted.
func clientAddr(r *http.Request) netip.Addr { return listen.Peer(r) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// setJSONHeaders sets the headers of every reply: JSON, never cached (RFC
// 6749 §5.1: token replies are never cached), never sniffed.
func setJSONHeaders(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
}

// writeError sends an OAuth2-style error (RFC 6749 §5.2) as JSON, and the
// same message as a registry error next to it, for docker, which prints
// only "errors" (as "unauthorized: MSG"; without it, "authentication
// required").
func writeError(w http.ResponseWriter, status int, code, msg string) {
	type registryError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeJSON(w, status, struct {
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
		Errors      []registryError `json:"errors"`
	}{code, msg, []registryError{{registryCode(status), msg}}})
}

// registryCode is the distribution spec's error code for status.
func registryCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	}
	return "UNKNOWN"
}

// recoverJSON turns a panic into a logged JSON 500 instead of a dropped
// connection. It should never fire; it is here so that it cannot crash.
func recoverJSON(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("handler panic", "panic", fmt.Sprint(v), "path", r.URL.Path)
				writeError(w, http.StatusInternalServerError, "server_error", "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}
