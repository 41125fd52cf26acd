package tokensource

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// parseAnswer turns a 2xx token answer into a token, or an *Error saying why it holds none.
func parseAnswer(c Config, status int, body []byte, now time.Time, r *redactor) (*Token, error) {
	obj, ok := decodeObject(body)
	if !ok {
		return nil, &Error{Kind: KindNotJSON, TokenURL: DisplayURL(c.TokenURL), StatusCode: status, Snippet: snippet(body, r)}
	}
	parent, value, keys := lookup(obj, strings.Split(c.TokenPath, "."))
	token, _ := value.(string)
	if token == "" {
		return nil, &Error{Kind: KindNoToken, TokenURL: DisplayURL(c.TokenURL), StatusCode: status,
			TokenPath: c.TokenPath, Keys: keys}
	}
	lifetime, source := lifetimeOf(c, obj, parent, token, now)
	scope, _ := obj["scope"].(string)
	t := NewToken(token, now, now.Add(lifetime))
	t.LifetimeSource, t.Scope, t.Status = source, scope, status
	return t, nil
}

// parseErrorAnswer reads the RFC 6749 §5.2 fields of a non-2xx answer, when it has them, with the route's
// credentials redacted from whatever the endpoint wrote there.
func parseErrorAnswer(c Config, status int, body []byte, r *redactor) *Error {
	e := &Error{Kind: KindStatus, TokenURL: DisplayURL(c.TokenURL), StatusCode: status}
	if obj, ok := decodeObject(body); ok {
		code, _ := obj["error"].(string)
		description, _ := obj["error_description"].(string)
		uri, _ := obj["error_uri"].(string)
		e.Code, e.Description, e.URI = r.redact(code), r.redact(description), r.redact(uri)
	}
	return e
}

func decodeObject(body []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, false
	}
	return obj, true
}

// lookup follows path through nested objects. It returns the object holding the last segment and the value
// found there; when the path breaks, it returns the sorted keys of the object where it broke.
func lookup(obj map[string]any, path []string) (parent map[string]any, value any, keys []string) {
	cur := obj
	for i, seg := range path {
		v, ok := cur[seg]
		if !ok {
			return nil, nil, sortedKeys(cur)
		}
		if i == len(path)-1 {
			if _, isString := v.(string); !isString {
				return nil, nil, sortedKeys(cur)
			}
			return cur, v, nil
		}
		next, isObject := v.(map[string]any)
		if !isObject {
			return nil, nil, sortedKeys(cur)
		}
		cur = next
	}
	return nil, nil, sortedKeys(cur)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
