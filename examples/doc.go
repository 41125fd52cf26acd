// Package examples holds no code: its tests check the deployment examples beside it (Kubernetes manifests
// decoded as the API server decodes them and read as the kubelet runs them, docker-compose) and the
// repository's routes.yaml, which the quickstart uses.
package examples
