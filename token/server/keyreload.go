package server

import (
	"reflect"
	"slices"

	"stx-registry/shared/jws"
	"stx-registry/token/config"
	"stx-registry/token/issuer"
)

// ReloadSigningKeys is the SIGHUP step of a signing key rotation: it
// re-reads the configuration file at path and, if it is valid and its
// signing_key files load, swaps in a new Issuer at once; requests in flight
// finish with the old one. On any error the current keys stay and the error
// is logged. Other keywords that changed are named in a warning: they need
// a restart. Either way the tokens kept for reuse are dropped. running is
// the configuration the daemon started with.
func (s *Server) ReloadSigningKeys(path string, running *config.Config) {
	// Whatever the outcome, no token kept for reuse outlives a SIGHUP; the
	// drop comes after the new issuer is in place (see Server.sign).
	defer s.dropReusable("SIGHUP")
	cfg, err := config.Load(path)
	if err != nil {
		s.log.Error("signing keys not reloaded: the configuration is invalid; keeping the current keys", "err", err)
		return
	}
	iss, err := issuer.Load(running.Issuer, running.TokenTTL, cfg.SigningKeys)
	if err != nil {
		s.log.Error("signing keys not reloaded, keeping the current keys", "err", err)
		return
	}
	s.issuer.Store(iss)
	kids := make([]string, 0, len(cfg.SigningKeys))
	for _, pub := range iss.PublicKeys() {
		kid, _ := jws.KeyID(pub) // NewIssuer accepted the key, so KeyID does too
		kids = append(kids, kid)
	}
	s.log.Info("signing keys reloaded", "signing_key", cfg.SigningKeys, "kid", kids, "signing_kid", kids[0])
	if changed := changedFields(running, cfg); len(changed) > 0 {
		s.log.Warn("configuration changes other than signing_key need a restart", "changed", changed)
	}
}

// changedFields names the Config fields, other than SigningKeys, that
// differ between a and b.
func changedFields(a, b *config.Config) []string {
	var changed []string
	va, vb := reflect.ValueOf(*a), reflect.ValueOf(*b)
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if f.Name == "SigningKeys" || !f.IsExported() {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			changed = append(changed, f.Name)
		}
	}
	slices.Sort(changed)
	return changed
}
