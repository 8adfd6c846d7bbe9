//! A container's environment, resolved like a kubelet does it.
use std::collections::BTreeMap;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret};
use kube::{Api, Client};

/// Resolves a container's env like a kubelet: values, Secret and ConfigMap keys, the pod's own name
/// and namespace.
pub(super) async fn resolve_env(
    client: &Client,
    ns: &str,
    pod: &str,
    container: &Container,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for var in container.env.iter().flatten() {
        if let Some(value) = &var.value {
            env.insert(var.name.clone(), value.clone());
            continue;
        }
        let Some(from) = &var.value_from else {
            env.insert(var.name.clone(), String::new());
            continue;
        };
        let value = if let Some(sel) = &from.secret_key_ref {
            let secret = Api::<Secret>::namespaced(client.clone(), ns)
                .get_opt(&sel.name)
                .await?;
            let bytes = secret
                .and_then(|s| s.data)
                .and_then(|d| d.get(&sel.key).cloned());
            match (bytes, sel.optional.unwrap_or(false)) {
                (Some(b), _) => Some(String::from_utf8(b.0).with_context(|| {
                    format!("key {} of Secret {} is not UTF-8", sel.key, sel.name)
                })?),
                (None, true) => None,
                (None, false) => anyhow::bail!("Secret {ns}/{} has no key {}", sel.name, sel.key),
            }
        } else if let Some(sel) = &from.config_map_key_ref {
            let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
                .get_opt(&sel.name)
                .await?;
            let v = cm
                .and_then(|c| c.data)
                .and_then(|d| d.get(&sel.key).cloned());
            match (v, sel.optional.unwrap_or(false)) {
                (Some(v), _) => Some(v),
                (None, true) => None,
                (None, false) => {
                    anyhow::bail!("ConfigMap {ns}/{} has no key {}", sel.name, sel.key)
                }
            }
        } else if let Some(field) = &from.field_ref {
            match field.field_path.as_str() {
                "metadata.name" => Some(pod.to_string()),
                "metadata.namespace" => Some(ns.to_string()),
                other => anyhow::bail!("fieldRef {other} is not supported by the pod runner"),
            }
        } else {
            None
        };
        if let Some(v) = value {
            env.insert(var.name.clone(), v);
        }
    }
    Ok(env)
}
