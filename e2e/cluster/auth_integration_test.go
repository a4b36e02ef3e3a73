//go:build integration

package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv/kube"
)

// serviceAccountUser makes a service account in default, binds it to a
// ClusterRole of one rule on nodes/subresource, waits until the apiserver's
// RBAC allows it (podsup keeps a refusal 30 s), and returns a bearer token
// of it from the TokenRequest API, as a pod's projected token would be.
func serviceAccountUser(t *testing.T, admin kubernetes.Interface, name, verb, subresource string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{verb}, APIGroups: []string{""}, Resources: []string{"nodes/" + subresource}}}}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: name}}}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRBAC(t, admin, authorizationv1.SubjectAccessReviewSpec{User: "system:serviceaccount:default:" + name,
		Groups:             []string{"system:serviceaccounts", "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Resource: "nodes", Subresource: subresource, Name: "node1"}}, true)
	tr, err := admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// waitRBAC waits until the apiserver answers a SubjectAccessReview of
// spec with allowed: RBAC reads bindings through an informer, so a change
// shows some time after it is made.
func waitRBAC(t *testing.T, admin kubernetes.Interface, spec authorizationv1.SubjectAccessReviewSpec, allowed bool) {
	t.Helper()
	a := spec.ResourceAttributes
	harness.WaitFor(t, fmt.Sprintf("RBAC answers %v to %s for %s %s/%s", allowed, spec.User, a.Verb, a.Resource, a.Subresource), func() bool {
		sar, err := admin.AuthorizationV1().SubjectAccessReviews().Create(context.Background(),
			&authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
		return err == nil && sar.Status.Allowed == allowed
	})
}

// mustRefuse checks that a request is refused with want and a message
// holding each of words.
func mustRefuse(t *testing.T, c harness.APIClient, method, path string, want int, words ...string) {
	t.Helper()
	body := c.Must(t, method, path, "", want)
	for _, w := range words {
		if !strings.Contains(body, w) {
			t.Errorf("%s %s: %q lacks %q", method, path, body, w)
		}
	}
}

// TestWebhookAuth: with --authentication-token-webhook and
// --authorization-mode Webhook, podsup asks the cluster's apiserver who a
// bearer token belongs to and what it may do on the Node, as the kubelet
// does. A service account that may get nodes/stats reads /stats/summary
// and nothing else, authorization coming before routing; one that may get
// nodes/proxy reads logs but cannot exec, which needs create (the kubelet
// 1.37 lets a WebSocket exec, a GET, through); an unknown token and no
// token are 401.
func TestWebhookAuth(t *testing.T) {
	t.Parallel()
	c := kube.Start(t)
	admin := c.Client()
	statsToken := serviceAccountUser(t, admin, "stats-reader", "get", "stats")
	proxyToken := serviceAccountUser(t, admin, "proxy-reader", "get", "proxy")
	e := newEnv(t)
	e.joinCluster(c, "--authentication-token-webhook", "--authorization-mode", "Webhook")

	stats := e.SecureClient(nil, "Bearer "+statsToken)
	stats.WaitAnswer(t, "/stats/summary")
	harness.WaitUntil(t, "/stats/summary answers the stats reader", func() string {
		code, body, err := stats.Do("GET", "/stats/summary", nil)
		if err != nil || code != 200 || !strings.Contains(body, `"nodeName":"node1"`) {
			return fmt.Sprintf("%d %v %.300s", code, err, body)
		}
		return ""
	})
	const statsUser = "user=system:serviceaccount:default:stats-reader"
	mustRefuse(t, stats, "GET", "/containerLogs/default/web-node1/main", 403, statsUser, "verb=get", "resource=nodes", "subresource(s)=[proxy]")
	mustRefuse(t, stats, "GET", "/pods", 403, statsUser, "subresource(s)=[pods proxy]")
	mustRefuse(t, stats, "POST", "/exec/default/web-node1/main?command=true", 403, statsUser, "verb=create")
	mustRefuse(t, stats, "GET", "/exec/default/web-node1/main?command=true", 403, statsUser, "verb=create")

	proxy := e.SecureClient(nil, "Bearer "+proxyToken)
	proxy.Must(t, "GET", "/pods", "", 200)
	proxy.Must(t, "GET", "/containerLogs/default/no-such-pod/main", "", 404) // authorized, then routed
	mustRefuse(t, proxy, "GET", "/exec/default/web-node1/main?command=true", 403,
		"user=system:serviceaccount:default:proxy-reader", "verb=create", "subresource(s)=[proxy]")
	mustRefuse(t, proxy, "PUT", "/manifests/web", 403, "verb=update")

	mustRefuse(t, e.SecureClient(nil, "Bearer not-a-token"), "GET", "/stats/summary", 401, "Unauthorized")
	mustRefuse(t, e.SecureClient(nil, ""), "GET", "/stats/summary", 401, "Unauthorized")
}
