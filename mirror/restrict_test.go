package mirror

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestAPIReference(t *testing.T) {
	withVolume := func(src v1.VolumeSource) v1.PodSpec {
		return v1.PodSpec{Containers: []v1.Container{{Name: "c"}}, Volumes: []v1.Volume{{Name: "hp", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/x"}}}, {Name: "v", VolumeSource: src}}}
	}
	withEnv := func(env ...v1.EnvVar) v1.PodSpec {
		return v1.PodSpec{InitContainers: []v1.Container{{Name: "i"}}, Containers: []v1.Container{{Name: "a"}, {Name: "b", Env: env}}}
	}
	tests := []struct {
		name  string
		spec  v1.PodSpec
		field string
	}{
		{"host paths and downward API", v1.PodSpec{Volumes: []v1.Volume{
			{Name: "d", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{}}},
			{Name: "e", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
			{Name: "p", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{{DownwardAPI: &v1.DownwardAPIProjection{}}}}}},
		}}, ""},
		{"service account", v1.PodSpec{ServiceAccountName: "default"}, "spec.serviceAccountName"},
		{"secret volume", withVolume(v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}), "spec.volumes[1].secret"},
		{"configMap volume", withVolume(v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{}}), "spec.volumes[1].configMap"},
		{"claim", withVolume(v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}), "spec.volumes[1].persistentVolumeClaim"},
		{"projected token", withVolume(v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{DownwardAPI: &v1.DownwardAPIProjection{}}, {ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "t"}}}}}),
			"spec.volumes[1].projected.sources[1].serviceAccountToken"},
		{"secret in env", withEnv(v1.EnvVar{Name: "A", Value: "x"}, v1.EnvVar{Name: "B", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{Key: "k"}}}),
			"spec.containers[1].env[1].valueFrom.secretKeyRef"},
		{"field ref in env", withEnv(v1.EnvVar{Name: "A", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}), ""},
		{"configMap in envFrom", v1.PodSpec{InitContainers: []v1.Container{{Name: "i", EnvFrom: []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{}}}}}},
			"spec.initContainers[0].envFrom[0].configMapRef"},
		{"pull secrets", v1.PodSpec{ImagePullSecrets: []v1.LocalObjectReference{{Name: "r"}}}, "spec.imagePullSecrets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			field, what := apiReference(&v1.Pod{Spec: tt.spec})
			if field != tt.field || (field != "") != (what != "") {
				t.Errorf("apiReference = %q, %q; want %q", field, what, tt.field)
			}
		})
	}
}

func TestCheckNodeLabels(t *testing.T) {
	tests := []struct {
		labels map[string]string
		bad    string
	}{
		{map[string]string{"role": "edge", "example.com/rack": "r1", "node.kubernetes.io/exclude-from-external-load-balancers": ""}, ""},
		{map[string]string{"kubernetes.io/hostname": "x", "topology.kubernetes.io/zone": "z", "kubelet.kubernetes.io/x": "y"}, ""},
		{map[string]string{"node-role.kubernetes.io/control-plane": ""}, "node-role.kubernetes.io/control-plane"},
		{map[string]string{"node-restriction.kubernetes.io/secure": "true"}, "node-restriction.kubernetes.io/secure"},
		{map[string]string{"example.k8s.io/x": "y"}, "example.k8s.io/x"},
	}
	for _, tt := range tests {
		err := CheckNodeLabels(tt.labels)
		if tt.bad == "" && err != nil {
			t.Errorf("%v: %v", tt.labels, err)
		}
		if tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad)) {
			t.Errorf("%v: error %v, want one naming %s", tt.labels, err, tt.bad)
		}
	}
}
