package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// Authorizer decides whether a user may do what a request asks: in Webhook
// mode, a SubjectAccessReview sent to the apiserver. It has the shape of
// the apiserver's authorizer.UnconditionalAuthorizer, which the kubelet
// uses.
type Authorizer interface {
	Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error)
}

// streamingPrefixes are the paths whose requests run a process in a
// container or open a connection into its pod.
var streamingPrefixes = []string{"/exec", "/attach", "/portForward", "/run"}

// RequestAttributes is what a request to the authenticated port asks of
// the node, as the kubelet 1.37 asks it: verb by method, on the node's
// `nodes` resource, with a subresource by path. Paths that have a fine
// subresource also try `proxy`, and either allows (KubeletFineGrainedAuthz,
// GA and locked on in 1.37).
//
// Deviation from the kubelet: the streaming paths (/exec, /attach,
// /portForward, /run) need verb `create` whatever the method. The 1.37
// kubelet takes the verb from the method alone, so a WebSocket exec, which
// is a GET, passes with `get nodes/proxy`, a right often given to
// monitoring agents to read metrics: it would let them run commands in
// every container.
// HEAD is `get` too (the kubelet sends an empty verb).
func RequestAttributes(nodeName string, u user.Info, r *http.Request) []authorizer.AttributesRecord {
	path := r.URL.Path
	verb := verbOf(r.Method)
	var subresources []string
	switch {
	case isSubpath(path, "/pods"), isSubpath(path, "/runningpods"):
		subresources = []string{"pods", "proxy"}
	case isSubpath(path, "/healthz"):
		subresources = []string{"healthz", "proxy"}
	case isSubpath(path, "/stats"):
		subresources = []string{"stats"}
	case isSubpath(path, "/metrics"):
		subresources = []string{"metrics"}
	case isSubpath(path, "/logs"):
		subresources = []string{"log"} // as pods/log
	default:
		subresources = []string{"proxy"}
		if isStreaming(path) {
			verb = "create"
		}
	}
	attrs := make([]authorizer.AttributesRecord, 0, len(subresources))
	for _, sub := range subresources {
		attrs = append(attrs, authorizer.AttributesRecord{
			User: u, Verb: verb, APIVersion: "v1", Resource: "nodes", Subresource: sub,
			Name: nodeName, ResourceRequest: true, Path: path,
		})
	}
	return attrs
}

// verbOf is the API verb of an HTTP method; other methods keep their own
// name, lowercased, so that only a rule for every verb allows them.
func verbOf(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(method)
}

// isSubpath reports whether path is prefix or below it.
func isSubpath(path, prefix string) bool {
	rest, ok := strings.CutPrefix(path, prefix)
	return ok && (rest == "" || rest[0] == '/')
}

// authorize asks az about each of the request's attributes in turn, and
// answers for it: false when it wrote a refusal (403, or 500 when the
// review failed).
// The cause of a failed review is logged, not sent: it may name the
// apiserver and its certificates.
func authorize(ctx context.Context, az Authorizer, attrs []authorizer.AttributesRecord, w http.ResponseWriter, log *slog.Logger) bool {
	subresources := make([]string, 0, len(attrs))
	for _, a := range attrs {
		subresources = append(subresources, a.Subresource)
		decision, _, err := az.Authorize(ctx, a)
		if err != nil {
			msg := fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=%s, subresource=%s)", a.User.GetName(), a.Verb, a.Resource, a.Subresource)
			log.Error(msg, "path", a.Path, "err", err)
			writeError(w, http.StatusInternalServerError, msg)
			return false
		}
		if decision == authorizer.DecisionAllow {
			return true
		}
	}
	a := attrs[0] // they differ by subresource only
	writeJSON(w, http.StatusForbidden, statusBody(http.StatusForbidden, "Forbidden",
		fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=%s, subresource(s)=%v)", a.User.GetName(), a.Verb, a.Resource, subresources)))
	return false
}

// isStreaming reports a path that runs a process in a pod or reaches into
// its network.
func isStreaming(path string) bool {
	for _, p := range streamingPrefixes {
		if isSubpath(path, p) {
			return true
		}
	}
	return false
}
