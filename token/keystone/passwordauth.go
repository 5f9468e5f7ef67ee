package keystone

// PasswordAuth is the body of a Keystone v3 password login (POST
// /v3/auth/tokens) for user of the Default domain, scoped to project of that
// domain unless project is "". The backend logs in through gophercloud;
// this is for tests and tools that drive a Keystone's REST API directly.
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
