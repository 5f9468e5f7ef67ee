package server

// Access-token reuse (token_reuse): the grant paths ask s.sign for a token,
// which hands out a kept one for an identical request or signs a new one.

import (
	"time"

	"stx-registry/token/access"
	"stx-registry/token/issuer"
	"stx-registry/token/reuse"
)

// sign returns a token for id at service granting granted and carrying
// refused: a reusable one from s.reuse (reused is then true), or a new one
// from the issuer signing now. The caller has authenticated id and
// evaluated the policy.
func (s *Server) sign(id access.Identity, service string, granted []access.Access, refused []access.Refusal, now time.Time) (tok issuer.Token, reused bool, err error) {
	k := reuse.Key{Subject: id.Name, Audience: service, Admin: id.Admin, Granted: granted, Refused: refused}
	if tok, ok := s.reuse.Get(k, now); ok {
		return tok, true, nil
	}
	// The generation is read before the issuer: a key reload in between
	// makes Put drop the token the old key signs.
	gen := s.reuse.Generation()
	tok, err = s.issuer.Load().Sign(id.Name, service, granted, refused, now)
	if err != nil {
		return tok, false, err
	}
	s.reuse.Put(k, tok, gen, now)
	return tok, false, nil
}

// replyFor fills the token fields of a reply with tok at now. expires_in
// and issued_at tell the truth about the token handed out: a reused token
// says when it was signed and how many whole seconds it has left.
func replyFor(tok issuer.Token, reused bool, now time.Time) tokenResponse {
	life := tok.ExpiresAt.Sub(tok.IssuedAt)
	if reused {
		life = tok.ExpiresAt.Sub(now)
	}
	return tokenResponse{
		Token:       tok.Raw,
		AccessToken: tok.Raw,
		ExpiresIn:   int(life / time.Second),
		IssuedAt:    tok.IssuedAt.UTC().Format(time.RFC3339),
	}
}

// dropReusable empties the reuse cache and logs why, when it held tokens.
func (s *Server) dropReusable(why string) {
	if n := s.reuse.Reset(); n > 0 {
		s.log.Info("reusable access tokens dropped", "reason", why, "tokens", n)
	}
}
