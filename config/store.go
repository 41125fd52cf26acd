package config

import (
	"gopkg.in/yaml.v3"
)

// Store is the shared token store of a fleet of replicas (store: in routes.yaml); nil keeps tokens in the
// process.
type Store struct {
	// URL is a redis:// or rediss:// URL, with Sentinel (master_name=) or cluster (addr=) parameters as
	// go-redis reads them.
	URL string
	// Password, from password (${VAR}) or passwordFile, is used when the URL carries none.
	Password string
	// KeyPrefix starts every key of the store; "" is the store's default.
	KeyPrefix string
	// SecretKey seals keys and tokens: TOKENPROXY_SECRET_KEY or -secret-key-file.
	SecretKey []byte
}

// store reads store: either a URL or a mapping with url, password or passwordFile, and keyPrefix.
func (l *loader) store(n *yaml.Node, path string) *Store {
	st := &Store{}
	var urlNode *yaml.Node
	if n.Kind == yaml.ScalarNode {
		urlNode, st.URL = n, l.nonEmpty(n, path)
	} else {
		var passwordNode, fileNode *yaml.Node
		seen := l.mapping(n, path, map[string]func(*yaml.Node, string){
			"url":          func(v *yaml.Node, p string) { urlNode, st.URL = v, l.nonEmpty(v, p) },
			"password":     func(v *yaml.Node, p string) { passwordNode, st.Password = v, l.nonEmpty(v, p) },
			"passwordFile": func(v *yaml.Node, p string) { fileNode, st.Password = v, l.readSecretFile(v, p, l.fileName(v, p)) },
			"keyPrefix":    func(v *yaml.Node, p string) { st.KeyPrefix = l.nonEmpty(v, p) },
		})
		l.require(n, path, seen, "url")
		if passwordNode != nil && fileNode != nil {
			l.problem(fileNode, path+".passwordFile", "set password or passwordFile, not both")
		}
	}
	if urlNode != nil && st.URL != "" && !l.opaque(urlNode) {
		if l.checkStoreURL == nil {
			l.problem(urlNode, path, "this program reads no store URL (config.LoadOptions.CheckStoreURL is not set)")
		} else if err := l.checkStoreURL(st.URL); err != nil {
			l.problem(urlNode, path, "%v", err)
		}
	}
	if l.secretKey == nil && !l.syntaxOnly {
		l.problem(n, path, "a shared token store needs the secret key (TOKENPROXY_SECRET_KEY or -secret-key-file): "+
			"keys and tokens leave the process only sealed with it")
	}
	st.SecretKey = l.secretKey
	return st
}
