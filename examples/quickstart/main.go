// Command quickstart runs, on this machine, the two servers a first try of tokenproxy needs: a token
// endpoint (OAuth 2.0 client credentials, RFC 6749 §4.4) and a supplier API that accepts only the tokens
// that endpoint issued and echoes what it received. The repository's routes.yaml points at both.
//
//	go run ./examples/quickstart
//	go run . -config routes.yaml
//	curl -x http://127.0.0.1:3128 http://localhost:9002/hello
package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The quickstart's client: routes.yaml names the same. A real route keeps its secret in the environment
// or a file, never in routes.yaml.
const (
	clientID     = "quickstart"
	clientSecret = "quickstart-secret"
	tokenTTL     = time.Hour
)

func main() {
	tokenAddr := flag.String("token-listen", "127.0.0.1:9001", "where the token endpoint listens (POST /oauth/token)")
	supplierAddr := flag.String("supplier-listen", "127.0.0.1:9002", "where the supplier API listens")
	flag.Parse()
	issued := &tokens{byValue: map[string]time.Time{}}

	tokenLn, err := net.Listen("tcp", *tokenAddr)
	if err != nil {
		log.Fatalf("quickstart: token endpoint: %v (another quickstart running? -token-listen picks another address)", err)
	}
	supplierLn, err := net.Listen("tcp", *supplierAddr)
	if err != nil {
		log.Fatalf("quickstart: supplier: %v (-supplier-listen picks another address)", err)
	}
	go serve(tokenLn, http.HandlerFunc(issued.tokenEndpoint))
	go serve(supplierLn, http.HandlerFunc(issued.supplier))
	fmt.Printf("token endpoint  http://%s/oauth/token  (client %q)\n", tokenLn.Addr(), clientID)
	fmt.Printf("supplier API    http://%s/  (answers 401 without a token from that endpoint)\n", supplierLn.Addr())
	fmt.Println("now run:  go run . -config routes.yaml")
	fmt.Println("then:     curl -x http://127.0.0.1:3128 http://localhost:9002/hello")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
}

func serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		log.Fatalf("quickstart: %v", err)
	}
}

// tokens remembers what the token endpoint issued, so the supplier can tell a real token from any other.
type tokens struct {
	mu      sync.Mutex
	byValue map[string]time.Time // token → when it was issued
	count   int
}

// tokenEndpoint issues a token for the quickstart client's credentials, sent as HTTP Basic or in the body.
func (t *tokens) tokenEndpoint(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || r.URL.Path != "/oauth/token" {
		w.WriteHeader(http.StatusNotFound)
		_, _ = fmt.Fprintln(w, `{"error":"invalid_request","error_description":"POST /oauth/token"}`)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintln(w, `{"error":"unsupported_grant_type"}`)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != clientID || subtle.ConstantTimeCompare([]byte(secret), []byte(clientSecret)) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprintln(w, `{"error":"invalid_client","error_description":"unknown client or wrong secret"}`)
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := "qs-" + hex.EncodeToString(b)
	t.mu.Lock()
	t.byValue[token] = time.Now()
	t.count++
	n := t.count
	t.mu.Unlock()
	log.Printf("token endpoint: issued token #%d to %s", n, id)
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": int(tokenTTL.Seconds())})
}

// supplier answers a request carrying a token the endpoint issued with what it received; any other, 401.
func (t *tokens) supplier(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	t.mu.Lock()
	issuedAt, ok := t.byValue[token]
	t.mu.Unlock()
	if !ok || time.Since(issuedAt) > tokenTTL {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "supplier: 401, no valid token in Authorization (send the request through tokenproxy)", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "supplier: %s %s accepted: its token came from the token endpoint %s ago\n", r.Method, r.URL.RequestURI(),
		time.Since(issuedAt).Round(time.Second))
	fmt.Fprintln(w, "headers received:")
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "  %s: %s\n", k, strings.Join(r.Header[k], ", "))
	}
}
