// Package keystonetest is a fake Keystone for tests of the refresh
// re-check: it can be down on cue, which the real Keystone cannot.
package keystonetest

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Fake answers what the re-check asks: the service login, the
// domain and the user list. It is a fake because only a fake can be down
// on cue; the password logins are tested against the real Keystone.
type Fake struct {
	mu      sync.Mutex
	Users   map[string]bool   // name → enabled
	IDs     map[string]string // name → user ID; default "id-" + name
	Down    bool
	Logins  atomic.Int64
	Lookups atomic.Int64
}

func (k *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.Down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "POST" && r.URL.Path == "/v3/auth/tokens":
		var body struct {
			Auth struct {
				Identity struct {
					Password struct {
						User struct{ Name, Password string }
					}
				}
			}
		}
		json.NewDecoder(r.Body).Decode(&body)
		if u := body.Auth.Identity.Password.User; u.Name != "svc" || u.Password != "svc-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":401}}`))
			return
		}
		k.Logins.Add(1)
		w.Header().Set("X-Subject-Token", "service-token")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"token": map[string]any{
			"expires_at": time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000000Z"),
			"user":       map[string]any{"id": "svc-id", "name": "svc"},
		}})
	case r.Header.Get("X-Auth-Token") != "service-token":
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{}`))
	case r.URL.Path == "/v3/domains" && r.URL.Query().Get("name") == "Default":
		w.Write([]byte(`{"domains":[{"id":"default","name":"Default"}]}`))
	case r.URL.Path == "/v3/users" && r.URL.Query().Get("domain_id") == "default":
		k.Lookups.Add(1)
		name := r.URL.Query().Get("name")
		users := []map[string]any{}
		if enabled, ok := k.Users[name]; ok {
			id, ok := k.IDs[name]
			if !ok {
				id = "id-" + name
			}
			users = append(users, map[string]any{"id": id, "name": name, "enabled": enabled})
		}
		json.NewEncoder(w).Encode(map[string]any{"users": users})
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{}`))
	}
}

// Set changes the fake under its lock.
func (k *Fake) Set(f func()) { k.mu.Lock(); f(); k.mu.Unlock() }
