package api

import "testing"

// TestSkipAuth: only skip_auth on a route that checks a policy makes the
// server public; the TLS setup and the handlers ask the same function.
func TestSkipAuth(t *testing.T) {
	tests := []struct {
		name   string
		routes map[string]RouteConfig
		want   bool
	}{
		{"none", nil, false},
		{"timeout only", map[string]RouteConfig{"/v1/status": {Timeout: 1}}, false},
		{"version", map[string]RouteConfig{"/version": {SkipAuth: true}}, false},
		{"self describe", map[string]RouteConfig{"/v1/identity/self/describe": {SkipAuth: true}}, false},
		{"unknown route", map[string]RouteConfig{"/v1/nope": {SkipAuth: true}}, false},
		{"status", map[string]RouteConfig{"/v1/status": {SkipAuth: true}}, true},
		{"prefix route", map[string]RouteConfig{"/version": {SkipAuth: true}, "/v1/key/list/": {SkipAuth: true}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SkipAuth(tt.routes); got != tt.want {
				t.Errorf("SkipAuth = %v, want %v", got, tt.want)
			}
			// The handlers agree: a public route only identifies.
			s := &Server{}
			s.Update(nil, nil, tt.routes, Deletion{})
			public := false
			for _, rt := range s.state.Load().routes {
				public = public || rt.Auth == authIdentify && rt.Path != "/v1/identity/self/describe"
			}
			if public != tt.want {
				t.Errorf("handlers: a public route = %v, want %v", public, tt.want)
			}
		})
	}
}
