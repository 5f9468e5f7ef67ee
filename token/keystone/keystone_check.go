package keystone

// The Keystone re-check behind refresh grants: with service credentials
// (keystone_service_user …) the server asks Keystone whether a refresh
// token's user still exists and is enabled.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"stx-registry/token/authn"
)

// serviceTokenMargin: a cached service token closer than this to its
// expiry is replaced before use.
const serviceTokenMargin = 5 * time.Minute

// Service is the service account the re-check logs in with. It
// needs a role on Project that lets it list users and domains (admin, or
// reader with Keystone's default policies).
type Service struct {
	User, Password, Project, Domain string // keystone_service_user, the password file's contents, keystone_service_project, keystone_service_domain
}

// serviceState is the cached service token and the user domain's id.
type serviceState struct {
	token    string // a secret: never logged
	expires  time.Time
	domainID string // keystone_user_domain's id, resolved once
}

// CheckUser implements UserChecker: GET /v3/users?name=NAME&domain_id=ID
// with the service account's token. A missing or disabled user is
// ErrUserGone; a user whose Keystone ID is not id (the name was deleted and
// given to a new user) is ErrUserReplaced, and so is an empty id: a refresh
// token from before tokens were bound to the user ID cannot be told from
// one of a deleted namesake, so its holder must log in again. A failure to
// ask wraps ErrUnavailable. The whole check takes at most keystone_timeout.
func (k *Backend) CheckUser(ctx context.Context, name, id string) error {
	if k.service.User == "" {
		return errors.New("keystone: no keystone_service_user configured")
	}
	if id == "" {
		return fmt.Errorf("keystone: %w: the refresh token predates binding to Keystone's user ID", authn.ErrUserReplaced)
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	k.serviceMu.Lock() // one re-check at a time; they are rare (keystone_recheck_interval)
	defer k.serviceMu.Unlock()
	for attempt := 0; ; attempt++ {
		err := k.checkUser(ctx, name, id)
		var stale *staleTokenError
		if errors.As(err, &stale) && attempt == 0 {
			k.state.token = "" // revoked or expired early: log in again, once
			continue
		}
		return err
	}
}

// staleTokenError is a 401 to a request made with the cached service token.
type staleTokenError struct{ what string }

func (e *staleTokenError) Error() string {
	return fmt.Sprintf("keystone: %s: service token refused (401)", e.what)
}

func (k *Backend) checkUser(ctx context.Context, name, id string) error {
	if err := k.serviceLogin(ctx); err != nil {
		return err
	}
	if k.state.domainID == "" {
		var d struct {
			Domains []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"domains"`
		}
		if err := k.getJSON(ctx, "domains", url.Values{"name": {k.domain}}, &d); err != nil {
			return err
		}
		for _, dom := range d.Domains {
			if dom.Name == k.domain && dom.ID != "" {
				k.state.domainID = dom.ID
			}
		}
		if k.state.domainID == "" {
			return fmt.Errorf("keystone: %w: keystone_user_domain %q not found by the service account", authn.ErrUnavailable, k.domain)
		}
	}
	var u struct {
		Users []struct {
			ID      string `json:"id"`
			Name    string `json:"name"`
			Enabled *bool  `json:"enabled"`
		} `json:"users"`
	}
	if err := k.getJSON(ctx, "users", url.Values{"name": {name}, "domain_id": {k.state.domainID}}, &u); err != nil {
		return err
	}
	for _, user := range u.Users {
		// Keystone's name filter may ignore case (MySQL collation); the
		// subject must match exactly. A missing "enabled" means enabled.
		if user.Name == name {
			switch {
			case user.Enabled != nil && !*user.Enabled:
				return authn.ErrUserGone
			case user.ID != id:
				return fmt.Errorf("keystone: %w: user %q has another ID than at login", authn.ErrUserReplaced, name)
			}
			return nil
		}
	}
	return authn.ErrUserGone
}

// serviceLogin gets a project-scoped token for the service account unless
// the cached one is still good. Called with k.serviceMu held.
func (k *Backend) serviceLogin(ctx context.Context) error {
	if k.state.token != "" && time.Until(k.state.expires) > serviceTokenMargin {
		return nil
	}
	r := tokens.Create(ctx, k.identity, &tokens.AuthOptions{
		Username:   k.service.User,
		DomainName: k.service.Domain,
		Password:   k.service.Password,
		Scope:      tokens.Scope{ProjectName: k.service.Project, DomainName: k.service.Domain},
	})
	if r.Err != nil {
		err := keystoneError("keystone_service_user login", r.Err)
		if errors.Is(err, authn.ErrBadCredentials) {
			// Not the client's fault: the configuration is wrong.
			return fmt.Errorf("keystone: %w: keystone_service_user login refused (401): check keystone_service_user, its password file and keystone_service_project", authn.ErrUnavailable)
		}
		return err
	}
	tok, err := r.ExtractTokenID()
	if err != nil || tok == "" {
		return fmt.Errorf("keystone: %w: keystone_service_user login reply has no X-Subject-Token", authn.ErrUnavailable)
	}
	k.state.token, k.state.expires = tok, r.TokenExpiry() // zero if absent: then used once only
	return nil
}

// getJSON GETs path (relative to the v3 endpoint) with the service token
// and decodes the reply into v.
func (k *Backend) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	u := k.identity.ServiceURL(path) + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("keystone: %w: %v", authn.ErrUnavailable, err)
	}
	req.Header.Set("X-Auth-Token", k.state.token)
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("keystone: %w: GET %s: %v", authn.ErrUnavailable, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body) // bounded by limitedTransport
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return &staleTokenError{what: "GET " + path}
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("keystone: %w: GET %s answered 403: give keystone_service_user a role on keystone_service_project that may list users and domains", authn.ErrUnavailable, path)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("keystone: %w: GET %s answered %s", authn.ErrUnavailable, path, resp.Status)
	case err != nil:
		return fmt.Errorf("keystone: %w: GET %s: %v", authn.ErrUnavailable, path, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("keystone: %w: GET %s: reply is not JSON: %v", authn.ErrUnavailable, path, err)
	}
	return nil
}
