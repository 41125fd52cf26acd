package tokensource

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// answer is what a token endpoint sent back.
type answer struct {
	status                  int
	contentType, retryAfter string
	body                    []byte
}

// parseAnswer turns a 2xx token answer into a token, or an *Error saying why it holds none. f is the
// route's credentials, for what of the answer an error shows.
func parseAnswer(c Config, a answer, now time.Time, f *filter) (*Token, error) {
	obj, ok := decodeObject(a.body)
	if !ok {
		return nil, &Error{Kind: KindNotJSON, TokenURL: DisplayURL(c.TokenURL), StatusCode: a.status,
			Snippet: f.shownBody(a.body), ContentType: shownType(a.contentType), BodyBytes: len(a.body)}
	}
	parent, value, keys := lookup(obj, strings.Split(c.TokenPath, "."))
	token, _ := value.(string)
	if token == "" {
		e := &Error{Kind: KindNoToken, TokenURL: DisplayURL(c.TokenURL), StatusCode: a.status, TokenPath: c.TokenPath}
		e.Keys, e.HiddenKeys = f.shownKeys(keys)
		return nil, e
	}
	lifetime, source := lifetimeOf(c, obj, parent, token, now)
	scope, _ := obj["scope"].(string)
	t := NewToken(token, now, now.Add(lifetime))
	t.LifetimeSource, t.Scope, t.Status = source, shownScope(scope, f, token), a.status
	return t, nil
}

// shownScope is the granted scope as check shows it, normalised, or marker when it holds a credential or
// the token itself. Scope values are often long URIs (api://…/.default), so runs of token characters stay.
func shownScope(scope string, f *filter, token string) string {
	if scope == "" {
		return ""
	}
	n, ok := normalize(scope)
	if !ok || len(n) > maxDescription || !f.clean(n) || !newFilter([]secret{{token, true}}).clean(n) {
		return marker
	}
	return n
}

// parseErrorAnswer reads the RFC 6749 §5.2 fields of a non-2xx answer, when it has them, keeping only what
// is safe to show.
func parseErrorAnswer(c Config, a answer, f *filter) *Error {
	e := &Error{Kind: KindStatus, TokenURL: DisplayURL(c.TokenURL), StatusCode: a.status}
	if obj, ok := decodeObject(a.body); ok {
		e.Code, e.CodeUnregistered = shownCode(obj["error"])
		if d, ok := obj["error_description"].(string); ok {
			e.Description = f.text(d, maxDescription, false)
		}
		if u, ok := obj["error_uri"].(string); ok {
			e.URI = f.shownURI(u)
		}
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
