package examples_test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

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
