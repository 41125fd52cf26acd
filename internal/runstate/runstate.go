// Package runstate records what a running tokenproxy serves for the commands that ask it: health needs the
// admin address the process listens on, which routes.yaml no longer tells once a reload changed admin.
package runstate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Record is what a serving process records about itself.
type Record struct {
	// Config is the absolute path of the routes file the process serves.
	Config string `json:"config"`
	// Admin is the address its admin endpoints listen on, as bound (a port 0 resolved); "" when it has none.
	Admin string `json:"admin"`
}

// Dir is where this user's processes keep their records: a directory of the user's own under
// os.TempDir() ($TMPDIR), so another user can neither plant nor replace one.
func Dir() string {
	return filepath.Join(os.TempDir(), "tokenproxy-"+strconv.Itoa(os.Getuid()))
}

// file is the record of the process serving the routes file config, named after its absolute path, the
// same for serve and for health whatever -config or $TOKENPROXY_CONFIG spelled.
func file(config string) (abs, path string, err error) {
	abs, err = filepath.Abs(config)
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(abs))
	return abs, filepath.Join(Dir(), hex.EncodeToString(sum[:12])+".json"), nil
}

// Write records that this process serves config with its admin endpoints on admin ("" for none). The
// returned remove deletes the record unless another process has replaced it since.
func Write(config, admin string) (remove func(), err error) {
	abs, path, err := file(config)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(Record{Config: abs, Admin: admin})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(Dir(), 0o700); err != nil {
		return nil, err
	}
	if err := private(Dir()); err != nil {
		return nil, err
	}
	// Written aside and renamed, so health never reads half a record.
	tmp, err := os.CreateTemp(Dir(), ".record-*")
	if err != nil {
		return nil, err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return nil, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return nil, err
	}
	return func() {
		if now, err := os.ReadFile(path); err == nil && bytes.Equal(now, data) {
			_ = os.Remove(path)
		}
	}, nil
}

// Read returns the record of the process serving config, if this user has one.
func Read(config string) (Record, bool, error) {
	abs, path, err := file(config)
	if err != nil {
		return Record{}, false, err
	}
	if err := private(Dir()); errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	} else if err != nil {
		return Record{}, false, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, false, nil
	} else if err != nil {
		return Record{}, false, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, false, fmt.Errorf("%s: %v", path, err)
	}
	if rec.Config != abs {
		return Record{}, false, nil // another file's record under the same digest: none of this one
	}
	return rec, true, nil
}

// private insists that dir is a directory of this user's, closed to others.
func private(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() || !closedToOthers(fi) {
		return fmt.Errorf("%s is not a directory of this user's alone (mode 0700): its records are not trusted", dir)
	}
	return nil
}
