package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/tokenproxy/tokenproxy/mitm"
)

// runCA writes a new interception CA and the trust files apps use: bundle.pem and truststore.p12 hold the
// machine's trusted roots and the CA, so an app that trusts them still trusts every other host.
func runCA(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tokenproxy ca", "tokenproxy ca -out DIR [-roots FILE]", stderr)
	out := fs.String("out", "", "directory to write ca.crt, ca.key, bundle.pem and truststore.p12 into")
	rootsFile := fs.String("roots", "", "PEM bundle of the roots apps trust already; without it, $SSL_CERT_FILE or this system's bundle")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if *out == "" {
		fmt.Fprintln(stderr, "tokenproxy ca: -out DIR is required")
		return 2
	}
	rootsPEM, from, err := mitm.SystemRoots()
	if *rootsFile != "" {
		from = *rootsFile
		rootsPEM, err = os.ReadFile(*rootsFile)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy ca: %v\n", err)
		return 1
	}
	certFile, keyFile, err := mitm.WriteCA(*out)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy ca: %v\n", err)
		return 1
	}
	ca, err := mitm.LoadCA(certFile, keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy ca: %v\n", err)
		return 1
	}
	bundle, store, roots, err := mitm.WriteTrust(*out, ca.Leaf, rootsPEM)
	if err != nil {
		fmt.Fprintf(stderr, "tokenproxy ca: %s: %v\n", from, err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (mode 0600, for tokenproxy only)\n", keyFile)
	fmt.Fprintf(stdout, "wrote %s (the CA alone: for NODE_EXTRA_CA_CERTS, which adds to the default roots)\n", certFile)
	fmt.Fprintf(stdout, "wrote %s (%d roots from %s, then the CA: for SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE)\n", bundle, roots, from)
	fmt.Fprintf(stdout, "wrote %s (the same for Java: -Djavax.net.ssl.trustStore=%s -Djavax.net.ssl.trustStorePassword=%s)\n",
		store, store, mitm.TrustStorePassword)
	return 0
}
