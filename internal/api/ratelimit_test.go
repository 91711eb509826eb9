package api_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/auth"
	"github.com/openkes/kes/internal/ratelimit"
	"github.com/openkes/kes/internal/vectors"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rateLimitServer starts a server whose policy "app" allows generating
// data keys and holds the identities ids, and whose admin is the first
// API key of the vectors; it returns the admin's certificate too.
func rateLimitServer(t *testing.T, limits *ratelimit.Config, policies map[string]auth.PolicyConfig) (*testServer, *tls.Certificate) {
	t.Helper()
	keys := vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")
	ts := startServer(t, serverOptions{policies: policies})
	ts.Server.SetRateLimits(limits)
	admin := apiKeyCert(t, keys[0].APIKey)
	c := ts.client(t, admin, false)
	if r := do(t, c, "POST", ts.URL+"/v1/key/create/k", nil); r.Status != http.StatusOK {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	return ts, admin
}

func appPolicy(ids ...kes.Identity) auth.PolicyConfig {
	return auth.PolicyConfig{Allow: []string{"/v1/key/generate/*"}, Identities: ids}
}

// TestRateLimitMeasured sends generate requests of one identity, as fast
// as it can, for two seconds against a limit of burst 10 and 5 a second:
// the 200s counted over the window are burst + rate × time, the rest are
// 429 with a sane Retry-After, and another identity of the same policy and
// the admin are not affected.
func TestRateLimitMeasured(t *testing.T) {
	noisyID, noisyCert := newAPIKey(t)
	quietID, quietCert := newAPIKey(t)
	limit := ratelimit.Limit{PerSecond: 5, Burst: 10}
	ts, adminCert := rateLimitServer(t,
		&ratelimit.Config{Policies: map[string]*ratelimit.Limit{"app": &limit}, Default: &ratelimit.Limit{PerSecond: 1, Burst: 1}},
		map[string]auth.PolicyConfig{"app": appPolicy(noisyID, quietID)})
	noisy := ts.client(t, noisyCert, false)

	const window = 2 * time.Second
	var ok, limited int
	start := time.Now()
	for time.Since(start) < window {
		r := do(t, noisy, "POST", ts.URL+"/v1/key/generate/k", nil)
		switch r.Status {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
			if got := string(r.Body); got != "{\"message\":\"too many requests\"\n}" {
				t.Fatalf("429 body %q", got)
			}
			// At 5 a second a token is back within 200 ms: Retry-After
			// rounds up to the whole second.
			if got := r.Header.Get("Retry-After"); got != "1" {
				t.Fatalf("Retry-After %q, want \"1\"", got)
			}
		default:
			t.Fatalf("noisy: %d %s", r.Status, r.Body)
		}
	}
	elapsed := time.Since(start)
	want := float64(limit.Burst) + limit.PerSecond*elapsed.Seconds()
	t.Logf("%d requests in %v: %d answered 200 (burst + rate × time = %.1f), %d answered 429", ok+limited, elapsed.Round(time.Millisecond), ok, want, limited)
	if float64(ok) < want-2 || float64(ok) > want+1 {
		t.Errorf("%d requests answered 200 in %v, want %.1f (-2/+1)", ok, elapsed, want)
	}
	if limited < 10 {
		t.Fatalf("only %d requests answered 429: the client was too slow to test the limit", limited)
	}

	// Another identity of the policy has a bucket of its own: its burst
	// is whole.
	quiet := ts.client(t, quietCert, false)
	for i := range limit.Burst {
		if r := do(t, quiet, "POST", ts.URL+"/v1/key/generate/k", nil); r.Status != http.StatusOK {
			t.Fatalf("quiet identity, request %d: %d %s", i, r.Status, r.Body)
		}
	}
	// The admin is exempt: api.rate_limit does not apply to it.
	admin := ts.client(t, adminCert, false)
	for i := range 50 {
		if r := do(t, admin, "POST", ts.URL+"/v1/key/generate/k", nil); r.Status != http.StatusOK {
			t.Fatalf("admin, request %d: %d %s", i, r.Status, r.Body)
		}
	}
	if got := counterValue(t, ts, "kes_http_request_rate_limited"); got != float64(limited) {
		t.Errorf("kes_http_request_rate_limited = %v, want %d", got, limited)
	}
}

var auditLine429 = regexp.MustCompile(`req\.path=/v1/key/generate/k .*req\.identity=(\S+) res\.code=429`)

// TestRateLimitWhoAndWhere checks, on a fake clock, which limit applies to
// whom (policy, default, "off", admin, unknown identities), the answer,
// and that each 429 is audited and counted.
func TestRateLimitWhoAndWhere(t *testing.T) {
	appID, appCert := newAPIKey(t)
	otherID, otherCert := newAPIKey(t)
	freeID, freeCert := newAPIKey(t)
	_, strangerCert := newAPIKey(t)
	limits := &ratelimit.Config{
		Default: &ratelimit.Limit{PerSecond: 0.25, Burst: 2},
		Policies: map[string]*ratelimit.Limit{
			"app":  {PerSecond: 1, Burst: 3},
			"free": nil, // rate_limit: off
		},
	}
	policies := map[string]auth.PolicyConfig{"app": appPolicy(appID), "other": appPolicy(otherID), "free": appPolicy(freeID)}
	ts, adminCert := rateLimitServer(t, nil, policies)
	clock := &fakeClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	api.SetRateLimitClock(ts.Server, clock.Now)
	ts.Server.SetRateLimits(limits)

	// statuses sends n generate requests and returns their statuses and
	// the Retry-After of the last.
	statuses := func(cert *tls.Certificate, n int) (string, string) {
		c := ts.client(t, cert, false)
		var got []string
		var retry string
		for range n {
			r := do(t, c, "POST", ts.URL+"/v1/key/generate/k", nil)
			got = append(got, strconv.Itoa(r.Status))
			retry = r.Header.Get("Retry-After")
		}
		return strings.Join(got, " "), retry
	}
	for _, tt := range []struct {
		name      string
		cert      *tls.Certificate
		want      string
		wantRetry string
	}{
		{"policy limit", appCert, "200 200 200 429 429", "1"},
		{"default limit", otherCert, "200 200 429", "4"}, // a token every 4 s
		{"policy off", freeCert, "200 200 200 200 200 200 200 200", ""},
		{"admin exempt", adminCert, "200 200 200 200 200 200 200 200", ""},
		{"unknown identity: refused by its policy, not limited", strangerCert, "403 403 403 403 403", ""},
	} {
		if got, retry := statuses(tt.cert, len(strings.Fields(tt.want))); got != tt.want || retry != tt.wantRetry {
			t.Errorf("%s: got %s (Retry-After %q), want %s (%q)", tt.name, got, retry, tt.want, tt.wantRetry)
		}
	}
	// An identity assigned at runtime to a policy written through the API
	// (which carries no rate_limit) gets the default.
	ephID, ephCert := newAPIKey(t)
	adminClient := ts.client(t, adminCert, false)
	for _, req := range []struct{ path, body string }{
		{"/v1/policy/write/ephemeral", `{"allow":["/v1/key/generate/*"]}`},
		{"/v1/policy/assign/ephemeral", `{"identity":"` + string(ephID) + `"}`},
	} {
		if r := do(t, adminClient, "POST", ts.URL+req.path, strings.NewReader(req.body)); r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", req.path, r.Status, r.Body)
		}
	}
	if got, retry := statuses(ephCert, 3); got != "200 200 429" || retry != "4" {
		t.Errorf("ephemeral policy: %s (Retry-After %q), want 200 200 429 (4): the default limit", got, retry)
	}
	// A second later the app identity has one token back.
	clock.Add(time.Second)
	if got, _ := statuses(appCert, 2); got != "200 429" {
		t.Errorf("app after 1 s: %s, want 200 429", got)
	}
	// The admin is limited once admin.rate_limit says so.
	ts.Server.SetRateLimits(&ratelimit.Config{Admin: &ratelimit.Limit{PerSecond: 1, Burst: 1}})
	if got, retry := statuses(adminCert, 2); got != "200 429" || retry != "1" {
		t.Errorf("admin with admin.rate_limit: %s (Retry-After %q), want 200 429 (1)", got, retry)
	}
	// Without limits nobody is limited, whatever the buckets hold.
	ts.Server.SetRateLimits(&ratelimit.Config{})
	if got, _ := statuses(appCert, 3); got != "200 200 200" {
		t.Errorf("no limits: %s", got)
	}

	const want429 = 2 + 1 + 1 + 1 + 1 // app, default, ephemeral, app after 1 s, admin
	if got := counterValue(t, ts, "kes_http_request_rate_limited"); got != want429 {
		t.Errorf("kes_http_request_rate_limited = %v, want %d", got, want429)
	}
	ts.Stop()
	ts.AuditLog.Close()
	byID := map[string]int{}
	for line := range strings.Lines(ts.Audit.String()) {
		if m := auditLine429.FindStringSubmatch(line); m != nil {
			byID[m[1]]++
		}
	}
	admin, err := kes.ParseAPIKey(vectors.ReadJSONL[apiKeyVector](t, "identities/apikeys.jsonl")[0].APIKey)
	if err != nil {
		t.Fatal(err)
	}
	wantByID := map[string]int{string(appID): 3, string(otherID): 1, string(ephID): 1, string(admin.Identity()): 1}
	for id, n := range wantByID {
		if byID[id] != n {
			t.Errorf("audit: %d lines with 429 of %s, want %d (all: %v)", byID[id], id, n, byID)
		}
	}
	if !strings.Contains(ts.Errors.String(), "too many requests: rate limited by policy.app.rate_limit") {
		t.Errorf("no DEBUG line naming the limit in the error log:\n%s", ts.Errors.String())
	}
	// A refusal before the handler: not in the request counters.
	families, err := ts.Metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && l.GetValue() == "429" {
					t.Errorf("429 counted in %s", f.GetName())
				}
			}
		}
	}
}

// TestRateLimitSDK: the SDK waits out a 429 of a real server and succeeds,
// and gives up with a *kes.RateLimitError at once when the wait the server
// asks for outlasts its context.
func TestRateLimitSDK(t *testing.T) {
	appKey, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := rateLimitServer(t, &ratelimit.Config{Policies: map[string]*ratelimit.Limit{"app": {PerSecond: 2, Burst: 1}}},
		map[string]auth.PolicyConfig{"app": appPolicy(appKey.Identity())})
	client, err := kes.NewClient([]string{ts.URL}, kes.WithAPIKey(appKey), kes.WithInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	start := time.Now()
	for i := range 2 {
		if _, err := client.GenerateKey(t.Context(), "k", nil); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	// The second request was answered 429 with Retry-After: 1 and sent
	// again a second (plus jitter) later.
	if elapsed := time.Since(start); elapsed < time.Second || elapsed > 5*time.Second {
		t.Errorf("two requests took %v, want a wait of about a second", elapsed)
	}
	if got := counterValue(t, ts, "kes_http_request_rate_limited"); got != 1 {
		t.Errorf("kes_http_request_rate_limited = %v, want 1", got)
	}

	// One request every 100 s: the wait is longer than the context. (The
	// bucket refilled at the old rate until the change: a little less.)
	ts.Server.SetRateLimits(&ratelimit.Config{Policies: map[string]*ratelimit.Limit{"app": {PerSecond: 0.01, Burst: 1}}})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = client.GenerateKey(ctx, "k", nil)
	rl, ok := errors.AsType[*kes.RateLimitError](err)
	if !ok || !errors.Is(err, kes.ErrTooManyRequests) || rl.RetryAfter < 90*time.Second || rl.RetryAfter > 100*time.Second {
		t.Fatalf("got %v, want a *kes.RateLimitError (too many requests) with RetryAfter 90-100s", err)
	}
	if ctx.Err() != nil {
		t.Error("the client waited for its deadline instead of giving up")
	}
}
