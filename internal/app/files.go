package app

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tokenproxy/tokenproxy/config"
	"github.com/tokenproxy/tokenproxy/mitm"
	"github.com/tokenproxy/tokenproxy/redisstore"
	"github.com/tokenproxy/tokenproxy/secrets"
)

// resolveTimeout bounds issuer discovery at start-up and at each reload.
const resolveTimeout = 30 * time.Second

// LoadOptions are how tokenproxy reads routes.yaml with the secret key key: the interception CA as mitm
// reads it, a store URL as redisstore does.
func LoadOptions(key []byte) config.LoadOptions {
	return config.LoadOptions{SecretKey: key, ParseCA: mitm.ParseCA, CheckStoreURL: redisstore.CheckURL}
}

// ConfigFiles are the files tokenproxy's configuration is read from: routes.yaml and, when there is one,
// the file holding the key of its aes256gcm: secrets.
type ConfigFiles struct {
	// Path is routes.yaml.
	Path string
	// SecretKeyFile holds the base64 key; "" reads $TOKENPROXY_SECRET_KEY instead.
	SecretKeyFile string
}

// SecretKey reads the key for aes256gcm: secrets: from SecretKeyFile, else from $TOKENPROXY_SECRET_KEY; nil
// when neither is set.
func (f ConfigFiles) SecretKey() ([]byte, error) {
	if f.SecretKeyFile == "" {
		if v := os.Getenv(secrets.KeyEnv); v != "" {
			key, err := secrets.ParseKey(v)
			if err != nil {
				return nil, fmt.Errorf("$%s: %w", secrets.KeyEnv, err)
			}
			return key, nil
		}
		return nil, nil
	}
	key, err := secrets.LoadKeyFile(f.SecretKeyFile)
	if err != nil {
		return nil, fmt.Errorf("-secret-key-file %w", err)
	}
	return key, nil
}

// Load reads routes.yaml; the secret key file, when there is one, counts among its sources, so a reload
// sees it change and a failure to read it is tried again only when it does.
func (f ConfigFiles) Load() (*config.Config, error) {
	key, err := f.SecretKey()
	if err != nil {
		e := &config.Error{Problems: []string{fmt.Sprintf("tokenproxy: %v", err)}}
		if f.SecretKeyFile != "" {
			e.Sources = []config.Source{config.FileSource(f.Path), config.FileSource(f.SecretKeyFile)}
		}
		return nil, e
	}
	cfg, err := config.Load(f.Path, LoadOptions(key))
	if f.SecretKeyFile == "" {
		return cfg, err
	}
	if ce, ok := err.(*config.Error); ok {
		ce.Sources = append(ce.Sources, config.FileSource(f.SecretKeyFile))
	} else if err == nil {
		cfg.Sources = append(cfg.Sources, config.FileSource(f.SecretKeyFile))
	}
	return cfg, err
}

// LoadSyntax reads routes.yaml for its keys and values only: without the environment, the secret key and
// any file it names, for pipelines that hold no secrets.
func (f ConfigFiles) LoadSyntax() (*config.Config, error) {
	opts := LoadOptions(nil)
	opts.SyntaxOnly = true
	return config.Load(f.Path, opts)
}

// LoadResolved loads the configuration and finds the token endpoints of the routes that name an issuer.
// It returns both: reloads watch what was loaded, the proxy serves what was resolved.
func (f ConfigFiles) LoadResolved(ctx context.Context) (loaded, resolved *config.Config, err error) {
	loaded, err = f.Load()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	resolved, err = config.Resolve(ctx, loaded, nil, nil)
	return loaded, resolved, err
}
