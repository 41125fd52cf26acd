package examples_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/internal/app"
	"github.com/tokenproxy/tokenproxy/mitm"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

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
	raw, err := os.ReadFile("kubernetes/pod.yaml")
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
	cfg, err := config.Parse(filepath.Join(dir, "routes.yaml"), []byte(text), app.LoadOptions(make([]byte, 32)))
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
