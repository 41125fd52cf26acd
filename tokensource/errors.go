package tokensource

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Kind says which part of the token step went wrong.
type Kind string

const (
	// KindNetwork: the token endpoint could not be reached or did not answer in time.
	KindNetwork Kind = "network"
	// KindStatus: the token endpoint answered with a non-2xx status.
	KindStatus Kind = "status"
	// KindNotJSON: a 2xx answer whose body is not a JSON object.
	KindNotJSON Kind = "not-json"
	// KindNoToken: a JSON answer in which tokenPath finds no non-empty string.
	KindNoToken Kind = "no-token"
	// KindTooLarge: the answer is larger than MaxResponseBytes.
	KindTooLarge Kind = "too-large"
)

// Error is a failed token request. Of what the token endpoint answered it holds only what is safe to show
// by construction (see shown.go): never the client secret, a token, or any other credential of the route,
// in any encoding.
type Error struct {
	Kind     Kind
	TokenURL string // without query or user info
	// StatusCode is the HTTP status of the answer; 0 for KindNetwork.
	StatusCode int
	// Code is the RFC 6749 §5.2 error code when it is a registered one; CodeUnregistered is set when the
	// answer had another, which is not shown.
	Code             string
	CodeUnregistered bool
	// Description is the answer's error_description with every credential and anything that could be a
	// token removed; URI its error_uri as scheme, host and path.
	Description, URI string
	// Snippet says what a 2xx body that is not JSON holds (a form's field names, or the start of its text
	// without anything that could be a token); ContentType and BodyBytes describe it.
	Snippet     string
	ContentType string
	BodyBytes   int
	// TokenPath and Keys explain KindNoToken: the names of the keys found where the path stopped that read
	// as identifiers, never their values; HiddenKeys counts the others.
	TokenPath  string
	Keys       []string
	HiddenKeys int
	// Reason is what went wrong for KindNetwork, in words safe to show; Err keeps the error itself for
	// errors.Is and errors.As, and its text is never shown.
	Reason string
	// Timeout is set when a network error was a timeout.
	Timeout bool
	// RetryAfter is the endpoint's Retry-After, when it sent one.
	RetryAfter time.Duration
	// AuthStyle is the route's configured style, so the hint fits it; Sent is the style of the request that
	// failed (they differ when auto fell back to body).
	AuthStyle AuthStyle
	Sent      AuthStyle
	Err       error

	// sealed holds the texts as the fetcher fixed them, checked against the route's credentials.
	sealed *sealedTexts
}

type sealedTexts struct{ error, cause, hint string }

// seal fixes the error's texts once its fields are final, each passed through the route's credentials as
// a whole.
func (e *Error) seal(f *filter) {
	e.sealed = nil // rendered from the fields, not from an earlier seal
	e.sealed = &sealedTexts{error: f.guard(e.Error()), cause: f.guard(e.Cause()), hint: f.guard(e.Hint())}
}

func (e *Error) Error() string {
	if e.sealed != nil {
		return e.sealed.error
	}
	return "tokensource: token endpoint " + e.TokenURL + ": " + e.Cause()
}

// Cause says what went wrong, without the token endpoint: "answered 401 invalid_client (...)".
func (e *Error) Cause() string {
	if e.sealed != nil {
		return e.sealed.cause
	}
	var b strings.Builder
	switch e.Kind {
	case KindNetwork:
		reason := e.Reason
		if reason == "" {
			reason = "the connection failed"
		}
		fmt.Fprintf(&b, "request failed: %s", reason)
	case KindStatus:
		fmt.Fprintf(&b, "answered %d", e.StatusCode)
		if e.Code != "" {
			fmt.Fprintf(&b, " %s", e.Code)
		} else if e.CodeUnregistered {
			fmt.Fprintf(&b, " %s", UnregisteredCode)
		}
		if e.Description != "" {
			fmt.Fprintf(&b, " (%s)", e.Description)
		}
		if e.URI != "" {
			fmt.Fprintf(&b, " see %s", e.URI)
		}
	case KindNotJSON:
		fmt.Fprintf(&b, "answered %d with a body that is not a JSON object: %s (%s, %d bytes)", e.StatusCode,
			e.Snippet, e.ContentType, e.BodyBytes)
	case KindNoToken:
		fmt.Fprintf(&b, "answered %d but tokenPath %q found no token; keys present: %s",
			e.StatusCode, e.TokenPath, keysText(e.Keys, e.HiddenKeys))
	case KindTooLarge:
		fmt.Fprintf(&b, "answered %d with a body over %d bytes", e.StatusCode, MaxResponseBytes)
	default:
		b.WriteString("failed")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Style says which authStyle the failed request was sent with: "basic-header", or "auto, sent as body".
func (e *Error) Style() AuthStyle {
	if e.Sent != "" && e.AuthStyle != "" && e.Sent != e.AuthStyle {
		return e.AuthStyle + ", sent as " + e.Sent
	}
	if e.AuthStyle == "" {
		return e.Sent
	}
	return e.AuthStyle
}

// Hint is one sentence telling the operator what to check; empty when there is nothing specific.
func (e *Error) Hint() string {
	if e.sealed != nil {
		return e.sealed.hint
	}
	switch {
	case e.Code == "invalid_client" || e.StatusCode == 401:
		switch e.AuthStyle {
		case AuthPrivateKeyJWT:
			return "check clientId and clientKeyFile/clientKeyId: the endpoint must know this key's public half for the client"
		case AuthClientSecretJWT:
			return "check clientId and clientSecret (client-secret-jwt signs with it)"
		case AuthTLSClient:
			return "check clientId and clientCertFile/clientKeyFile: the endpoint must accept this certificate for the client"
		case AuthAuto:
			return "check clientId and clientSecret (auto tried basic-header, then body)"
		}
		return "check clientId and clientSecret, or switch authStyle between basic-header and body (or set auto)"
	case e.Code == "invalid_scope":
		return "check scope: the endpoint does not grant it to this client"
	case e.Code == "unsupported_grant_type" || e.Code == "unauthorized_client":
		return "check grantType: this client may not use it"
	case e.StatusCode == 404 || e.StatusCode == 405:
		return "check tokenUrl: the endpoint answered " + fmt.Sprint(e.StatusCode) + ", so the path is probably not the token endpoint's"
	case e.Code == "invalid_request" || e.StatusCode == 400 || e.StatusCode == 415:
		return "check requestStyle (form or json) and authStyle"
	case e.Kind == KindNoToken:
		return "check tokenPath; keys present: " + keysText(e.Keys, e.HiddenKeys)
	case e.Kind == KindNotJSON:
		return "check tokenUrl: it does not look like a token endpoint"
	case e.Kind == KindNetwork && e.Timeout:
		return "the token endpoint did not answer in time"
	case e.Kind == KindNetwork:
		return "check tokenUrl and that the token endpoint is reachable from here"
	case e.StatusCode >= 500:
		return "the token endpoint is failing; try again later"
	}
	return ""
}

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// DisplayURL drops query and user info, which may carry credentials.
func DisplayURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable tokenUrl)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
