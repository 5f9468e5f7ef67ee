package testrig

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	// keystoneStartWait bounds ops/test-keystone.sh: db_sync, the key
	// repositories and the bootstrap take 15-30 s on a busy 2-core machine,
	// then GET /v3 must answer 200.
	keystoneStartWait = 120 * time.Second
	// keystoneCallTimeout bounds one admin REST call; Keystone under
	// wsgiref serves one request at a time.
	keystoneCallTimeout = 30 * time.Second
	// keystoneWriteTries is how often an admin call is tried: the sqlite
	// backend sometimes answers 500 to a write.
	keystoneWriteTries = 5
	// maxKeystoneReply bounds reading one Keystone reply.
	maxKeystoneReply = 1 << 20
)

// Keystone is a throwaway Keystone run by ops/test-keystone.sh: plain HTTP
// on a free loopback port, sqlite, fernet tokens, lockout after 5 failures
// for 30 minutes unless KeystoneOptions say otherwise, and the bootstrap
// admin "admin" in project "admin".
type Keystone struct {
	URL           string // http://127.0.0.1:PORT/v3
	Dir           string // test-keystone.sh's DIR: keystone.conf, the database, keystone.log
	AccessLog     string // keystone-wsgi-public's standard error: one line per request
	AdminPassword string

	proc       *Proc
	client     *http.Client
	adminToken string // the bootstrap admin's, scoped to project admin
}

// KeystoneOptions are Keystone's [security_compliance] settings; zero
// fields keep ops/test-keystone.sh's defaults (5 failures, 1800 s).
type KeystoneOptions struct {
	LockoutAttempts int           // lockout_failure_attempts
	LockoutDuration time.Duration // lockout_duration, whole seconds
}

// StartKeystone runs ops/test-keystone.sh with its files under base (an
// existing directory), waits until GET /v3 answers 200 and logs in as the
// bootstrap admin for the admin calls. The caller stops it with Stop.
func StartKeystone(ctx context.Context, base string) (*Keystone, error) {
	return StartKeystoneWith(ctx, base, KeystoneOptions{})
}

// StartKeystoneWith is StartKeystone with other lockout settings.
func StartKeystoneWith(ctx context.Context, base string, o KeystoneOptions) (_ *Keystone, err error) {
	for _, tool := range []string{"keystone-manage", "keystone-wsgi-public"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is not installed: run make test-deps", tool)
		}
	}
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	k := &Keystone{
		URL:           "http://" + addr + "/v3",
		Dir:           filepath.Join(base, "keystone"),
		AccessLog:     filepath.Join(base, "keystone-access.log"),
		AdminPassword: RandomHex(12),
		client:        &http.Client{Timeout: keystoneCallTimeout},
	}
	// The script execs keystone-wsgi-public, so this PID is Keystone's
	// once it serves; its own group, so that stopping it during the set-up
	// stops keystone-manage too.
	argv := []string{"sh", filepath.Join(root, "ops", "test-keystone.sh"), k.Dir, port, k.AdminPassword}
	if o.LockoutAttempts != 0 || o.LockoutDuration != 0 {
		attempts, duration := max(o.LockoutAttempts, 0), int(o.LockoutDuration/time.Second)
		if attempts == 0 {
			attempts = 5
		}
		if duration == 0 {
			duration = 1800
		}
		argv = append(argv, strconv.Itoa(attempts), strconv.Itoa(duration))
	}
	k.proc, err = Start(Cmd{
		Argv:  argv,
		Log:   k.AccessLog,
		Group: true,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			k.Stop()
		}
	}()
	if err := k.proc.WaitReady(ctx, k.client, k.URL, OK, keystoneStartWait); err != nil {
		return nil, fmt.Errorf("ops/test-keystone.sh: %w\n%s", err, k.Tail())
	}
	status, header, body, err := k.Call(http.MethodPost, "/auth/tokens", PasswordAuth("admin", k.AdminPassword, "admin"))
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated || header.Get("X-Subject-Token") == "" {
		return nil, fmt.Errorf("keystone admin login: status %d: %s", status, body)
	}
	k.adminToken = header.Get("X-Subject-Token")
	return k, nil
}

// Stop stops Keystone by its PID. Stopping a stopped Keystone does nothing.
func (k *Keystone) Stop() { k.proc.Stop() }

// Proc is Keystone's process.
func (k *Keystone) Proc() *Proc { return k.proc }

// Tail is the end of Keystone's logs, for failure messages.
func (k *Keystone) Tail() string {
	var b strings.Builder
	for _, f := range []string{k.AccessLog, filepath.Join(k.Dir, "keystone-manage.log"), filepath.Join(k.Dir, "keystone.log")} {
		fmt.Fprintf(&b, "--- %s (tail):\n%s\n", filepath.Base(f), TailFile(f))
	}
	return b.String()
}

// PasswordAuth is the body of a password login, scoped to a project of
// the Default domain unless project is "".
func PasswordAuth(user, password, project string) map[string]any {
	auth := map[string]any{
		"identity": map[string]any{
			"methods": []string{"password"},
			"password": map[string]any{"user": map[string]any{
				"name": user, "domain": map[string]string{"name": "Default"}, "password": password,
			}},
		},
	}
	if project != "" {
		auth["scope"] = map[string]any{"project": map[string]any{"name": project, "domain": map[string]string{"name": "Default"}}}
	}
	return map[string]any{"auth": auth}
}

// Call sends one JSON request (no body if body is nil) to Keystone, with
// the admin token once there is one, and tries again while Keystone
// answers 500 (sqlite). It returns the last status, headers and body.
func (k *Keystone) Call(method, path string, body any) (int, http.Header, []byte, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return 0, nil, nil, err
		}
	}
	for try := 1; ; try++ {
		req, err := http.NewRequest(method, k.URL+path, bytes.NewReader(payload))
		if err != nil {
			return 0, nil, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if k.adminToken != "" {
			req.Header.Set("X-Auth-Token", k.adminToken)
		}
		resp, err := k.client.Do(req)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("keystone %s %s: %w", method, path, err)
		}
		out, err := io.ReadAll(io.LimitReader(resp.Body, maxKeystoneReply))
		resp.Body.Close()
		if err != nil {
			return 0, nil, nil, fmt.Errorf("keystone %s %s: reading the body: %w", method, path, err)
		}
		if resp.StatusCode != http.StatusInternalServerError || try == keystoneWriteTries {
			return resp.StatusCode, resp.Header, out, nil
		}
		time.Sleep(time.Duration(try) * 200 * time.Millisecond)
	}
}

// Login is the status of a password login straight to Keystone, scoped to
// project unless it is "". The admin token is not sent.
func (k *Keystone) Login(user, password, project string) (int, error) {
	c := *k
	c.adminToken = ""
	status, _, _, err := c.Call(http.MethodPost, "/auth/tokens", PasswordAuth(user, password, project))
	return status, err
}

// Create makes one object of kind ("users", "projects", "roles",
// "domains") with name and the other fields, and returns its ID. A 409
// after a retried 500 means the write did happen: the object is then
// looked up by name.
func (k *Keystone) Create(kind, name string, fields map[string]any) (string, error) {
	singular := strings.TrimSuffix(kind, "s")
	obj := map[string]any{"name": name}
	for f, v := range fields {
		obj[f] = v
	}
	status, _, body, err := k.Call(http.MethodPost, "/"+kind, map[string]any{singular: obj})
	if err != nil {
		return "", err
	}
	switch status {
	case http.StatusCreated:
		var v map[string]struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v[singular].ID == "" {
			return "", fmt.Errorf("keystone create %s %s: no id in %s (%v)", singular, name, body, err)
		}
		return v[singular].ID, nil
	case http.StatusConflict:
		return k.ID(kind, name)
	}
	return "", fmt.Errorf("keystone create %s %s: status %d: %s", singular, name, status, body)
}

// ID looks up the one object of kind named name, e.g. the bootstrap's
// role "reader".
func (k *Keystone) ID(kind, name string) (string, error) {
	status, _, body, err := k.Call(http.MethodGet, "/"+kind+"?name="+url.QueryEscape(name), nil)
	if err != nil {
		return "", err
	}
	// The reply also holds "links", an object: decode only the list.
	var v map[string]json.RawMessage
	var list []struct {
		ID string `json:"id"`
	}
	err = json.Unmarshal(body, &v)
	if err == nil {
		err = json.Unmarshal(v[kind], &list)
	}
	if status != http.StatusOK || err != nil || len(list) != 1 {
		return "", fmt.Errorf("keystone look up %s %s: status %d: %s (%v)", strings.TrimSuffix(kind, "s"), name, status, body, err)
	}
	return list[0].ID, nil
}

// CreateUser makes an enabled user in the Default domain.
func (k *Keystone) CreateUser(name, password string) (string, error) {
	return k.Create("users", name, map[string]any{"domain_id": "default", "enabled": true, "password": password})
}

// UpdateUser PATCHes the user with ID id, e.g. {"enabled": false}.
func (k *Keystone) UpdateUser(id string, fields map[string]any) error {
	status, _, body, err := k.Call(http.MethodPatch, "/users/"+id, map[string]any{"user": fields})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("keystone update user %s: status %d: %s", id, status, body)
	}
	return nil
}

// Assign gives the user role on project (all three by ID).
func (k *Keystone) Assign(projectID, userID, roleID string) error {
	status, _, body, err := k.Call(http.MethodPut, "/projects/"+projectID+"/users/"+userID+"/roles/"+roleID, nil)
	if err != nil {
		return err
	}
	if status != http.StatusNoContent && status != http.StatusOK {
		return fmt.Errorf("keystone assign role %s on project %s to user %s: status %d: %s", roleID, projectID, userID, status, body)
	}
	return nil
}

// AuthPosts counts the password logins Keystone has logged: its access log
// has one line per request, written after the answer, e.g.
// 127.0.0.1 - - [29/Nov/2026 22:53:00] "POST /v3/auth/tokens HTTP/1.1" 201 1220
func (k *Keystone) AuthPosts() (int, error) {
	b, err := os.ReadFile(k.AccessLog)
	if err != nil {
		return 0, err
	}
	return bytes.Count(b, []byte(`"POST /v3/auth/tokens `)), nil
}
