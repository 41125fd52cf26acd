package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/mitm"
	"github.com/tokenproxy/tokenproxy/proxy"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// The routes.yaml at the root starts as it is.
func TestRepositoryRoutesYAMLLoads(t *testing.T) {
	cfg, err := config.Load("routes.yaml", config.LoadOptions{})
	require.NoError(t, err)
	_, err = proxy.New(cfg, proxy.Options{})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:3128", cfg.Listen)
}

// manifests holds the documents of Kubernetes files, each decoded strictly into its API type as the API
// server decodes a request under kubectl's default --validate=strict: through JSON, field names matched
// case-sensitively, an unknown, misplaced or duplicate field an error (see decodeStrict).
type manifests struct {
	configMaps  []*corev1.ConfigMap
	secrets     []*corev1.Secret
	pods        []*corev1.Pod
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	podMonitors []*podMonitor
}

// podMonitor is the part of monitoring.coreos.com/v1 PodMonitor the example uses.
type podMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		NamespaceSelector struct {
			Any bool `json:"any"`
		} `json:"namespaceSelector"`
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

func readManifests(t *testing.T, files ...string) *manifests {
	t.Helper()
	m := &manifests{}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		require.NoError(t, m.add(raw), file)
	}
	return m
}

// add decodes each document of a multi-document file into m.
func (m *manifests) add(raw []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		one, err := yaml.Marshal(&doc)
		if err != nil {
			return err
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if err := sigsyaml.Unmarshal(one, &head); err != nil {
			return err
		}
		var into any
		switch head.Kind {
		case "ConfigMap":
			v := &corev1.ConfigMap{}
			m.configMaps, into = append(m.configMaps, v), v
		case "Secret":
			v := &corev1.Secret{}
			m.secrets, into = append(m.secrets, v), v
		case "Pod":
			v := &corev1.Pod{}
			m.pods, into = append(m.pods, v), v
		case "Deployment":
			v := &appsv1.Deployment{}
			m.deployments, into = append(m.deployments, v), v
		case "Service":
			v := &corev1.Service{}
			m.services, into = append(m.services, v), v
		case "PodMonitor":
			v := &podMonitor{}
			m.podMonitors, into = append(m.podMonitors, v), v
		default:
			return fmt.Errorf("unexpected kind %q", head.Kind)
		}
		if err := decodeStrict(one, into); err != nil {
			return fmt.Errorf("%s: %w", head.Kind, err)
		}
	}
}

// decodeStrict decodes one YAML document the way the API server decodes a request with
// fieldValidation=Strict: YAML to JSON, then sigs.k8s.io/json, whose field names are case-sensitive
// (encoding/json's, and so sigs.k8s.io/yaml.UnmarshalStrict's, are not: restartpolicy would pass).
func decodeStrict(doc []byte, into any) error {
	j, err := sigsyaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, into)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// The decoding above refuses what the API server refuses: a field name in the wrong case, an unknown field,
// a field in the wrong place.
func TestKubernetesManifestDecodingIsStrict(t *testing.T) {
	raw, err := os.ReadFile("examples/kubernetes/pod.yaml")
	require.NoError(t, err)
	require.NoError(t, (&manifests{}).add(raw))
	for _, c := range []struct{ from, to string }{
		{"\n      restartPolicy: Always", "\n      restartpolicy: Always"},
		{"\n        readOnlyRootFilesystem: true", "\n        readonlyRootFilesystem: true"},
		{"\n    fsGroup: 65532", "\n    fsgroup: 65532"},
		{"\n    fsGroup: 65532", "\n    fsGroup: 65532\n    tty: true"}, // a container field in the pod's securityContext
	} {
		require.Contains(t, string(raw), c.from)
		broken := strings.Replace(string(raw), c.from, c.to, 1)
		assert.Error(t, (&manifests{}).add([]byte(broken)), "%s accepted", c.to)
	}
}

// routesOf loads a ConfigMap's routes.yaml with the files it names made up, as they would be mounted.
func routesOf(t *testing.T, cm *corev1.ConfigMap) *config.Config {
	t.Helper()
	dir := t.TempDir()
	_, _, err := mitm.WriteCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	text := cm.Data["routes.yaml"]
	for _, ref := range regexp.MustCompile(`(?m)(?:File|caCert|caKey): (/\S+)`).FindAllStringSubmatch(text, -1) {
		local := filepath.Join(dir, "mounted", ref[1])
		require.NoError(t, os.MkdirAll(filepath.Dir(local), 0o755))
		switch filepath.Base(ref[1]) {
		case "ca.crt", "ca.key":
			b, err := os.ReadFile(filepath.Join(dir, "ca", filepath.Base(ref[1])))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(local, b, 0o600))
		default:
			require.NoError(t, os.WriteFile(local, []byte("made-up\n"), 0o600))
		}
		text = strings.ReplaceAll(text, ref[1], local)
	}
	// The manifests hand tokenproxy its secret key in a file (see assertTokenproxyContainer); here, a made-up one.
	cfg, err := config.Parse(filepath.Join(dir, "routes.yaml"), []byte(text), config.LoadOptions{SecretKey: make([]byte, 32)})
	require.NoError(t, err, "%s's routes.yaml", cm.Name)
	return cfg
}

func container(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func envOf(c *corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// assertRestricted checks Pod Security "restricted" for every container of spec.
func assertRestricted(t *testing.T, what string, spec *corev1.PodSpec) {
	t.Helper()
	pod := spec.SecurityContext
	require.NotNil(t, pod, what)
	assert.False(t, spec.HostNetwork || spec.HostPID || spec.HostIPC, "%s: no host namespaces", what)
	assert.Empty(t, pod.Sysctls, "%s: no sysctls", what)
	for _, v := range spec.Volumes {
		allowed := v.ConfigMap != nil || v.Secret != nil || v.EmptyDir != nil || v.Projected != nil || v.DownwardAPI != nil ||
			v.PersistentVolumeClaim != nil || v.CSI != nil || v.Ephemeral != nil
		assert.True(t, allowed, "%s: volume %s is of a type restricted forbids", what, v.Name)
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		sc := c.SecurityContext
		require.NotNil(t, sc, "%s/%s", what, c.Name)
		nonRoot := sc.RunAsNonRoot != nil && *sc.RunAsNonRoot || sc.RunAsNonRoot == nil && pod.RunAsNonRoot != nil && *pod.RunAsNonRoot
		assert.True(t, nonRoot, "%s/%s: runAsNonRoot", what, c.Name)
		for _, uid := range []*int64{sc.RunAsUser, pod.RunAsUser} {
			if uid != nil {
				assert.NotZero(t, *uid, "%s/%s: runAsUser 0", what, c.Name)
			}
		}
		assert.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "%s/%s: allowPrivilegeEscalation: false", what, c.Name)
		require.NotNil(t, sc.Capabilities, "%s/%s: capabilities", what, c.Name)
		assert.Contains(t, sc.Capabilities.Drop, corev1.Capability("ALL"), "%s/%s: capabilities.drop: [ALL]", what, c.Name)
		assert.Empty(t, sc.Capabilities.Add, "%s/%s", what, c.Name)
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = pod.SeccompProfile
		}
		require.NotNil(t, seccomp, "%s/%s: seccompProfile", what, c.Name)
		assert.Contains(t, []corev1.SeccompProfileType{corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeLocalhost}, seccomp.Type)
		assert.False(t, sc.Privileged != nil && *sc.Privileged, "%s/%s", what, c.Name)
		for _, p := range c.Ports {
			assert.Zero(t, p.HostPort, "%s/%s: no host ports", what, c.Name)
		}
	}
}

// assertTokenproxyContainer checks what the kubelet does to the tokenproxy container: probes dialled from
// the node reach the admin port on the pod IP, mounted secrets are readable by its user, ConfigMaps and
// Secrets are never mounted with subPath (assertEveryContainer), memory is bounded, the image pinned.
func assertTokenproxyContainer(t *testing.T, what string, spec *corev1.PodSpec, c *corev1.Container, cfg *config.Config) {
	t.Helper()
	adminPort := int32(0)
	for _, p := range c.Ports {
		if p.Name == "admin" {
			adminPort = p.ContainerPort
		}
	}
	require.NotZero(t, adminPort, "%s: a container port named admin", what)
	host, port, err := net.SplitHostPort(cfg.Admin)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprint(adminPort), port, "%s: the admin port is the one routes.yaml listens on", what)
	ip := net.ParseIP(host)
	assert.True(t, host == "" || ip != nil && ip.IsUnspecified(), "%s: admin listens on the pod IP, where the kubelet dials from: %s", what, cfg.Admin)
	var probes int
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil {
			continue
		}
		probes++
		switch {
		case p.HTTPGet != nil:
			assert.Empty(t, p.HTTPGet.Host, "%s %s probe: a host would be dialled from the node", what, name)
			assert.True(t, p.HTTPGet.Port.StrVal == "admin" || p.HTTPGet.Port.IntVal == adminPort, "%s %s probe port", what, name)
			assert.Contains(t, []string{"/readyz", "/healthz"}, p.HTTPGet.Path)
		case p.Exec != nil:
			assert.Equal(t, []string{"/tokenproxy", "health"}, p.Exec.Command[:2], "%s %s probe", what, name)
		default:
			t.Errorf("%s %s probe: httpGet on the admin port or exec tokenproxy health, not %+v", what, name, p.ProbeHandler)
		}
	}
	assert.GreaterOrEqual(t, probes, 2, "%s: readiness and liveness at least", what)

	if cfg.Store != nil {
		// A store needs the secret key: from a file in a mounted Secret, the same in every replica.
		i := slices.Index(c.Args, "-secret-key-file")
		require.True(t, i >= 0 && i+1 < len(c.Args), "%s: a store needs -secret-key-file", what)
		keyFile := c.Args[i+1]
		mounted := false
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(keyFile, m.MountPath+"/") {
				for _, v := range spec.Volumes {
					mounted = mounted || (v.Name == m.Name && v.Secret != nil)
				}
			}
		}
		assert.True(t, mounted, "%s: the secret key file %s is in a mounted Secret", what, keyFile)
	}

	sc, pod := c.SecurityContext, spec.SecurityContext
	uid := int64(65532) // the image's user
	if sc.RunAsUser != nil {
		uid = *sc.RunAsUser
	} else if pod.RunAsUser != nil {
		uid = *pod.RunAsUser
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v := volumes[m.Name]
		if v.Secret == nil {
			continue
		}
		// The kubelet writes secret files owned by root; with fsGroup it gives them that group, a supplemental
		// group of every container, and adds 0440 to their mode. Without it only "others" bits help uid 65532.
		mode := int32(0o644)
		if v.Secret.DefaultMode != nil {
			mode = *v.Secret.DefaultMode
		}
		readable := mode&0o004 != 0
		if pod.FSGroup != nil {
			mode |= 0o440
			readable = readable || mode&0o040 != 0
		}
		assert.True(t, readable, "%s: uid %d cannot read the files of %s (mode %o, fsGroup %v)", what, uid, m.Name, mode, pod.FSGroup)
	}

	limit := c.Resources.Limits[corev1.ResourceMemory]
	require.False(t, limit.IsZero(), "%s: a memory limit", what)
	gomemlimit := envOf(c)["GOMEMLIMIT"]
	require.NotEmpty(t, gomemlimit, "%s: GOMEMLIMIT beside the memory limit", what)
	require.Regexp(t, `^\d+(B|KiB|MiB|GiB|TiB)?$`, gomemlimit, "%s: GOMEMLIMIT in a unit Go reads", what)
	soft, err := resource.ParseQuantity(strings.TrimSuffix(gomemlimit, "B")) // Go's 100MiB is Kubernetes' 100Mi
	require.NoError(t, err, gomemlimit)
	// Below the limit, so the GC works harder before the OOM killer acts; not so far below that it works hard
	// all the time.
	ratio := float64(soft.Value()) / float64(limit.Value())
	assert.True(t, ratio >= 0.70 && ratio <= 0.95, "%s: GOMEMLIMIT %s is %.0f%% of the memory limit %s, not 70-95%%",
		what, gomemlimit, 100*ratio, limit.String())

	image := c.Image
	tag := image[strings.LastIndex(image, ":")+1:]
	assert.Regexp(t, `^v\d+\.\d+\.\d+$`, tag, "%s: the image is pinned to a version tag", what)
}

// assertEveryContainer checks what §7 asks of every container, the app's and init containers included: a
// read-only root filesystem, and no subPath mount, which never sees an update of what it mounts.
func assertEveryContainer(t *testing.T, what string, spec *corev1.PodSpec) {
	t.Helper()
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		sc := c.SecurityContext
		assert.True(t, sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
			"%s/%s: readOnlyRootFilesystem: true", what, c.Name)
		for _, m := range c.VolumeMounts {
			assert.True(t, m.SubPath == "" && m.SubPathExpr == "", "%s/%s: %s is mounted with subPath, which never sees an update",
				what, c.Name, m.Name)
		}
	}
}

// assertNoProxy checks that NO_PROXY and no_proxy are the same list and keep at least loopback off the proxy.
func assertNoProxy(t *testing.T, what string, env map[string]string) {
	t.Helper()
	assert.Equal(t, env["NO_PROXY"], env["no_proxy"], "%s: NO_PROXY and no_proxy (curl and wget read only the lower case)", what)
	for _, name := range []string{"NO_PROXY", "no_proxy"} {
		entries := strings.Split(strings.ReplaceAll(env[name], " ", ""), ",")
		for _, must := range []string{"localhost", "127.0.0.1"} {
			assert.Contains(t, entries, must, "%s: %s keeps %s off the proxy", what, name, must)
		}
	}
}

// secretKeyAt tells which key of a Secret the file at path in container c is, through c's mounts and the
// volumes' items; "" when no Secret volume holds it.
func secretKeyAt(spec *corev1.PodSpec, c *corev1.Container, path string) string {
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		dir := strings.TrimSuffix(m.MountPath, "/") + "/"
		if strings.HasPrefix(path, dir) && (mount == nil || len(m.MountPath) > len(mount.MountPath)) {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		return ""
	}
	rel := strings.TrimPrefix(path, strings.TrimSuffix(mount.MountPath, "/")+"/")
	for _, v := range spec.Volumes {
		if v.Name != mount.Name || v.Secret == nil {
			continue
		}
		if len(v.Secret.Items) == 0 {
			return rel
		}
		for _, item := range v.Secret.Items {
			if item.Path == rel {
				return item.Key
			}
		}
	}
	return ""
}

// pod.yaml is the plain sidecar, needing no Redis; pod-fleet.yaml the same sidecar sharing its tokens with
// a fleet through the platform's Redis.
func TestKubernetesSidecarExample(t *testing.T) {
	t.Run("pod.yaml", func(t *testing.T) {
		cfg, tp := testSidecarExample(t, "examples/kubernetes/pod.yaml")
		assert.Nil(t, cfg.Store, "the plain sidecar needs no Redis")
		assert.Equal(t, []string{"-config", "/etc/tokenproxy/config/routes.yaml", "-log-format", "json"}, tp.Args)
	})
	t.Run("pod-fleet.yaml", func(t *testing.T) {
		cfg, tp := testSidecarExample(t, "examples/kubernetes/pod-fleet.yaml")
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
	m := readManifests(t, "examples/kubernetes/gateway.yaml")
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
	raw, err := os.ReadFile("examples/kubernetes/gateway.yaml")
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
	pod, err := os.ReadFile("examples/kubernetes/pod.yaml")
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
	files, err := filepath.Glob("examples/kubernetes/*.yaml")
	require.NoError(t, err)
	for _, file := range append(files, "README.md") {
		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		text := regexp.MustCompile(`\\\n#?\s*`).ReplaceAllString(string(raw), " ") // join continued lines
		for _, m := range regexp.MustCompile(`\|\s*kubectl apply[^|\n]*`).FindAllString(text, -1) {
			assert.Contains(t, m, "--server-side", "%s: %s", file, m)
		}
	}
}

func TestKubernetesPodMonitorExample(t *testing.T) {
	m := readManifests(t, "examples/kubernetes/podmonitor.yaml", "examples/kubernetes/pod.yaml", "examples/kubernetes/gateway.yaml",
		"examples/kubernetes/pod-fleet.yaml")
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

func TestComposeExample(t *testing.T) {
	raw, err := os.ReadFile("examples/docker-compose/docker-compose.yaml")
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Image       string
			Command     []string
			Volumes     []string
			ReadOnly    bool `yaml:"read_only"`
			Tmpfs       []string
			Healthcheck struct {
				Test []string
			}
			DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
			Environment map[string]string
			NetworkMode string `yaml:"network_mode"`
		}
	}
	require.NoError(t, yaml.Unmarshal(raw, &compose))
	tp, app := compose.Services["tokenproxy"], compose.Services["app"]
	assert.Equal(t, []string{"CMD", "/tokenproxy", "health", "-config", "/etc/tokenproxy/routes.yaml"}, tp.Healthcheck.Test,
		"distroless has no shell: the healthcheck is the binary")
	assert.Equal(t, "service_healthy", app.DependsOn["tokenproxy"].Condition)
	assert.True(t, tp.ReadOnly)
	assert.Contains(t, tp.Tmpfs, "/tmp", "health finds the admin address the process serves under $TMPDIR")
	assert.True(t, app.ReadOnly, "the app's root filesystem is read-only too")
	assert.Equal(t, []string{"./config:/etc/tokenproxy:ro"}, tp.Volumes, "a directory, so reloads see edits")
	for _, name := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		assert.Equal(t, "http://127.0.0.1:3128", app.Environment[name], name)
	}
	assertNoProxy(t, "compose app", app.Environment)
	mounted := map[string]string{} // in the container: on the host
	for _, v := range app.Volumes {
		assert.NotContains(t, v, "ca.key")
		parts := strings.Split(v, ":")
		require.GreaterOrEqual(t, len(parts), 2, v)
		mounted[parts[1]] = parts[0]
	}
	for _, name := range []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"} {
		assert.Equal(t, "bundle.pem", filepath.Base(mounted[app.Environment[name]]),
			"%s=%s replaces the default roots: it must be the mounted bundle.pem, not ca.crt alone", name, app.Environment[name])
	}
	assert.Regexp(t, `:v\d+\.\d+\.\d+$`, tp.Image)

	// The routes it mounts load once the files of its header comment exist.
	dir := t.TempDir()
	_, _, err = mitm.WriteCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "supplier.secret"), []byte("s"), 0o400))
	routes, err := os.ReadFile("examples/docker-compose/config/routes.yaml")
	require.NoError(t, err)
	cfg, err := config.Parse(filepath.Join(dir, "routes.yaml"), routes, config.LoadOptions{})
	require.NoError(t, err)
	assert.NotEmpty(t, cfg.Admin, "the healthcheck needs the admin endpoints")
	assert.True(t, config.IsLoopback(strings.Split(cfg.Admin, ":")[0]), "health dials inside the container")
}

// Generated CAs and secrets stay out of the image and out of git.
func TestGeneratedFilesStayOutOfImagesAndGit(t *testing.T) {
	raw, err := os.ReadFile(".dockerignore")
	require.NoError(t, err)
	var patterns []*regexp.Regexp
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, dockerignorePattern(line))
		}
	}
	ignored := func(path string) bool {
		for _, p := range patterns {
			if p.MatchString(path) {
				return true
			}
		}
		return false
	}
	generated := []string{"ca/ca.key", "examples/docker-compose/config/ca/ca.key", "examples/docker-compose/config/ca/truststore.p12",
		"examples/docker-compose/config/supplier.secret", "some/dir/client.key",
		// gateway.yaml's CA (tokenproxy ca -out ca/gateway), from the root or from examples/kubernetes
		"ca/gateway/ca.key", "ca/gateway/bundle.pem", "examples/kubernetes/ca/gateway/ca.key", "examples/kubernetes/ca/gateway/truststore.p12"}
	for _, p := range generated {
		assert.True(t, ignored(p), ".dockerignore keeps %s out of the image", p)
	}
	for _, p := range []string{"go.mod", "main.go", "secrets/secrets.go", "mitm/mitm.go", "examples/docker-compose/config/routes.yaml"} {
		assert.False(t, ignored(p), ".dockerignore must not drop %s", p)
	}
	git, err := exec.LookPath("git")
	require.NoError(t, err)
	for _, p := range generated {
		assert.NoError(t, exec.Command(git, "check-ignore", "-q", p).Run(), ".gitignore keeps %s out of the repository", p)
	}
}

// dockerignorePattern turns a .dockerignore line into a regexp over context-relative paths: ** crosses
// directories, * and ? do not, and a matched directory takes its contents along.
func dockerignorePattern(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case p[i] == '*':
			b.WriteString("[^/]*")
		case p[i] == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(p[i])))
		}
	}
	b.WriteString("(/.*)?$")
	return regexp.MustCompile(b.String())
}

// Docker cannot run here; this checks what the Dockerfile promises: multi-stage, a static binary with its
// version, a distroless base, a non-root user.
func TestDockerfileShape(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	var froms []string
	var user string
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "FROM":
			froms = append(froms, fields[1])
		case "USER":
			user = fields[1]
		}
	}
	require.Len(t, froms, 2, "multi-stage")
	assert.True(t, strings.HasPrefix(froms[0], "golang:"))
	assert.Contains(t, froms[1], "distroless/static")
	assert.Contains(t, string(raw), "CGO_ENABLED=0 go build")
	assert.Contains(t, string(raw), "-X github.com/tokenproxy/tokenproxy/internal/buildinfo.version=${VERSION}")
	assert.Contains(t, string(raw), "-X github.com/tokenproxy/tokenproxy/internal/buildinfo.revision=${REVISION}", ".git stays out of the context")
	require.NotEmpty(t, user)
	assert.NotContains(t, []string{"root", "0", "0:0"}, user)
	assert.Contains(t, string(raw), `ENTRYPOINT ["/tokenproxy"]`)
}
