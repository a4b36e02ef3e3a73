package daemon

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/podsup/podsup/api"
	"github.com/podsup/podsup/api/delegate"
)

var _ api.Authorizer = (*delegate.Authorizer)(nil)

// apiAuth is the authenticated port's authentication and authorization,
// as its flags say. The token file is read now, so a bad one stops podsup
// at start with its name; the apiserver is asked nothing yet.
func apiAuth(ac APIConfig, kube *kubeClient, nodeName string, log *slog.Logger) (*api.Authenticator, error) {
	var tokens []api.Token
	if ac.TokenAuthFile != "" {
		var err error
		if tokens, err = api.ReadTokenFile(ac.TokenAuthFile); err != nil {
			return nil, err
		}
	}
	if ac.ClientCAFile == "" && len(tokens) == 0 && !ac.AnonymousAuth && !ac.TokenWebhook {
		log.Warn("the authenticated API accepts nobody: give --client-ca-file, --token-auth-file or --authentication-token-webhook", "address", ac.Address)
	}
	opts := []api.AuthOption{api.WithAuthLogger(log.With("component", "api-auth"))}
	if kube == nil && (ac.TokenWebhook || ac.AuthorizationMode == AuthorizationWebhook) {
		return nil, errors.New("--authentication-token-webhook and --authorization-mode Webhook need --kubeconfig")
	}
	if ac.TokenWebhook {
		opts = append(opts, api.WithTokenReview(delegate.NewTokenAuthenticator(
			kube.client.AuthenticationV1().TokenReviews(), ac.TokenWebhookCacheTTL, delegate.DefaultRetry)))
	}
	if ac.AuthorizationMode == AuthorizationWebhook {
		az, err := delegate.NewAuthorizer(kube.client.AuthorizationV1().SubjectAccessReviews(),
			delegate.WithTTLs(ac.AuthorizedTTL, ac.UnauthorizedTTL))
		if err != nil {
			return nil, fmt.Errorf("--authorization-mode Webhook: %w", err)
		}
		opts = append(opts, api.WithAuthorizer(nodeName, az))
	}
	log.Info("authenticated API", "address", ac.Address, "client-ca", ac.ClientCAFile != "", "tokens", len(tokens),
		"token-webhook", ac.TokenWebhook, "anonymous", ac.AnonymousAuth, "authorization-mode", ac.AuthorizationMode)
	return api.NewAuthenticator(tokens, ac.AnonymousAuth, opts...), nil
}
