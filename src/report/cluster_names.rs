//! Names for literal destinations from a file of the cluster's objects,
//! for `analyze --names FILE`: what `kubectl get services,endpointslices,pods
//! -A -o json` prints (a `List`, or one object). No network request: the
//! user exported the file. Read: Service `spec.clusterIPs` (or
//! `clusterIP`), EndpointSlice `endpoints[].addresses` with the
//! `kubernetes.io/service-name` label and `targetRef` (or `hostname`), Pod
//! `status.podIPs` (or `podIP`). Other kinds are ignored. Names the capture
//! itself holds win: the file may be newer than the capture.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::{DestinationNameRecord, Report};
use crate::dns::k8s::NameSource;

#[derive(Debug, thiserror::Error)]
pub enum ClusterNamesError {
    #[error("not Kubernetes JSON (kubectl get ... -o json)")]
    Json(#[from] serde_json::Error),
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Object {
    kind: String,
    metadata: Metadata,
    spec: Spec,
    status: Status,
    endpoints: Vec<Endpoint>,
    items: Vec<Object>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Metadata {
    name: String,
    namespace: String,
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Spec {
    #[serde(rename = "clusterIP")]
    cluster_ip: String,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Status {
    #[serde(rename = "podIP")]
    pod_ip: String,
    #[serde(rename = "podIPs")]
    pod_ips: Vec<PodIp>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PodIp {
    ip: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Endpoint {
    addresses: Vec<String>,
    hostname: Option<String>,
    target_ref: Option<TargetRef>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TargetRef {
    kind: String,
    name: String,
}

/// Addresses → what they are, from the file. A Service's or an endpoint's
/// name beats a bare pod's (it says which Service to dial).
#[derive(Debug, Default)]
pub struct ClusterNames {
    by_addr: BTreeMap<IpAddr, DestinationNameRecord>,
}

impl ClusterNames {
    pub fn parse(json: &str, cluster_domain: &str) -> Result<ClusterNames, ClusterNamesError> {
        let root: Object = serde_json::from_str(json)?;
        let mut out = ClusterNames::default();
        out.add(&root, cluster_domain);
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    fn add(&mut self, o: &Object, domain: &str) {
        for item in &o.items {
            self.add(item, domain);
        }
        let ns = &o.metadata.namespace;
        let record =
            |kind, service: Option<&str>, pod: Option<&str>, name: String| DestinationNameRecord {
                kind,
                service: service.map(str::to_string),
                namespace: Some(ns.clone()),
                pod: pod.map(str::to_string),
                name,
                source: NameSource::NamesFile,
            };
        match o.kind.as_str() {
            "Service" => {
                let svc = &o.metadata.name;
                let fqdn = format!("{svc}.{ns}.svc.{domain}");
                let ips = o.spec.cluster_ips.iter().chain([&o.spec.cluster_ip]);
                for ip in ips.filter_map(|s| s.parse::<IpAddr>().ok()) {
                    self.by_addr
                        .insert(ip, record("service", Some(svc), None, fqdn.clone()));
                }
            }
            "EndpointSlice" => {
                let Some(svc) = o.metadata.labels.get("kubernetes.io/service-name") else {
                    return;
                };
                for e in &o.endpoints {
                    let pod = e
                        .target_ref
                        .as_ref()
                        .filter(|t| t.kind == "Pod")
                        .map(|t| t.name.as_str())
                        .or(e.hostname.as_deref());
                    let fqdn = match &e.hostname {
                        Some(h) => format!("{h}.{svc}.{ns}.svc.{domain}"),
                        None => format!("{svc}.{ns}.svc.{domain}"),
                    };
                    for ip in e.addresses.iter().filter_map(|s| s.parse::<IpAddr>().ok()) {
                        self.by_addr
                            .insert(ip, record("endpoint", Some(svc), pod, fqdn.clone()));
                    }
                }
            }
            "Pod" => {
                let pod = &o.metadata.name;
                let ips = o.status.pod_ips.iter().map(|p| &p.ip);
                for ip in ips
                    .chain([&o.status.pod_ip])
                    .filter_map(|s| s.parse::<IpAddr>().ok())
                {
                    // An endpoint record says more (its Service).
                    self.by_addr
                        .entry(ip)
                        .or_insert_with(|| record("pod", None, Some(pod), pod.clone()));
                }
            }
            _ => {}
        }
    }
}

impl Report {
    /// Names the literal destinations the capture left unnamed; returns how
    /// many it named.
    pub fn name_from_cluster(&mut self, names: &ClusterNames) -> usize {
        let mut n = 0;
        for d in self.destinations.values_mut().filter(|d| d.named.is_none()) {
            if let Some(r) = names.by_addr.get(&d.address) {
                d.named = Some(r.clone());
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_slices_and_pods() {
        let json = r#"{"kind": "List", "items": [
          {"kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop"},
           "status": {"podIP": "10.244.2.7", "podIPs": [{"ip": "10.244.2.7"}, {"ip": "fd00::7"}]}},
          {"kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"clusterIP": "10.96.3.3", "clusterIPs": ["10.96.3.3"]}},
          {"kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
           "spec": {"clusterIP": "None"}},
          {"kind": "EndpointSlice", "metadata": {"name": "web-x", "namespace": "shop",
             "labels": {"kubernetes.io/service-name": "web"}},
           "endpoints": [{"addresses": ["10.244.2.7"], "targetRef": {"kind": "Pod", "name": "web-1"}}]},
          {"kind": "EndpointSlice", "metadata": {"name": "db-x", "namespace": "shop",
             "labels": {"kubernetes.io/service-name": "db"}},
           "endpoints": [{"addresses": ["10.244.2.9"], "hostname": "db-0"}]},
          {"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "shop"}}
        ]}"#;
        let names = ClusterNames::parse(json, "cluster.local").unwrap();
        let get = |a: &str| names.by_addr.get(&a.parse::<IpAddr>().unwrap()).unwrap();
        assert_eq!(names.len(), 4);
        assert_eq!(get("10.96.3.3").describe(), "Service shop/web");
        // The slice wins over the pod, whichever comes first.
        assert_eq!(
            get("10.244.2.7").describe(),
            "pod web-1 of Service shop/web"
        );
        assert_eq!(get("fd00::7").describe(), "pod shop/web-1");
        let db = get("10.244.2.9");
        assert_eq!(db.name, "db-0.db.shop.svc.cluster.local");
        assert_eq!(db.source, NameSource::NamesFile);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(ClusterNames::parse("not json", "cluster.local").is_err());
        assert!(ClusterNames::parse("[1, 2]", "cluster.local").is_err());
        // Wrong types inside an object are an error too.
        assert!(
            ClusterNames::parse(r#"{"kind": "Service", "spec": {"clusterIPs": 5}}"#, "x").is_err()
        );
        assert!(ClusterNames::parse("{}", "cluster.local")
            .unwrap()
            .is_empty());
    }
}
