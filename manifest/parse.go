package manifest

import (
	"errors"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Parse decodes a manifest, defaults and validates every object in it and
// gives its pods their static identity. A manifest is used whole or not at
// all: any error rejects every object in it, so a half-broken file never
// runs half its pods. Warnings do not reject; but the unknown fields of a
// rejected manifest are listed with its errors, since a typo such as
// imagePullPolcy is often what caused them.
func Parse(origin string, data []byte, st Static) (*Objects, error) {
	objs, err := Decode(origin, data)
	if err != nil {
		var list ErrorList
		if objs == nil || !errors.As(err, &list) {
			return nil, err
		}
		return nil, ErrorList(concatCapped(list, origin, objs.Warnings))
	}
	var errs ErrorList
	var warnings []*Error // the validator's, kept apart from the decoder's unknown fields
	names := map[string]string{}
	for _, pod := range objs.Pods {
		asWritten := canonical(pod)
		SetDefaults(pod)
		perr, pwarnings := ValidatePod(objs.at(pod, origin), pod)
		errs = concatCapped(errs, origin, perr)
		warnings = concatCapped(warnings, origin, pwarnings)
		if pod.Name != "" && len(dns1123Subdomain(pod.Name)) == 0 {
			static := StaticName(pod.Name, st.NodeName)
			for _, msg := range dns1123Subdomain(static) {
				errs = concatCapped(errs, origin, ErrorList{newError(objs.at(pod, origin), describe("Pod", pod.Name), "metadata.name", "runs as %q with the node name appended, which is invalid: %s", static, msg)})
			}
			key := pod.Namespace + "/" + pod.Name
			if names[key] != "" {
				errs = concatCapped(errs, origin, ErrorList{newError(origin, describe("Pod", pod.Name), "metadata.name", "pod %s is declared twice in this manifest", key)})
			}
			names[key] = key
		}
		if len(perr) == 0 {
			st.applyIdentity(pod, asWritten, origin)
			objs.podWarned(pod, origin, pwarnings)
		}
	}
	for _, cm := range objs.ConfigMaps {
		defaultNamespace(&cm.ObjectMeta)
		errs = concatCapped(errs, origin, ValidateConfigMap(objs.at(cm, origin), cm))
	}
	for _, s := range objs.Secrets {
		defaultNamespace(&s.ObjectMeta)
		errs = concatCapped(errs, origin, ValidateSecret(objs.at(s, origin), s))
		foldStringData(s)
	}
	if len(errs) > 0 {
		return nil, ErrorList(concatCapped(errs, origin, objs.Warnings))
	}
	objs.Warnings = concatCapped(objs.Warnings, origin, warnings)
	return objs, nil
}

func defaultNamespace(m *metav1.ObjectMeta) {
	if m.Namespace == "" {
		m.Namespace = "default"
	}
}

// foldStringData merges stringData into data, as the apiserver does, and
// defaults the type to Opaque.
func foldStringData(s *v1.Secret) {
	if s.Type == "" {
		s.Type = v1.SecretTypeOpaque
	}
	if len(s.StringData) == 0 {
		return
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}
