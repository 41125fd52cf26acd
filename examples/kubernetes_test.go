package examples_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	corev1 "k8s.io/api/core/v1"
)

// pod.yaml is the plain sidecar, needing no Redis; pod-fleet.yaml the same sidecar sharing its tokens with
// a fleet through the platform's Redis.
func TestKubernetesSidecarExample(t *testing.T) {
	t.Run("pod.yaml", func(t *testing.T) {
		cfg, tp := testSidecarExample(t, "kubernetes/pod.yaml")
		assert.Nil(t, cfg.Store, "the plain sidecar needs no Redis")
		assert.Equal(t, []string{"-config", "/etc/tokenproxy/config/routes.yaml", "-log-format", "json"}, tp.Args)
	})
	t.Run("pod-fleet.yaml", func(t *testing.T) {
		cfg, tp := testSidecarExample(t, "kubernetes/pod-fleet.yaml")
		require.NotNil(t, cfg.Store, "the fleet's sidecar shares its tokens through a store")
		assert.Equal(t, []string{"-config", "/etc/tokenproxy/config/routes.yaml", "-log-format", "json",
			"-secret-key-file", "/etc/tokenproxy/secrets/secret-key"}, tp.Args)
	})
}

// testSidecarExample checks a native-sidecar pod as the kubelet runs it, and returns its routes.yaml and
// tokenproxy container.
func testSidecarExample(t *testing.T, file string) (*config.Config, *corev1.Container) {
	t.Helper()
	m := readManifests(t, file)
	require.Len(t, m.configMaps, 1)
	require.Len(t, m.pods, 1)
	cfg := routesOf(t, m.configMaps[0])
	assert.True(t, config.IsLoopback(strings.Split(cfg.Listen, ":")[0]), "a sidecar's proxy stays on the pod's loopback")
	pod := m.pods[0]
	spec := &pod.Spec
	require.Len(t, spec.InitContainers, 1)
	tp := container(t, spec, "tokenproxy")
	require.NotNil(t, tp.RestartPolicy)
	assert.Equal(t, corev1.ContainerRestartPolicyAlways, *tp.RestartPolicy, "a native sidecar")
	require.NotNil(t, tp.StartupProbe, "the app starts once the sidecar is ready")
	assertTokenproxyContainer(t, "sidecar", spec, tp, cfg)
	assertRestricted(t, "sidecar pod", spec)
	assertEveryContainer(t, "sidecar pod", spec)

	app := container(t, spec, "app")
	env := envOf(app)
	for _, name := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		assert.Equal(t, "http://"+cfg.Listen, env[name], name)
	}
	assertNoProxy(t, "sidecar app", env)

	// Trust, followed through the app's mounts to the Secret key each file is: the settings that replace the
	// default roots get bundle.pem (the roots and the CA), Java truststore.p12, never ca.crt alone.
	for _, name := range []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"} {
		assert.Equal(t, "bundle.pem", secretKeyAt(spec, app, env[name]),
			"%s=%s replaces the default roots: it must be the mounted bundle.pem, not ca.crt alone", name, env[name])
	}
	store := regexp.MustCompile(`-Djavax\.net\.ssl\.trustStore=(\S+)`).FindStringSubmatch(env["JAVA_TOOL_OPTIONS"])
	require.NotNil(t, store, "JAVA_TOOL_OPTIONS names a trust store")
	assert.Equal(t, "truststore.p12", secretKeyAt(spec, app, store[1]), "Java's trustStore %s replaces its roots", store[1])
	assert.Contains(t, []string{"ca.crt", "bundle.pem"}, secretKeyAt(spec, app, env["NODE_EXTRA_CA_CERTS"]),
		"NODE_EXTRA_CA_CERTS=%s adds to Node's roots: ca.crt will do", env["NODE_EXTRA_CA_CERTS"])
	assert.Contains(t, env["JAVA_TOOL_OPTIONS"], "-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128")
	keys := map[string]bool{}
	for _, mnt := range app.VolumeMounts {
		assert.NotContains(t, []string{"ca", "secrets", "config"}, mnt.Name, "the app mounts only public certificates")
		for _, v := range spec.Volumes {
			if v.Name != mnt.Name || v.Secret == nil {
				continue
			}
			assert.NotEmpty(t, v.Secret.Items, "the app's Secret volume %s lists its items: all of %s holds ca.key", v.Name, v.Secret.SecretName)
			for _, item := range v.Secret.Items {
				keys[item.Key] = true
			}
		}
	}
	assert.True(t, keys["bundle.pem"] && keys["truststore.p12"], "the app mounts bundle.pem and truststore.p12: %v", keys)
	assert.False(t, keys["ca.key"], "ca.key never reaches the app")
	return cfg, tp
}

func TestKubernetesGatewayExample(t *testing.T) {
	m := readManifests(t, "kubernetes/gateway.yaml")
	require.Len(t, m.configMaps, 1)
	require.Len(t, m.deployments, 1)
	require.Len(t, m.services, 1)
	cfg := routesOf(t, m.configMaps[0])
	assert.True(t, cfg.RejectUnmatched, "a gateway forwards route hosts only")
	assert.NotEmpty(t, cfg.Clients, "a gateway names its clients")
	assert.False(t, config.IsLoopback(strings.Split(cfg.Listen, ":")[0]))

	d := m.deployments[0]
	spec := &d.Spec.Template.Spec
	assertRestricted(t, "gateway", spec)
	assertEveryContainer(t, "gateway", spec)
	tp := container(t, spec, "tokenproxy")
	assertTokenproxyContainer(t, "gateway", spec, tp, cfg)
	assert.Equal(t, d.Spec.Selector.MatchLabels["app"], d.Spec.Template.Labels["app"])
	require.NotNil(t, spec.TerminationGracePeriodSeconds)
	assert.Greater(t, *spec.TerminationGracePeriodSeconds, int64(30), "longer than the 30 s drain")

	svc := m.services[0]
	assert.Equal(t, d.Spec.Template.Labels["app"], svc.Spec.Selector["app"])
	require.Len(t, svc.Spec.Ports, 1)
	found := false
	for _, p := range tp.Ports {
		if p.Name == svc.Spec.Ports[0].TargetPort.StrVal {
			found = true
			_, port, _ := net.SplitHostPort(cfg.Listen)
			assert.Equal(t, port, fmt.Sprint(p.ContainerPort), "the Service reaches the proxy port")
		}
	}
	assert.True(t, found, "the Service's targetPort names a container port")

	// What the header tells a client namespace: its own NO_PROXY, and the gateway's public trust files only.
	raw, err := os.ReadFile("kubernetes/gateway.yaml")
	require.NoError(t, err)
	text := string(raw)
	np := regexp.MustCompile(`(?m)^#\s+NO_PROXY=(\S+)`).FindStringSubmatch(text)
	require.NotNil(t, np, "gateway.yaml gives its apps a NO_PROXY")
	entries := strings.Split(np[1], ",")
	for _, must := range []string{"localhost", "127.0.0.1", ".svc", ".cluster.local"} {
		assert.Contains(t, entries, must, "the gateway's apps keep %s off it", must)
	}
	assert.True(t, slices.ContainsFunc(entries, func(e string) bool { _, _, err := net.ParseCIDR(e); return err == nil }),
		"pod and Service CIDRs in the gateway's NO_PROXY: %s", np[1])
	assert.Regexp(t, `(?s)unmatched: reject.*403`, text, "the header says what unmatched: reject does to a host left out of NO_PROXY")
	out := regexp.MustCompile(`tokenproxy ca -out (\S+)`).FindStringSubmatch(text)
	require.NotNil(t, out)
	pod, err := os.ReadFile("kubernetes/pod.yaml")
	require.NoError(t, err)
	assert.NotContains(t, string(pod), "tokenproxy ca -out "+out[1]+" ", "the gateway's CA has a directory of its own: tokenproxy ca never overwrites ca.key")
	public := regexp.MustCompile(`create secret generic tokenproxy-gateway-ca((?:[^\n]*\\\n)*[^\n]*)`).FindStringSubmatch(text)
	require.NotNil(t, public, "client namespaces get the gateway's trust files")
	assert.Contains(t, public[1], "bundle.pem")
	assert.Contains(t, public[1], "truststore.p12")
	assert.NotContains(t, public[1], "ca.key")
	assert.NotRegexp(t, `--from-file=\S+/(\s|$)`, public[1], "a whole CA directory holds ca.key")
}

// A CA Secret holds bundle.pem and truststore.p12, about 530 KB in base64: more than the 256 KiB of annotations a
// client-side kubectl apply needs for its last-applied copy. Recipes that pipe into kubectl apply go server-side.
func TestKubernetesRecipesApplyServerSide(t *testing.T) {
	files, err := filepath.Glob("kubernetes/*.yaml")
	require.NoError(t, err)
	for _, file := range append(files, "../README.md") {
		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		text := regexp.MustCompile(`\\\n#?\s*`).ReplaceAllString(string(raw), " ") // join continued lines
		for _, m := range regexp.MustCompile(`\|\s*kubectl apply[^|\n]*`).FindAllString(text, -1) {
			assert.Contains(t, m, "--server-side", "%s: %s", file, m)
		}
	}
}

func TestKubernetesPodMonitorExample(t *testing.T) {
	m := readManifests(t, "kubernetes/podmonitor.yaml", "kubernetes/pod.yaml", "kubernetes/gateway.yaml",
		"kubernetes/pod-fleet.yaml")
	require.Len(t, m.podMonitors, 1)
	pm := m.podMonitors[0]
	assert.Equal(t, "monitoring.coreos.com/v1", pm.APIVersion)
	require.Len(t, pm.Spec.PodMetricsEndpoints, 1)
	assert.Equal(t, "/metrics", pm.Spec.PodMetricsEndpoints[0].Path)
	selects := func(labels map[string]string) bool {
		for k, v := range pm.Spec.Selector.MatchLabels {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	specs := map[string]*corev1.PodSpec{"sidecar": &m.pods[0].Spec, "fleet sidecar": &m.pods[1].Spec, "gateway": &m.deployments[0].Spec.Template.Spec}
	labels := map[string]map[string]string{"sidecar": m.pods[0].Labels, "fleet sidecar": m.pods[1].Labels, "gateway": m.deployments[0].Spec.Template.Labels}
	for name, spec := range specs {
		assert.True(t, selects(labels[name]), "the PodMonitor selects the %s", name)
		hasPort := false
		for _, p := range container(t, spec, "tokenproxy").Ports {
			hasPort = hasPort || p.Name == pm.Spec.PodMetricsEndpoints[0].Port
		}
		assert.True(t, hasPort, "the %s's tokenproxy container has the port the PodMonitor scrapes", name)
	}
}
