package daemon

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// kubeadmKubeletConfig is /var/lib/kubelet/config.yaml as kubeadm 1.37
// writes it, with a few fields a user may add.
const kubeadmKubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: cgroupfs
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
cpuManagerReconcilePeriod: 0s
crashLoopBackOff: {}
evictionHard:
  memory.available: 200Mi
  nodefs.available: 10%
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
port: 10350
resolvConf: /run/systemd/resolve/resolv.conf
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
failCgroupV1: false
`

// TestKubeletConfiguration: kubeadm's KubeletConfiguration sets what podsup
// implements, zero durations (kubeadm writes 0s for "the default") leave
// podsup's defaults, the command line still wins, and every field podsup
// ignores is named.
func TestKubeletConfiguration(t *testing.T) {
	file := writeConfig(t, kubeadmKubeletConfig)
	cfg, err := parseRun(t, "--config", file, "--kubeconfig", "/etc/kubernetes/kubelet.conf", "--cluster-domain", "from.flag", "--container-runtime-endpoint", "unix:///run/other.sock", "--hostname-override", "n1")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"staticPodPath", cfg.Manifests, "/etc/kubernetes/manifests"},
		{"port and address", cfg.API.Address, "0.0.0.0:10350"},
		{"no readOnlyPort: off", cfg.ReadOnlyAddress, ""},
		{"healthz", cfg.HealthzAddress, "127.0.0.1:10248"},
		{"clientCAFile", cfg.API.ClientCAFile, "/etc/kubernetes/pki/ca.crt"},
		{"webhook authentication", cfg.API.TokenWebhook, true},
		{"cacheTTL 0s keeps the default", cfg.API.TokenWebhookCacheTTL, 2 * time.Minute},
		{"anonymous", cfg.API.AnonymousAuth, false},
		{"authorization mode", cfg.API.AuthorizationMode, "Webhook"},
		{"clusterDNS", cfg.ClusterDNS, []string{"10.96.0.10"}},
		{"the flag beats the file", cfg.ClusterDomain, "from.flag"},
		{"--container-runtime-endpoint, unix:// taken off", cfg.ContainerdAddress, "/run/other.sock"},
		{"--hostname-override", cfg.NodeName, "n1"},
		{"syncFrequency 0s keeps the default", cfg.SyncFrequency, time.Minute},
		{"resolvConf", cfg.ResolvConf, "/run/systemd/resolve/resolv.conf"},
	}
	for _, c := range checks {
		if !equalAny(c.got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	if got := cfg.Eviction.Thresholds; len(got) != 2 {
		t.Errorf("evictionHard: %d thresholds, want the file's 2: %v", len(got), got)
	}
	for _, f := range []string{"cpuManagerReconcilePeriod", "logging", "memorySwap", "rotateCertificates", "failCgroupV1", "shutdownGracePeriod"} {
		if !slices.Contains(cfg.IgnoredConfigFields, f) {
			t.Errorf("ignored fields %v do not name %s", cfg.IgnoredConfigFields, f)
		}
	}
	for _, f := range []string{"kind", "apiVersion", "staticPodPath", "authentication", "port"} {
		if slices.Contains(cfg.IgnoredConfigFields, f) {
			t.Errorf("ignored fields %v name %s, which podsup implements", cfg.IgnoredConfigFields, f)
		}
	}
}

func TestKubeletConfigurationRefused(t *testing.T) {
	for name, tc := range map[string]struct{ content, says string }{
		"a field the kubelet does not know": {"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPaht: /x\n", `unknown field "staticPodPaht"`},
		"another version":                   {"apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n", `apiVersion "kubelet.config.k8s.io/v1"`},
		"a bad value":                       {"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nport: many\n", "port"},
	} {
		t.Run(name, func(t *testing.T) {
			file := writeConfig(t, tc.content)
			_, err := parseRun(t, "--config", file)
			if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), file) {
				t.Errorf("error %v, want one naming %s and %q", err, file, tc.says)
			}
		})
	}
}

func equalAny(a, b any) bool {
	as, ok1 := a.([]string)
	bs, ok2 := b.([]string)
	if ok1 && ok2 {
		return slices.Equal(as, bs)
	}
	return a == b
}
