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

// manifests reads a multi-document Kubernetes file and decodes each document strictly into its API type,
// as the API server would: an unknown or misplaced field is an error.
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
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var doc yaml.Node
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else {
				require.NoError(t, err, file)
			}
			one, err := yaml.Marshal(&doc)
			require.NoError(t, err)
			var head struct{ Kind string }
			require.NoError(t, sigsyaml.Unmarshal(one, &head))
			strict := func(into any) {
				require.NoError(t, sigsyaml.UnmarshalStrict(one, into), "%s: %s", file, head.Kind)
			}
			switch head.Kind {
			case "ConfigMap":
				var v corev1.ConfigMap
				strict(&v)
				m.configMaps = append(m.configMaps, &v)
			case "Secret":
				var v corev1.Secret
				strict(&v)
				m.secrets = append(m.secrets, &v)
			case "Pod":
				var v corev1.Pod
				strict(&v)
				m.pods = append(m.pods, &v)
			case "Deployment":
				var v appsv1.Deployment
				strict(&v)
				m.deployments = append(m.deployments, &v)
			case "Service":
				var v corev1.Service
				strict(&v)
				m.services = append(m.services, &v)
			case "PodMonitor":
				var v podMonitor
				strict(&v)
				m.podMonitors = append(m.podMonitors, &v)
			default:
				t.Fatalf("%s: unexpected kind %q", file, head.Kind)
			}
		}
	}
	return m
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
// Secrets are never mounted with subPath (which never sees updates), memory is bounded, the image pinned.
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
	assert.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "%s: readOnlyRootFilesystem", what)
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
		if v.ConfigMap != nil || v.Secret != nil {
			assert.Empty(t, m.SubPath, "%s: %s is mounted with subPath, which never sees an update", what, m.Name)
		}
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
	soft, err := resource.ParseQuantity(strings.TrimSuffix(gomemlimit, "B")) // Go's 100MiB is Kubernetes' 100Mi
	require.NoError(t, err, gomemlimit)
	assert.Equal(t, -1, soft.Cmp(limit), "%s: GOMEMLIMIT %s below the limit %s", what, gomemlimit, limit.String())

	image := c.Image
	tag := image[strings.LastIndex(image, ":")+1:]
	assert.Regexp(t, `^v\d+\.\d+\.\d+$`, tag, "%s: the image is pinned to a version tag", what)
}

func TestKubernetesSidecarExample(t *testing.T) {
	m := readManifests(t, "examples/kubernetes/pod.yaml")
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
	assert.Equal(t, []string{"-config", "/etc/tokenproxy/config/routes.yaml", "-log-format", "json", "-secret-key-file", "/etc/tokenproxy/secrets/secret-key"}, tp.Args)

	app := container(t, spec, "app")
	env := envOf(app)
	for _, name := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		assert.Equal(t, "http://"+cfg.Listen, env[name], name)
	}
	assert.NotEmpty(t, env["NO_PROXY"])
	assert.Equal(t, env["NO_PROXY"], env["no_proxy"])
	for _, name := range []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"} {
		assert.True(t, strings.HasSuffix(env[name], "/bundle.pem"), "%s replaces the default roots: it must be bundle.pem, not ca.crt alone", name)
	}
	assert.True(t, strings.HasSuffix(env["NODE_EXTRA_CA_CERTS"], "/ca.crt"), "NODE_EXTRA_CA_CERTS adds to Node's roots")
	assert.Contains(t, env["JAVA_TOOL_OPTIONS"], "-Djavax.net.ssl.trustStore=/etc/tokenproxy-ca/truststore.p12")
	assert.Contains(t, env["JAVA_TOOL_OPTIONS"], "-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=3128")
	for _, mnt := range app.VolumeMounts {
		assert.NotContains(t, []string{"ca", "secrets", "config"}, mnt.Name, "the app mounts only public certificates")
	}
	for _, v := range spec.Volumes {
		if v.Name == "ca-public" {
			for _, item := range v.Secret.Items {
				assert.NotEqual(t, "ca.key", item.Key, "ca.key never reaches the app")
			}
		}
	}
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
}

func TestKubernetesPodMonitorExample(t *testing.T) {
	m := readManifests(t, "examples/kubernetes/podmonitor.yaml", "examples/kubernetes/pod.yaml", "examples/kubernetes/gateway.yaml")
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
	specs := map[string]*corev1.PodSpec{"sidecar": &m.pods[0].Spec, "gateway": &m.deployments[0].Spec.Template.Spec}
	labels := map[string]map[string]string{"sidecar": m.pods[0].Labels, "gateway": m.deployments[0].Spec.Template.Labels}
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
	assert.Equal(t, []string{"./config:/etc/tokenproxy:ro"}, tp.Volumes, "a directory, so reloads see edits")
	for _, name := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"} {
		assert.NotEmpty(t, app.Environment[name], name)
	}
	assert.True(t, strings.HasSuffix(app.Environment["SSL_CERT_FILE"], "bundle.pem"))
	for _, v := range app.Volumes {
		assert.NotContains(t, v, "ca.key")
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
		"examples/docker-compose/config/supplier.secret", "some/dir/client.key"}
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
