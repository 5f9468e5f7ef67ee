package server

// The refresh side of the token endpoint: issuing a refresh token on an
// offline login, and the grant_type=refresh_token exchange (FACTS §2: docker
// sends the same refresh token with every pull, so it is never rotated).

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/authn"
	"stx-registry/token/refresh"
)

// errRefreshUserGone and errRefreshUserReplaced are the audit reasons when
// the re-check found the user gone or disabled, or the name now held by
// another user (or the token not bound to a user ID).
var (
	errRefreshUserGone     = errors.New("refresh token's user no longer exists or is disabled; their refresh tokens were revoked")
	errRefreshUserReplaced = errors.New("refresh token's user name now belongs to another user, or the token predates binding to the user ID; the token was revoked")
)

// parseRefresh reads the rest of a refresh grant's form.
func (s *Server) parseRefresh(req *tokenRequest, form url.Values) error {
	if s.refresh == nil {
		return &requestError{http.StatusBadRequest, "unsupported_grant_type",
			"refresh tokens are off on this server (state_directory is not configured); use grant_type=password"}
	}
	tok, err := single(form, "refresh_token", refresh.MaxTokenBytes)
	if err != nil {
		return err
	}
	if tok == "" {
		return badRequest("refresh_token is required")
	}
	req.refresh = tok
	return nil
}

// issueRefresh stores a refresh token for id at service, from client (the
// request's client_id), and returns it with its log id, or "" when refresh
// tokens are off or the store fails: the login still succeeds, the client
// just logs in again later.
func (s *Server) issueRefresh(id access.Identity, service, client string, now time.Time) (token, logID string) {
	if s.refresh == nil {
		return "", ""
	}
	tok, err := s.refresh.Issue(refresh.Entry{
		Subject:  id.Name,
		UserID:   id.ID,
		ClientID: client,
		Admin:    id.Admin,
		Service:  service,
		Created:  now,
		Expires:  now.Add(s.refreshTTL),
		Checked:  now,
	})
	switch {
	case errors.Is(err, refresh.ErrStoreFull):
		s.log.Warn("no refresh token issued: refresh_token_max reached; raise it or revoke unused ones", "subject", id.Name)
		return "", ""
	case err != nil:
		s.log.Error("no refresh token issued: the store failed", "subject", id.Name, "err", err)
		return "", ""
	}
	return tok, refresh.Hash(tok)[:8]
}

// refreshGrant answers grant_type=refresh_token: the token must be known,
// unexpired and issued for this service, and its user still there; then
// the policy grants the requested scopes as at a login.
func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request, req *tokenRequest, rec auditRecord, start time.Time) {
	deny := func(status int, code, msg, reason string) {
		rec.status, rec.reason = status, reason
		s.finish(rec)
		writeError(w, status, code, msg)
	}
	e, err := s.refresh.Lookup(req.refresh, req.service, start)
	rec.user, rec.refreshID = e.Subject, e.ID
	switch {
	case errors.Is(err, refresh.ErrUnknown), errors.Is(err, refresh.ErrExpired), errors.Is(err, refresh.ErrWrongService):
		deny(http.StatusUnauthorized, "invalid_grant", "refresh token is unknown, expired, revoked or for another service: log in again", err.Error())
		return
	case err != nil:
		s.log.Error("refresh token store failed", "err", err)
		deny(http.StatusInternalServerError, "server_error", "internal error", "refresh token store failed")
		return
	}
	if err := s.recheckUser(r.Context(), req.refresh, e, start); err != nil {
		if errors.Is(err, errRefreshUserGone) || errors.Is(err, errRefreshUserReplaced) {
			deny(http.StatusUnauthorized, "invalid_grant", "refresh token is unknown, expired, revoked or for another service: log in again", err.Error())
			return
		}
		s.log.Error("refresh: the user re-check failed", "subject", e.Subject, "err", err)
		deny(http.StatusServiceUnavailable, "temporarily_unavailable", "authentication backend unavailable, try again later", "user re-check failed")
		return
	}

	id := access.Identity{Name: e.Subject, Admin: e.Admin, ID: e.UserID}
	granted, refused := s.policy.Grant(id, req.scopes)
	tok, reused, err := s.sign(id, req.service, granted, refused, start)
	if err != nil {
		s.log.Error("signing a token failed", "err", err)
		deny(http.StatusInternalServerError, "server_error", "internal error", "signing failed")
		return
	}
	rec.subject, rec.granted, rec.jti, rec.reused, rec.status = id.Name, granted, tok.ID, reused, http.StatusOK
	s.finish(rec)
	resp := replyFor(tok, reused, start)
	resp.Scope = access.FormatScopes(granted)
	resp.RefreshToken = req.refresh // the same one: never rotated
	writeToken(w, &resp)
}

// recheckUser asks the backend whether e's user may still log in, and is
// still the user e was issued to, when the last check is at least s.recheck
// old. A user found gone has all their refresh tokens revoked; a token whose
// user name now belongs to another user is revoked alone. While the backend
// cannot answer, the refresh is allowed if the last good check is within
// 2×s.recheck.
func (s *Server) recheckUser(ctx context.Context, token string, e refresh.Entry, now time.Time) error {
	if s.users == nil {
		return nil
	}
	age := now.Sub(e.Checked)
	if s.recheck > 0 && age < s.recheck {
		return nil
	}
	err := s.users.CheckUser(ctx, e.Subject, e.UserID)
	switch {
	case err == nil:
		if s.recheck > 0 {
			if err := s.refresh.Touch(token, now); err != nil && !errors.Is(err, refresh.ErrUnknown) {
				s.log.Warn("refresh: recording the user re-check failed", "subject", e.Subject, "err", err)
			}
		}
		return nil
	case errors.Is(err, authn.ErrUserGone):
		n, rerr := s.refresh.RevokeUser(e.Subject)
		if rerr != nil {
			s.log.Error("refresh: revoking a gone user's refresh tokens failed", "subject", e.Subject, "err", rerr)
		} else {
			s.log.Info("refresh tokens revoked: the user no longer exists or is disabled", "subject", e.Subject, "revoked", n)
		}
		s.reuse.DropSubject(e.Subject)
		return errRefreshUserGone
	case errors.Is(err, authn.ErrUserReplaced):
		if rerr := s.refresh.Revoke(token); rerr != nil && !errors.Is(rerr, refresh.ErrUnknown) {
			s.log.Error("refresh: revoking a refresh token of a replaced user failed", "subject", e.Subject, "refresh_id", e.ID, "err", rerr)
		} else {
			s.log.Info("refresh token revoked: its user name now belongs to another user, or it predates binding to the user ID",
				"subject", e.Subject, "refresh_id", e.ID, "err", err)
		}
		return errRefreshUserReplaced
	case age <= 2*s.recheck:
		s.log.Warn("refresh: cannot re-check the user, allowed within 2×keystone_recheck_interval of the last check",
			"subject", e.Subject, "last_check", e.Checked.UTC().Format(time.RFC3339), "err", err)
		return nil
	}
	return err
}
