package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/openkes/kes/internal/api"
	"github.com/openkes/kes/internal/config"
	"github.com/openkes/kes/internal/keystore/stores"
	"github.com/openkes/kes/internal/peerbin"
)

const (
	manifestDir = "kubernetes"
	chartDir    = "helm/kes"
	configPath  = "/etc/kes/config.yml"
	tlsDir      = "/etc/kes/tls"
)

var helmPeer = &peerbin.Peer{Name: "helm", Env: "OPENKES_HELM_BIN", Script: "install-helm.sh"}

// objects is a set of decoded Kubernetes objects.
type objects struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	secrets         []*corev1.Secret
	serviceAccounts []*corev1.ServiceAccount
	serviceMonitors []*serviceMonitor
}

// serviceMonitor holds the fields of a Prometheus Operator ServiceMonitor
// that the chart sets. Its Go types live in the operator's module, which
// the tests do not import for one optional object, so this local type
// only checks that the chart writes no other field.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port      string         `json:"port"`
			Scheme    string         `json:"scheme"`
			Path      string         `json:"path"`
			Interval  string         `json:"interval"`
			TLSConfig map[string]any `json:"tlsConfig,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode decodes every YAML document of data with the Kubernetes API
// types in strict mode: an unknown or duplicate field, a value of the
// wrong type or a malformed quantity fails.
func decode(name string, data []byte, into *objects) error {
	for i, doc := range docSep.Split(string(data), -1) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if tm.APIVersion == "" && tm.Kind == "" {
			var v any
			if err := yaml.Unmarshal([]byte(doc), &v); err != nil || v != nil {
				return fmt.Errorf("%s: document %d has no apiVersion and kind", name, i)
			}
			continue // empty document, e.g. comments only
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			d := new(appsv1.Deployment)
			into.deployments, obj = append(into.deployments, d), d
		case "v1 Service":
			s := new(corev1.Service)
			into.services, obj = append(into.services, s), s
		case "v1 Secret":
			s := new(corev1.Secret)
			into.secrets, obj = append(into.secrets, s), s
		case "v1 ServiceAccount":
			s := new(corev1.ServiceAccount)
			into.serviceAccounts, obj = append(into.serviceAccounts, s), s
		case "monitoring.coreos.com/v1 ServiceMonitor":
			s := new(serviceMonitor)
			into.serviceMonitors, obj = append(into.serviceMonitors, s), s
		default:
			return fmt.Errorf("%s: document %d: unexpected %s %s", name, i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return fmt.Errorf("%s: document %d (%s): %w", name, i, tm.Kind, err)
		}
	}
	return nil
}

// TestDecodeStrict: the strict decoding the manifest tests rely on does
// reject a misspelt field, a field at the wrong level and a bad quantity.
func TestDecodeStrict(t *testing.T) {
	good := "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 7373}]}\n"
	if err := decode("good", []byte(good), &objects{}); err != nil {
		t.Fatalf("a valid Service: %v", err)
	}
	for _, bad := range []string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {prots: [{port: 7373}]}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nports: [{port: 7373}]\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: https}]}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {template: {spec: {containers: [{name: x, resources: {limits: {memory: 12QQ}}}]}}}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nmetadata: {name: y}\n",
	} {
		if err := decode("bad", []byte(bad), &objects{}); err == nil {
			t.Errorf("decoded without error:\n%s", bad)
		}
	}
}

// readManifests decodes every file of the plain manifests' folder dir.
func readManifests(t *testing.T, dir string) *objects {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no manifests (%v)", dir, err)
	}
	objs := new(objects)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := decode(f, b, objs); err != nil {
			t.Fatal(err)
		}
	}
	return objs
}

// secretData returns the value of key in s, from data or stringData.
func secretData(s *corev1.Secret, key string) ([]byte, bool) {
	if v, ok := s.StringData[key]; ok {
		return []byte(v), true
	}
	v, ok := s.Data[key]
	return v, ok
}

func findSecret(objs *objects, name string) *corev1.Secret {
	for _, s := range objs.secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

var envRef = regexp.MustCompile(`\$\{([^}]*)\}`)

// checkConfig loads the config.yml of the Secret name with the server's
// own parser, with the ${VAR}s it refers to set from envSecret's keys (or
// to placeholders when envSecret is nil), and checks that the probes'
// routes skip authentication and that the TLS files are read from the
// mounted TLS Secret. It returns the parsed file.
func checkConfig(t *testing.T, where string, objs *objects, name string, envSecret *corev1.Secret, probes []string) *config.File {
	t.Helper()
	s := findSecret(objs, name)
	if s == nil {
		t.Fatalf("%s: no Secret %s", where, name)
	}
	data, ok := secretData(s, "config.yml")
	if !ok {
		t.Fatalf("%s: Secret %s has no config.yml", where, name)
	}
	for _, m := range envRef.FindAllSubmatch(data, -1) {
		v := strings.TrimSpace(string(m[1]))
		if envSecret != nil {
			if _, ok := secretData(envSecret, v); !ok {
				t.Errorf("%s: config.yml refers to ${%s}, which the Secret %s does not hold", where, v, envSecret.Name)
			}
		}
		t.Setenv(v, "placeholder-"+strings.ToLower(v))
	}
	f, err := config.Parse(data, where+": config.yml", &config.Schema{KeyStores: stores.All, Routes: api.Paths()})
	if err != nil {
		t.Fatalf("%s: config.yml does not load: %v", where, err)
	}
	if len(f.Notices) > 0 {
		t.Errorf("%s: config.yml has ignored keys: %v", where, f.Notices)
	}
	for _, p := range probes {
		if !f.API[p].SkipAuth {
			t.Errorf("%s: a probe asks %s, but config.yml has no skip_auth: true for it", where, p)
		}
	}
	for _, p := range []string{f.TLS.KeyFile, f.TLS.CertFile} {
		if filepath.Dir(p) != tlsDir {
			t.Errorf("%s: config.yml reads TLS file %s, want one in %s, where the TLS Secret is mounted", where, p, tlsDir)
		}
	}
	if b := f.KeyStore.Banner(); !strings.HasPrefix(b, "Hashicorp Vault: ") {
		t.Errorf("%s: key store %q, want Vault", where, b)
	}
	return f
}

// checkDeployment checks the security settings, probes, resources,
// anti-affinity and volumes of the one Deployment of objs, and that the
// one Service selects its pods. It returns the paths its probes ask.
func checkDeployment(t *testing.T, where string, objs *objects, wantConfigSecret, wantTLSSecret string) []string {
	t.Helper()
	if len(objs.deployments) != 1 || len(objs.services) != 1 {
		t.Fatalf("%s: %d Deployments and %d Services, want one each", where, len(objs.deployments), len(objs.services))
	}
	d, svc := objs.deployments[0], objs.services[0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("%s: replicas %v, want 3", where, d.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("%s: the Deployment's selector %v does not select its pods %v (%v)", where, d.Spec.Selector, d.Spec.Template.Labels, err)
	}
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("%s: the Service's selector %v does not select the pods %v", where, svc.Spec.Selector, d.Spec.Template.Labels)
	}

	pod := d.Spec.Template.Spec
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Errorf("%s: pod securityContext %+v, want runAsNonRoot, runAsUser 65532 (the image's user) and seccomp RuntimeDefault", where, psc)
	}
	aa := pod.Affinity
	if aa == nil || aa.PodAntiAffinity == nil {
		t.Errorf("%s: no pod anti-affinity", where)
	} else {
		var keys []string
		for _, term := range aa.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			keys = append(keys, term.PodAffinityTerm.TopologyKey)
			if s, err := metav1.LabelSelectorAsSelector(term.PodAffinityTerm.LabelSelector); err != nil || s.Empty() || !s.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("%s: the anti-affinity term does not select the pods", where)
			}
		}
		for _, term := range aa.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			keys = append(keys, term.TopologyKey)
		}
		if !slices.Contains(keys, "kubernetes.io/hostname") {
			t.Errorf("%s: anti-affinity topology keys %v, want kubernetes.io/hostname", where, keys)
		}
	}

	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", where, len(pod.Containers))
	}
	c := pod.Containers[0]
	if !strings.HasPrefix(c.Image, "ghcr.io/openkes/kes:") {
		t.Errorf("%s: image %q", where, c.Image)
	}
	if want := []string{"server", "--config", configPath}; !slices.Equal(c.Args, want) || len(c.Command) > 0 {
		t.Errorf("%s: command %q args %q, want the image's entrypoint with args %q", where, c.Command, c.Args, want)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		(sc.Privileged != nil && *sc.Privileged) ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: container securityContext %+v, want read-only root, no privilege escalation, non-root, all capabilities dropped and none added", where, sc)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
			t.Errorf("%s: no %s request", where, r)
		}
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
		t.Errorf("%s: no memory limit", where)
	}

	var port *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == "https" {
			port = &c.Ports[i]
		}
	}
	if port == nil || port.ContainerPort != 7373 {
		t.Fatalf("%s: no container port https 7373: %+v", where, c.Ports)
	}
	var probed []string
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, "/v1/ready"}, {"liveness", c.LivenessProbe, "/v1/status"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: no %s HTTP probe", where, p.name)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || g.Scheme != corev1.URISchemeHTTPS || g.Port != intstr.FromString("https") {
			t.Errorf("%s: %s probe %s %s port %s, want HTTPS %s on port https", where, p.name, g.Scheme, g.Path, g.Port.String(), p.path)
		}
		probed = append(probed, g.Path)
	}

	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 7373 || svc.Spec.Ports[0].TargetPort != intstr.FromString("https") {
		t.Errorf("%s: Service ports %+v, want 7373 to the container port https", where, svc.Spec.Ports)
	}

	// The config file and the TLS files come from Secrets, mounted
	// read-only where config.yml and the image expect them.
	volumes := map[string]*corev1.SecretVolumeSource{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v.Secret
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
		if !m.ReadOnly {
			t.Errorf("%s: volume %s is mounted writable", where, m.Name)
		}
	}
	if m, ok := mounts[configPath]; !ok || m.SubPath != "config.yml" || volumes[m.Name] == nil || volumes[m.Name].SecretName != wantConfigSecret {
		t.Errorf("%s: %s is not config.yml of the Secret %s", where, configPath, wantConfigSecret)
	}
	if m, ok := mounts[tlsDir]; !ok || volumes[m.Name] == nil || volumes[m.Name].SecretName != wantTLSSecret {
		t.Errorf("%s: %s is not the Secret %s", where, tlsDir, wantTLSSecret)
	}
	return probed
}

// envSecretName returns the name of the Secret the Deployment takes its
// environment from, or "".
func envSecretName(d *appsv1.Deployment) string {
	for _, e := range d.Spec.Template.Spec.Containers[0].EnvFrom {
		if e.SecretRef != nil {
			return e.SecretRef.Name
		}
	}
	return ""
}

// TestManifests: the plain manifests decode strictly as Kubernetes
// objects, keep their security settings and probes, and their config.yml
// loads with the server's parser with skip_auth on the probed routes.
func TestManifests(t *testing.T) {
	objs := readManifests(t, manifestDir)
	probed := checkDeployment(t, manifestDir, objs, "kes-config", "kes-tls")
	d := objs.deployments[0]
	env := findSecret(objs, envSecretName(d))
	if env == nil {
		t.Fatalf("%s: the Deployment takes its environment from %q, which is not among the manifests", manifestDir, envSecretName(d))
	}
	f := checkConfig(t, manifestDir, objs, "kes-config", env, probed)
	if !strings.Contains(f.KeyStore.Banner(), "vault.vault.svc") {
		t.Errorf("%s: key store %q", manifestDir, f.KeyStore.Banner())
	}
	if len(objs.serviceAccounts) != 1 || objs.serviceAccounts[0].Name != d.Spec.Template.Spec.ServiceAccountName {
		t.Errorf("%s: the Deployment's service account %q is not the one of the manifests", manifestDir, d.Spec.Template.Spec.ServiceAccountName)
	}

	// The Kubernetes-auth variant replaces the config Secret and the
	// service account.
	alt := readManifests(t, filepath.Join(manifestDir, "vault-kubernetes-auth"))
	if len(alt.serviceAccounts) != 1 || alt.serviceAccounts[0].AutomountServiceAccountToken == nil || !*alt.serviceAccounts[0].AutomountServiceAccountToken {
		t.Errorf("vault-kubernetes-auth: want a service account that mounts its token")
	}
	checkConfig(t, "vault-kubernetes-auth", alt, "kes-config", env, probed)
}

// helm runs the helm binary with args and returns its standard output.
func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helmPeer.Bin(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Keep helm's own files out of the user's home.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// TestHelmLint: helm lint --strict passes on the chart.
func TestHelmLint(t *testing.T) {
	if out, err := helm(t, "lint", "--strict", chartDir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestHelmTemplate: the chart renders, with the defaults and with the
// optional parts switched on, into objects that decode strictly with the
// Kubernetes API types, keep the security settings and probes, and carry
// a config.yml that the server loads with skip_auth on the probed routes.
func TestHelmTemplate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		monits int
		sa     bool
	}{
		{name: "defaults", sa: true},
		{name: "monitor", args: []string{"--set", "serviceMonitor.enabled=true", "--set", "podAntiAffinity=hard"}, monits: 1, sa: true},
		{name: "no-serviceaccount", args: []string{"--set", "serviceAccount.create=false", "--set", "tls.secretName=my-tls"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "kes", chartDir, "--namespace", "keys"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			objs := new(objects)
			if err := decode("helm template", out, objs); err != nil {
				t.Fatal(err)
			}
			tlsSecret := "kes-tls"
			if tc.name == "no-serviceaccount" {
				tlsSecret = "my-tls"
			}
			probed := checkDeployment(t, "chart", objs, "kes-config", tlsSecret)
			checkConfig(t, "chart", objs, "kes-config", nil, probed)
			d := objs.deployments[0]
			if got := envSecretName(d); got != "kes-env" {
				t.Errorf("environment from Secret %q, want kes-env", got)
			}
			if len(objs.serviceMonitors) != tc.monits {
				t.Errorf("%d ServiceMonitors, want %d", len(objs.serviceMonitors), tc.monits)
			}
			for _, m := range objs.serviceMonitors {
				s, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
				if err != nil || !s.Matches(labels.Set(objs.services[0].Labels)) || len(m.Spec.Endpoints) != 1 || m.Spec.Endpoints[0].Path != "/v1/metrics" || m.Spec.Endpoints[0].Port != "https" {
					t.Errorf("ServiceMonitor %+v does not scrape the Service's https port at /v1/metrics", m.Spec)
				}
			}
			if got := len(objs.serviceAccounts) == 1; got != tc.sa {
				t.Errorf("service account rendered: %v, want %v", got, tc.sa)
			}
			if tc.sa && objs.serviceAccounts[0].Name != d.Spec.Template.Spec.ServiceAccountName {
				t.Errorf("the pods run as %q, not as the chart's service account %q", d.Spec.Template.Spec.ServiceAccountName, objs.serviceAccounts[0].Name)
			}
			if !tc.sa && d.Spec.Template.Spec.ServiceAccountName != "default" {
				t.Errorf("the pods run as %q, want default", d.Spec.Template.Spec.ServiceAccountName)
			}
			if tc.name == "monitor" && d.Spec.Template.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
				t.Errorf("podAntiAffinity=hard: no required anti-affinity")
			}
		})
	}

	// The chart's default config is the one the plain manifests ship,
	// key for key, so the two do not drift apart.
	out, err := helm(t, "template", "kes", chartDir)
	if err != nil {
		t.Fatal(err)
	}
	chart, plain := new(objects), readManifests(t, manifestDir)
	if err := decode("helm template", out, chart); err != nil {
		t.Fatal(err)
	}
	a, _ := secretData(findSecret(chart, "kes-config"), "config.yml")
	b, _ := secretData(findSecret(plain, "kes-config"), "config.yml")
	var ca, cb any
	if err := yaml.Unmarshal(a, &ca); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cb); err != nil {
		t.Fatal(err)
	}
	ja, _ := yaml.Marshal(ca)
	jb, _ := yaml.Marshal(cb)
	if !bytes.Equal(ja, jb) {
		t.Errorf("the chart's default config.yml differs from %s/config-secret.yaml:\nchart:\n%s\nmanifests:\n%s", manifestDir, ja, jb)
	}
}

// TestHelmTemplateRejects: a bad podAntiAffinity value fails rendering
// instead of silently dropping the anti-affinity.
func TestHelmTemplateRejects(t *testing.T) {
	if _, err := helm(t, "template", "kes", chartDir, "--set", "podAntiAffinity=sometimes"); err == nil {
		t.Fatal("helm template accepted podAntiAffinity=sometimes")
	}
}
