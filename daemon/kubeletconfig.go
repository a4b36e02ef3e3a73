package daemon

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	kubeletconfig "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
)

// kubeletConfigKind is the kind and group of the kubelet's configuration
// file, which kubeadm writes to /var/lib/kubelet/config.yaml.
const (
	kubeletConfigKind    = "KubeletConfiguration"
	kubeletConfigVersion = "kubelet.config.k8s.io/v1beta1"
)

// isKubeletConfig reports whether a --config file is a KubeletConfiguration
// rather than podsup's own form (flag names as keys).
func isKubeletConfig(doc map[string]any) bool {
	kind, _ := doc["kind"].(string)
	return kind == kubeletConfigKind
}

// kubeletSetting is what a field of a KubeletConfiguration becomes: podsup
// settings by flag name, each with its values.
type kubeletSetting func(cfg *kubeletconfig.KubeletConfiguration) map[string][]string

// kubeletFields maps each top-level field of a KubeletConfiguration that
// podsup implements to its settings. Fields not here are ignored, with a
// warning that names them. address, port, readOnlyPort, healthzPort and
// healthzBindAddress make addresses together, so each sets its address.
var kubeletFields = map[string]kubeletSetting{
	"staticPodPath":      one("manifests", func(c *kubeletconfig.KubeletConfiguration) string { return c.StaticPodPath }),
	"podLogsDir":         one("log-dir", func(c *kubeletconfig.KubeletConfiguration) string { return c.PodLogsDir }),
	"syncFrequency":      dur("sync-frequency", func(c *kubeletconfig.KubeletConfiguration) time.Duration { return c.SyncFrequency.Duration }),
	"fileCheckFrequency": dur("file-check-frequency", func(c *kubeletconfig.KubeletConfiguration) time.Duration { return c.FileCheckFrequency.Duration }),
	"httpCheckFrequency": dur("http-check-frequency", func(c *kubeletconfig.KubeletConfiguration) time.Duration { return c.HTTPCheckFrequency.Duration }),
	"staticPodURL":       one("manifest-url", func(c *kubeletconfig.KubeletConfiguration) string { return c.StaticPodURL }),
	"staticPodURLHeader": func(c *kubeletconfig.KubeletConfiguration) map[string][]string {
		var headers []string
		for name, values := range c.StaticPodURLHeader {
			for _, v := range values {
				headers = append(headers, name+": "+v)
			}
		}
		sort.Strings(headers)
		return map[string][]string{"manifest-url-header": headers}
	},
	"address":            servingAddresses,
	"port":               servingAddresses,
	"readOnlyPort":       servingAddresses,
	"healthzPort":        servingAddresses,
	"healthzBindAddress": servingAddresses,
	"tlsCertFile":        one("tls-cert-file", func(c *kubeletconfig.KubeletConfiguration) string { return c.TLSCertFile }),
	"tlsPrivateKeyFile":  one("tls-private-key-file", func(c *kubeletconfig.KubeletConfiguration) string { return c.TLSPrivateKeyFile }),
	"authentication": func(c *kubeletconfig.KubeletConfiguration) map[string][]string {
		a := c.Authentication
		s := map[string][]string{}
		if a.X509.ClientCAFile != "" {
			s["client-ca-file"] = []string{a.X509.ClientCAFile}
		}
		if a.Webhook.Enabled != nil {
			s["authentication-token-webhook"] = []string{strconv.FormatBool(*a.Webhook.Enabled)}
		}
		if a.Webhook.CacheTTL.Duration != 0 {
			s["authentication-token-webhook-cache-ttl"] = []string{a.Webhook.CacheTTL.Duration.String()}
		}
		if a.Anonymous.Enabled != nil {
			s["anonymous-auth"] = []string{strconv.FormatBool(*a.Anonymous.Enabled)}
		}
		return s
	},
	"authorization": func(c *kubeletconfig.KubeletConfiguration) map[string][]string {
		a := c.Authorization
		s := map[string][]string{}
		if a.Mode != "" {
			s["authorization-mode"] = []string{string(a.Mode)}
		}
		if a.Webhook.CacheAuthorizedTTL.Duration != 0 {
			s["authorization-webhook-cache-authorized-ttl"] = []string{a.Webhook.CacheAuthorizedTTL.Duration.String()}
		}
		if a.Webhook.CacheUnauthorizedTTL.Duration != 0 {
			s["authorization-webhook-cache-unauthorized-ttl"] = []string{a.Webhook.CacheUnauthorizedTTL.Duration.String()}
		}
		return s
	},
	"clusterDomain": one("cluster-domain", func(c *kubeletconfig.KubeletConfiguration) string { return c.ClusterDomain }),
	"clusterDNS": func(c *kubeletconfig.KubeletConfiguration) map[string][]string {
		return map[string][]string{"cluster-dns": c.ClusterDNS}
	},
	"resolvConf": one("resolv-conf", func(c *kubeletconfig.KubeletConfiguration) string { return ptrOr(c.ResolverConfig, "") }),
	"streamingConnectionIdleTimeout": dur("streaming-connection-idle-timeout", func(c *kubeletconfig.KubeletConfiguration) time.Duration {
		return c.StreamingConnectionIdleTimeout.Duration
	}),
	"nodeStatusUpdateFrequency": dur("node-status-update-frequency", func(c *kubeletconfig.KubeletConfiguration) time.Duration { return c.NodeStatusUpdateFrequency.Duration }),
	"imageMinimumGCAge":         dur("image-minimum-gc-age", func(c *kubeletconfig.KubeletConfiguration) time.Duration { return c.ImageMinimumGCAge.Duration }),
	"imageGCHighThresholdPercent": one("image-gc-high-threshold", func(c *kubeletconfig.KubeletConfiguration) string {
		return strconv.Itoa(int(ptrOr(c.ImageGCHighThresholdPercent, 0)))
	}),
	"imageGCLowThresholdPercent": one("image-gc-low-threshold", func(c *kubeletconfig.KubeletConfiguration) string {
		return strconv.Itoa(int(ptrOr(c.ImageGCLowThresholdPercent, 0)))
	}),
	"cgroupDriver": one("cgroup-driver", func(c *kubeletconfig.KubeletConfiguration) string { return c.CgroupDriver }),
	"podCIDR":      one("pod-cidr", func(c *kubeletconfig.KubeletConfiguration) string { return c.PodCIDR }),
	"serializeImagePulls": one("serialize-image-pulls", func(c *kubeletconfig.KubeletConfiguration) string {
		return strconv.FormatBool(ptrOr(c.SerializeImagePulls, true))
	}),
	"maxParallelImagePulls": one("max-parallel-image-pulls", func(c *kubeletconfig.KubeletConfiguration) string {
		return strconv.Itoa(int(ptrOr(c.MaxParallelImagePulls, 0)))
	}),
	"evictionHard": one("eviction-hard", func(c *kubeletconfig.KubeletConfiguration) string { return joinMap(c.EvictionHard, "<") }),
	"evictionSoft": one("eviction-soft", func(c *kubeletconfig.KubeletConfiguration) string { return joinMap(c.EvictionSoft, "<") }),
	"evictionSoftGracePeriod": one("eviction-soft-grace-period", func(c *kubeletconfig.KubeletConfiguration) string {
		return joinMap(c.EvictionSoftGracePeriod, "=")
	}),
	"evictionMinimumReclaim": one("eviction-minimum-reclaim", func(c *kubeletconfig.KubeletConfiguration) string {
		return joinMap(c.EvictionMinimumReclaim, "=")
	}),
	"evictionPressureTransitionPeriod": dur("eviction-pressure-transition-period", func(c *kubeletconfig.KubeletConfiguration) time.Duration {
		return c.EvictionPressureTransitionPeriod.Duration
	}),
	"evictionMaxPodGracePeriod": one("eviction-max-pod-grace-period", func(c *kubeletconfig.KubeletConfiguration) string {
		return strconv.Itoa(int(c.EvictionMaxPodGracePeriod))
	}),
	"containerLogMaxSize": one("container-log-max-size", func(c *kubeletconfig.KubeletConfiguration) string { return c.ContainerLogMaxSize }),
	"containerLogMaxFiles": one("container-log-max-files", func(c *kubeletconfig.KubeletConfiguration) string {
		return strconv.Itoa(int(ptrOr(c.ContainerLogMaxFiles, 0)))
	}),
	"allowedUnsafeSysctls": func(c *kubeletconfig.KubeletConfiguration) map[string][]string {
		return map[string][]string{"allowed-unsafe-sysctls": c.AllowedUnsafeSysctls}
	},
	"registerNode": one("register-node", func(c *kubeletconfig.KubeletConfiguration) string {
		return strconv.FormatBool(ptrOr(c.RegisterNode, true))
	}),
	"registerWithTaints": func(c *kubeletconfig.KubeletConfiguration) map[string][]string {
		var taints []string
		for _, t := range c.RegisterWithTaints {
			s := t.Key
			if t.Value != "" {
				s += "=" + t.Value
			}
			taints = append(taints, s+":"+string(t.Effect))
		}
		return map[string][]string{"register-with-taints": taints}
	},
	"containerRuntimeEndpoint": one("containerd-address", func(c *kubeletconfig.KubeletConfiguration) string {
		return strings.TrimPrefix(c.ContainerRuntimeEndpoint, "unix://")
	}),
	"enableProfilingHandler": one("profiling", func(c *kubeletconfig.KubeletConfiguration) string {
		return strconv.FormatBool(ptrOr(c.EnableProfilingHandler, false))
	}),
	"crashLoopBackOff": func(c *kubeletconfig.KubeletConfiguration) map[string][]string {
		if c.CrashLoopBackOff.MaxContainerRestartPeriod == nil {
			return nil
		}
		return map[string][]string{"restart-backoff-max": {c.CrashLoopBackOff.MaxContainerRestartPeriod.Duration.String()}}
	},
}

// kubeletFieldsAlwaysIgnored are fields of a KubeletConfiguration that
// describe no setting: they are not warned about.
var kubeletFieldsAlwaysIgnored = map[string]bool{"kind": true, "apiVersion": true}

// kubeletConfigSettings reads a KubeletConfiguration with the kubelet's own
// types and returns podsup's settings for the fields it sets, by flag name,
// and the fields it sets that podsup does not implement. A field the
// kubelet does not know is an error, as it is to the kubelet.
func kubeletConfigSettings(path string, data []byte, present map[string]any) (map[string][]string, []string, error) {
	var cfg kubeletconfig.KubeletConfiguration
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, nil, fmt.Errorf("%s: %s: %w", path, kubeletConfigKind, err)
	}
	if cfg.APIVersion != kubeletConfigVersion {
		return nil, nil, fmt.Errorf("%s: apiVersion %q: podsup reads %s %s", path, cfg.APIVersion, kubeletConfigVersion, kubeletConfigKind)
	}
	settings := map[string][]string{}
	var ignored []string
	for field := range present {
		if kubeletFieldsAlwaysIgnored[field] {
			continue
		}
		set, ok := kubeletFields[field]
		if !ok {
			ignored = append(ignored, field)
			continue
		}
		for flag, values := range set(&cfg) {
			settings[flag] = values
		}
	}
	sort.Strings(ignored)
	return settings, ignored, nil
}

// servingAddresses are the addresses of the authenticated, read-only and
// healthz ports, made as the kubelet makes them: the authenticated and
// read-only ports on address, the healthz port on healthzBindAddress; a
// read-only or healthz port of 0 is off.
func servingAddresses(c *kubeletconfig.KubeletConfiguration) map[string][]string {
	host := c.Address
	if host == "" {
		host = "0.0.0.0"
	}
	port := c.Port
	if port == 0 {
		port = 10250
	}
	s := map[string][]string{"address": {net.JoinHostPort(host, strconv.Itoa(int(port)))}}
	s["read-only-address"] = []string{""}
	if c.ReadOnlyPort != 0 {
		s["read-only-address"] = []string{net.JoinHostPort(host, strconv.Itoa(int(c.ReadOnlyPort)))}
	}
	healthHost := c.HealthzBindAddress
	if healthHost == "" {
		healthHost = "127.0.0.1"
	}
	s["healthz-address"] = []string{""}
	if hp := ptrOr(c.HealthzPort, 10248); hp != 0 {
		s["healthz-address"] = []string{net.JoinHostPort(healthHost, strconv.Itoa(int(hp)))}
	}
	return s
}

// one is a field that sets one flag to one value.
func one(flag string, value func(*kubeletconfig.KubeletConfiguration) string) kubeletSetting {
	return func(c *kubeletconfig.KubeletConfiguration) map[string][]string {
		v := value(c)
		if v == "" {
			return nil // left as it is: an empty string is no setting
		}
		return map[string][]string{flag: {v}}
	}
}

// dur is a field that sets a duration flag; zero, which kubeadm writes for
// "the default", sets nothing, as the kubelet's defaulting does.
func dur(flag string, value func(*kubeletconfig.KubeletConfiguration) time.Duration) kubeletSetting {
	return func(c *kubeletconfig.KubeletConfiguration) map[string][]string {
		d := value(c)
		if d == 0 {
			return nil
		}
		return map[string][]string{flag: {d.String()}}
	}
}

// joinMap writes a map as the kubelet's flags do: KEYsepVALUE,... in key
// order.
func joinMap(m map[string]string, sep string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+sep+m[k])
	}
	return strings.Join(parts, ",")
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
