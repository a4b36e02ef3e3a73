package podspec

import (
	"errors"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestEnv(t *testing.T) {
	objs := Objects{
		ConfigMaps: map[string]*v1.ConfigMap{"default/app": {Data: map[string]string{"B": "2", "A": "1"}, BinaryData: map[string][]byte{"BIN": []byte("b")}}},
		Secrets:    map[string]*v1.Secret{"default/creds": {Data: map[string][]byte{"PASSWORD": []byte("s3cret")}}},
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"tier": "front"}}}
	c := &v1.Container{
		EnvFrom: []v1.EnvFromSource{
			{Prefix: "CM_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "app"}}},
			{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
			{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "creds"}}},
		},
		Env: []v1.EnvVar{
			{Name: "CM_A", Value: "overridden"},
			{Name: "URL", Value: "http://$(POD):$(PORT)/$(CM_B)"},
			{Name: "POD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "TIER", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}}},
			{Name: "IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "MEM", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "BIN", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "app"}, Key: "BIN"}}},
			{Name: "GONE", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "creds"}, Key: "nope", Optional: ptr.To(true)}}},
			{Name: "AGAIN", Value: "$(POD)-$$(POD)"},
		},
	}
	info := PodInfo{IPs: []string{"10.86.0.9"}, Allocatable: v1.ResourceList{v1.ResourceMemory: resource.MustParse("2Gi")}}
	got, err := Env(pod, c, objs, info)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CM_A=overridden", "CM_B=2", "PASSWORD=s3cret",
		"URL=http://$(POD):$(PORT)/2", // POD is defined after URL, PORT never
		"POD=web", "TIER=front", "IP=10.86.0.9", "MEM=2048", "BIN=b", "AGAIN=web-$(POD)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("env\n got %q\nwant %q", got, want)
	}
}

func TestEnvMissing(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}}
	cases := map[string]v1.Container{
		"envFrom configmap": {EnvFrom: []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}}}}},
		"secret key":        {Env: []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Key: "k"}}}}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Env(pod, &c, Objects{}, PodInfo{}); !errors.Is(err, ErrMissingConfig) {
				t.Errorf("error %v, want ErrMissingConfig", err)
			}
		})
	}
}
