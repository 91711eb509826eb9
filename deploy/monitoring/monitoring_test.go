// Package monitoring_test checks the files in deploy/monitoring against
// the metrics a real server exports: every metric the Grafana dashboard
// and the alert rules query is served at /v1/metrics, every family served
// there is charted, and the alert rules have the shape Prometheus needs.
package monitoring_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/openkes/kes"
	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/keystore"
	"github.com/openkes/kes/internal/keystore/mem"
	"github.com/openkes/kes/internal/metrics"
	"github.com/openkes/kes/internal/proxytest"
	"github.com/openkes/kes/internal/server"
)

// notExported are the metrics queries may use although KES does not
// export them, each with the reason.
var notExported = map[string]string{
	"up": "Prometheus's own series of every scrape target: whether /v1/metrics answered",
}

// notCharted are the exported families no dashboard panel needs to show,
// each with the reason. It is empty: every family is charted.
var notCharted = map[string]string{}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Inputs        []struct {
		Name     string `json:"name"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Datasource *datasource     `json:"datasource"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

// rules is a Prometheus rule file.
type rules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestDashboardCoversExportedMetrics(t *testing.T) {
	exported := scrapeServer(t)
	t.Logf("the server exports %d families", len(exported))

	// Every family the metrics package registers is in the scrape: a
	// family added there but not reached by the requests below would
	// escape the coverage check.
	for name := range registeredFamilies(t) {
		if !exported[name] {
			t.Errorf("family %s is registered but not in the server's scrape; make the test produce a sample of it", name)
		}
	}

	d := readDashboard(t)
	charted := map[string]bool{}
	for _, p := range allPanels(d.Panels) {
		for _, target := range p.Targets {
			names, err := metricNames(target.Expr)
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
			if len(names) == 0 {
				t.Errorf("panel %q: query %q uses no metric", p.Title, target.Expr)
			}
			for _, n := range names {
				checkExported(t, "panel "+p.Title, n, exported)
				charted[family(n)] = true
			}
		}
	}
	for _, v := range d.Templating.List {
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query: %v", v.Name, err)
			continue
		}
		m := regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)`).FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric...)", v.Name, q.Query)
			continue
		}
		checkExported(t, "variable "+v.Name, m[1], exported)
	}
	for name := range exported {
		if !charted[name] && notCharted[name] == "" {
			t.Errorf("exported family %s is in no dashboard panel", name)
		}
	}

	for _, r := range readRules(t) {
		names, err := metricNames(r.expr)
		if err != nil || len(names) == 0 {
			t.Errorf("alert %s: metrics of %q: %v %v", r.alert, r.expr, names, err)
		}
		for _, n := range names {
			checkExported(t, "alert "+r.alert, n, exported)
		}
	}
}

// checkExported reports an error unless the metric name is in a family of
// exported or in notExported.
func checkExported(t *testing.T, where, name string, exported map[string]bool) {
	t.Helper()
	if !exported[family(name)] && notExported[name] == "" {
		t.Errorf("%s queries %s, which the server does not export", where, name)
	}
}

// family maps a series name to its family: a histogram's _bucket, _sum
// and _count series belong to the histogram.
func family(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok {
			return base
		}
	}
	return name
}

// promqlWords are the PromQL keywords and aggregation operators that may
// stand where a metric name could, without a parenthesis right after.
var promqlWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true, "group": true,
	"start": true, "end": true,
}

// metricNames returns the metric names expr queries: the identifiers
// that are not followed by "(" (functions), not PromQL words, and not in a
// label matcher {...}, a range [...], a grouping list after by, without,
// on, ignoring, group_left or group_right, a string or a $variable.
func metricNames(expr string) ([]string, error) {
	var names []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	skipTo := func(i int, end byte) (int, error) {
		for j := i + 1; j < len(expr); j++ {
			switch expr[j] {
			case '"', '\'', '`':
				k := strings.IndexByte(expr[j+1:], expr[j])
				if k < 0 {
					return 0, errors.New("unterminated string")
				}
				j += k + 1
			case end:
				return j + 1, nil
			}
		}
		return 0, errors.New("unterminated " + string(end))
	}
	groupNext := false // the next (...) is a list of labels
	depth := 0         // open parentheses
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			k := strings.IndexByte(expr[i+1:], c)
			if k < 0 {
				return nil, errors.New("unterminated string")
			}
			i += k + 2
		case c == '{':
			j, err := skipTo(i, '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipTo(i, ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '(' && groupNext:
			j, err := skipTo(i, ')')
			if err != nil {
				return nil, err
			}
			i, groupNext = j, false
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth--; depth < 0 {
				return nil, errors.New("unbalanced )")
			}
			i++
		case c == '$':
			i++
			for i < len(expr) && isPart(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			// A number or duration: 0.99, 1e-9, 5m.
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.') {
				i++
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n') {
				k++
			}
			switch {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" ||
				word == "group_left" || word == "group_right":
				groupNext = true
			case promqlWords[word]:
			case k < len(expr) && expr[k] == '(':
				// A function call.
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
			i = j
		default:
			i++
		}
	}
	if depth != 0 {
		return nil, errors.New("unbalanced (")
	}
	return names, nil
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le) (rate(kes_http_response_time_bucket{job=~"$job", le!="x"}[$__rate_interval])))`: {"kes_http_response_time_bucket"},
		`(sum(rate(a_total[5m])) or vector(0)) / on (instance) group_left(code) b:rate5m offset 1h`:                           {"a_total", "b:rate5m"},
		`increase(x[10m]) > 0 or increase(y[10m]) > 1e-9`:                                                                     {"x", "y"},
		`max without (job) (up{job="kes"}) == bool 0`:                                                                         {"up"},
		`sum by(code)(z)`: {"z"},
	} {
		got, err := metricNames(expr)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, %v; want %q", expr, got, err, want)
		}
	}
	for _, expr := range []string{`x{a="b"`, `rate(x[5m)`, `x{a="b}`, `sum(rate(x[5m])`, `sum(x))`} {
		if _, err := metricNames(expr); err == nil {
			t.Errorf("metricNames(%q): no error", expr)
		}
	}
}

func TestDashboardShape(t *testing.T) {
	d := readDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want 36 or newer", d.SchemaVersion)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs = %+v: want one Prometheus input DS_PROMETHEUS", d.Inputs)
	}
	const uid = "${DS_PROMETHEUS}"
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
		if v.Datasource == nil || v.Datasource.UID != uid {
			t.Errorf("variable %s: datasource %+v, want uid %s", v.Name, v.Datasource, uid)
		}
	}
	if !slices.Equal(vars, []string{"job", "instance"}) {
		t.Errorf("template variables %q, want job and instance", vars)
	}
	ids := map[int]bool{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d is not unique", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != uid || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want prometheus %s", p.Title, p.Datasource, uid)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			if !strings.Contains(target.Expr, `job=~"$job"`) || !strings.Contains(target.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: query %q does not select $job and $instance", p.Title, target.Expr)
			}
			if target.Datasource == nil || target.Datasource.UID != uid {
				t.Errorf("panel %q: query datasource %+v, want %s", p.Title, target.Datasource, uid)
			}
		}
	}
}

func TestAlertRulesShape(t *testing.T) {
	rs := readRules(t)
	var names []string
	for _, r := range rs {
		names = append(names, r.alert)
	}
	for _, want := range []string{"KESKeyStoreOffline", "KESHighErrorRate", "KESHighLatency", "KESAuditEventsSuppressed", "KESLogStreamDrops"} {
		if !slices.Contains(names, want) {
			t.Errorf("no alert %s among %q", want, names)
		}
	}
	for _, r := range rs {
		if r.alert == "KESKeyStoreOffline" && (r.forDur != time.Minute || !strings.Contains(r.expr, "kes_keystore_offline") || !strings.HasSuffix(r.expr, "== 1")) {
			t.Errorf("KESKeyStoreOffline: %q for %v, want kes_keystore_offline == 1 for 1m", r.expr, r.forDur)
		}
	}
}

func TestScrapeConfig(t *testing.T) {
	var c struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName     string `yaml:"job_name"`
			Scheme      string `yaml:"scheme"`
			MetricsPath string `yaml:"metrics_path"`
			TLSConfig   struct {
				CAFile   string `yaml:"ca_file"`
				CertFile string `yaml:"cert_file"`
				KeyFile  string `yaml:"key_file"`
			} `yaml:"tls_config"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	decodeYAML(t, "prometheus.yml", &c)
	if !slices.Equal(c.RuleFiles, []string{"alerts.yml"}) {
		t.Errorf("rule_files %q, want alerts.yml", c.RuleFiles)
	}
	if len(c.ScrapeConfigs) != 1 {
		t.Fatalf("%d scrape configs, want 1", len(c.ScrapeConfigs))
	}
	s := c.ScrapeConfigs[0]
	// KESTargetDown selects up{job="kes"}.
	if s.JobName != "kes" || s.Scheme != "https" || s.MetricsPath != "/v1/metrics" {
		t.Errorf("job %q scheme %q path %q, want kes https /v1/metrics", s.JobName, s.Scheme, s.MetricsPath)
	}
	if s.TLSConfig.CAFile == "" || s.TLSConfig.CertFile == "" || s.TLSConfig.KeyFile == "" {
		t.Errorf("tls_config %+v: want ca_file, cert_file and key_file", s.TLSConfig)
	}
	if len(s.StaticConfigs) == 0 || len(s.StaticConfigs[0].Targets) == 0 {
		t.Error("no targets")
	}
}

// rule is one alert rule, checked for the fields Prometheus and the
// receivers need.
type rule struct {
	alert, expr string
	forDur      time.Duration
}

func readRules(t *testing.T) []rule {
	t.Helper()
	var rf rules
	decodeYAML(t, "alerts.yml", &rf)
	if len(rf.Groups) == 0 {
		t.Fatal("alerts.yml: no groups")
	}
	var out []rule
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: want a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("group %s: rule %q: want alert and expr", g.Name, r.Alert)
			}
			var d time.Duration
			if r.For != "" {
				md, err := model.ParseDuration(r.For)
				if err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
				d = time.Duration(md)
			}
			switch r.Labels["severity"] {
			case "critical", "warning":
			default:
				t.Errorf("alert %s: labels.severity %q, want critical or warning", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s: no annotations.summary", r.Alert)
			}
			out = append(out, rule{alert: r.Alert, expr: strings.TrimSpace(r.Expr), forDur: d})
		}
	}
	return out
}

// decodeYAML decodes the file name of this folder into v.
func decodeYAML(t *testing.T, name string, v any) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := yaml.NewDecoder(f).Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func readDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	d := new(dashboard)
	if err := json.Unmarshal(b, d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	return d
}

// allPanels returns ps and the panels of collapsed rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// registeredFamilies returns the families a metrics.New registry holds
// once each has a sample, including the key store gauge the server adds.
func registeredFamilies(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New(time.Now())
	m.KeyStoreOffline(func() bool { return false })
	for _, code := range []int{200, 404, 500} {
		m.Observe(code, time.Millisecond)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range fams {
		out[f.GetName()] = true
	}
	return out
}

// failingStore is an in-memory store whose Get of the key "broken" fails
// as a store that answers with an error, so the server answers 5xx.
type failingStore struct{ *mem.Store }

func (s failingStore) Get(ctx context.Context, name string) ([]byte, error) {
	if name == "broken" {
		return nil, errors.New("failing store: read failed")
	}
	return s.Store.Get(ctx, name)
}

// scrapeServer runs a server with /v1/metrics under skip_auth, sends
// requests answered with 2xx, 4xx and 5xx, and returns the families of
// its /v1/metrics.
func scrapeServer(t *testing.T) map[string]bool {
	t.Helper()
	admin, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	store := failingStore{new(mem.Store)}
	if err := store.Store.Create(t.Context(), "broken", []byte("not a key")); err != nil {
		t.Fatal(err)
	}
	c := &server.Config{
		Addr:   "127.0.0.1:0",
		TLS:    tlsFiles(t),
		Admin:  admin.Identity(),
		Routes: map[string]api.RouteConfig{"/v1/metrics": {SkipAuth: true}},
		Connect: func(context.Context, *slog.Logger) (keystore.Store, error) {
			return store, nil
		},
		Banner: "In Memory",
	}
	addrs := make(chan net.Addr, 1)
	s := &server.Server{
		LookupEnv: func(string) (string, bool) { return "", false },
		Started: func(_ *server.Config, addr net.Addr) {
			select {
			case addrs <- addr:
			default:
			}
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	var url string
	select {
	case addr := <-addrs:
		url = "https://" + addr.String()
	case err := <-done:
		done <- err
		t.Fatalf("run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not start")
	}

	adminClient := httpClient(t, &admin)
	for _, req := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/v1/key/create/my-key", http.StatusOK},
		{http.MethodGet, "/v1/key/describe/missing", http.StatusNotFound},
		{http.MethodGet, "/v1/key/describe/broken", 0}, // any 5xx
	} {
		r, err := http.NewRequest(req.method, url+req.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := adminClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.status != 0 && resp.StatusCode != req.status || req.status == 0 && resp.StatusCode < 500 {
			t.Fatalf("%s %s: %d, want %d (0: a 5xx)", req.method, req.path, resp.StatusCode, req.status)
		}
	}

	// skip_auth: Prometheus without a client certificate may scrape.
	resp, err := httpClient(t, nil).Get(url + "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/metrics: %d %v", resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /v1/metrics: %v", err)
	}
	out := map[string]bool{}
	for name := range fams {
		out[name] = true
	}
	return out
}

// httpClient returns a client with the certificate of key (none for nil)
// that trusts any server certificate.
func httpClient(t *testing.T, key *kes.APIKey) *http.Client {
	t.Helper()
	conf := &tls.Config{InsecureSkipVerify: true}
	if key != nil {
		cert, err := kes.GenerateCertificate(*key, nil)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// tlsFiles issues a server certificate for 127.0.0.1 from a test CA.
func tlsFiles(t *testing.T) *api.TLSConfig {
	t.Helper()
	c := proxytest.NewCA(t).Issue(t, "server", proxytest.ServerAuth)
	return &api.TLSConfig{CertFile: c.CertFile, KeyFile: c.KeyFile}
}
