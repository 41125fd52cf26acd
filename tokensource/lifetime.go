package tokensource

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// lifetimeOf finds how long a token lives, in this order: expiresPath, expiresAtPath, expires_in (beside the
// token, then at the top), defaultTTL, the token's own JWT exp claim, DefaultLifetime. It says which it used.
func lifetimeOf(c Config, obj, parent map[string]any, token string, now time.Time) (time.Duration, string) {
	if c.ExpiresPath != "" {
		if d, ok := seconds(valueAt(obj, c.ExpiresPath)); ok {
			return clamp(d), "expiresPath"
		}
	}
	if c.ExpiresAtPath != "" {
		if at, ok := instant(valueAt(obj, c.ExpiresAtPath)); ok {
			return clamp(at.Sub(now)), "expiresAtPath"
		}
	}
	if d, ok := seconds(parent["expires_in"]); ok {
		return clamp(d), "expires_in"
	}
	if d, ok := seconds(obj["expires_in"]); ok {
		return clamp(d), "expires_in"
	}
	if c.DefaultTTL > 0 {
		return clamp(c.DefaultTTL), "defaultTTL"
	}
	if exp, ok := jwtExpiry(token); ok {
		return clamp(exp.Sub(now)), "jwt exp"
	}
	return DefaultLifetime, "default"
}

// maxEpoch (the last second of 9999) keeps absurd absolute times from overflowing.
const maxEpoch = 253402300799

func clamp(d time.Duration) time.Duration {
	return min(max(d, MinLifetime), MaxLifetime)
}

// valueAt follows a dot path; nil when it breaks.
func valueAt(obj map[string]any, path string) any {
	var cur any = obj
	for _, seg := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[seg]
	}
	return cur
}

// seconds reads a lifetime given as a JSON number or a numeric string. Values beyond the clamps are cut
// to just past them here, before a conversion could overflow.
func seconds(v any) (time.Duration, bool) {
	f, ok := number(v)
	if !ok {
		return 0, false
	}
	f = min(max(f, -1), MaxLifetime.Seconds()+1)
	return time.Duration(f * float64(time.Second)), true
}

func number(v any) (float64, bool) {
	var s string
	switch n := v.(type) {
	case json.Number:
		s = n.String()
	case string:
		s = strings.TrimSpace(n)
	case float64:
		return n, !math.IsNaN(n) && !math.IsInf(n, 0)
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
}

// instant reads an absolute time: epoch seconds (milliseconds when implausibly large) or RFC 3339.
func instant(v any) (time.Time, bool) {
	if f, ok := number(v); ok {
		if f > 1e12 {
			f /= 1000
		}
		return time.Unix(int64(min(max(f, 0), maxEpoch)), 0), true
	}
	if s, ok := v.(string); ok {
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(s)); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// jwtExpiry reads the exp claim of a JWT without verifying it: it is used only to time the refresh.
func jwtExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == "" {
		return time.Time{}, false
	}
	return instant(claims.Exp)
}
