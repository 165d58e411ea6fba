//! Neutron v2.0 client: networks, subnets, routers, ports, security groups,
//! floating IPs and the project's network quotas.

use std::collections::BTreeMap;

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::service::Service;
use crate::fail::Fail;
use crate::http::Http;
use crate::secret::Secret;

#[derive(Clone, Debug, Deserialize)]
pub struct Network {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default, rename = "router:external")]
    pub external: bool,
    #[serde(default)]
    pub shared: bool,
    #[serde(default)]
    pub subnets: Vec<String>,
}

impl Network {
    pub fn owner(&self) -> Option<&str> {
        self.project_id.as_deref().or(self.tenant_id.as_deref())
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Subnet {
    pub id: String,
    #[serde(default)]
    pub cidr: String,
    #[serde(default)]
    pub network_id: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Gateway {
    pub network_id: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Router {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub external_gateway_info: Option<Gateway>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FixedIp {
    #[serde(default)]
    pub subnet_id: String,
    #[serde(default)]
    pub ip_address: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Port {
    pub id: String,
    #[serde(default)]
    pub network_id: String,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub device_owner: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default)]
    pub security_groups: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Rule {
    pub id: String,
    #[serde(default)]
    pub direction: String,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port_range_min: Option<u32>,
    #[serde(default)]
    pub port_range_max: Option<u32>,
    #[serde(default)]
    pub remote_ip_prefix: Option<String>,
    #[serde(default)]
    pub ethertype: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub security_group_rules: Vec<Rule>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    #[serde(default)]
    pub floating_ip_address: String,
    #[serde(default)]
    pub floating_network_id: String,
    #[serde(default)]
    pub port_id: Option<String>,
    #[serde(default)]
    pub fixed_ip_address: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub description: String,
}

/// One resource of `GET /v2.0/quotas/{project}/details`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct QuotaUse {
    /// -1: unlimited.
    pub limit: i64,
    #[serde(default)]
    pub used: i64,
    #[serde(default)]
    pub reserved: i64,
}

impl QuotaUse {
    /// Room for `n` more (an unlimited quota always has room).
    pub fn room_for(&self, n: i64) -> bool {
        self.limit < 0 || self.used + self.reserved + n <= self.limit
    }
}

/// Neutron at the catalog's `network` endpoint, with or without `/v2.0`.
#[derive(Clone)]
pub struct Neutron {
    svc: Service,
}

/// `{ "<key>": T }`, Neutron's envelope for one object or a list.
fn unwrap<T: DeserializeOwned>(mut v: Value, key: &str) -> Result<T, Fail> {
    let inner = v
        .get_mut(key)
        .map(Value::take)
        .ok_or_else(|| Fail::critical(format!("Neutron's answer has no {key:?} member")))?;
    serde_json::from_value(inner).map_err(|e| {
        Fail::critical(format!(
            "Neutron's {key:?} is not as documented: {}",
            unquoted(&e.to_string())
        ))
    })
}

/// serde's message without the site's own text it quotes (`string "..."`).
fn unquoted(msg: &str) -> String {
    let mut out = String::new();
    for (i, part) in msg.split('"').enumerate() {
        out.push_str(if i % 2 == 1 { "\"…\"" } else { part });
    }
    crate::text::one_line(&out, 160)
}

impl Neutron {
    pub fn new(http: Http, url: &Url, token: Secret) -> Neutron {
        Neutron {
            svc: Service::new(http, url, Some("v2.0"), Some(token)),
        }
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, Fail> {
        let mut u = self
            .svc
            .url(&["v2.0"].iter().chain(segments).copied().collect::<Vec<_>>())?;
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        Ok(u)
    }

    async fn list<T: DeserializeOwned>(
        &self,
        kind: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, Fail> {
        let v: Value = self.svc.get_json(self.url(&[kind], query)?).await?;
        unwrap(v, &kind.replace('-', "_"))
    }

    async fn one<T: DeserializeOwned>(
        &self,
        kind: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<T>, Fail> {
        let v: Option<Value> = self.svc.get_opt(self.url(&[kind, id], &[])?).await?;
        v.map(|v| unwrap(v, key)).transpose()
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        key: &str,
        body: &Value,
    ) -> Result<T, Fail> {
        let req = self.svc.json_request(method, url).json(body);
        let v: Value = self.svc.send(req).await?.success()?.json()?;
        unwrap(v, key)
    }

    /// `GET /v2.0/networks`.
    pub async fn networks(&self) -> Result<Vec<Network>, Fail> {
        self.list("networks", &[]).await
    }

    /// Subnets of one network.
    pub async fn subnets(&self, network_id: &str) -> Result<Vec<Subnet>, Fail> {
        self.list("subnets", &[("network_id", network_id)]).await
    }

    pub async fn routers(&self) -> Result<Vec<Router>, Fail> {
        self.list("routers", &[]).await
    }

    /// Ports by exact-match filters (`device_id`, `network_id`, `device_owner`).
    pub async fn ports(&self, filters: &[(&str, &str)]) -> Result<Vec<Port>, Fail> {
        self.list("ports", filters).await
    }

    /// `GET /v2.0/quotas/{project}/details`: resource name -> limit and use.
    /// `None` when the site has no quota details (404).
    pub async fn quota_details(
        &self,
        project_id: &str,
    ) -> Result<Option<BTreeMap<String, QuotaUse>>, Fail> {
        let v: Option<Value> = self
            .svc
            .get_opt(self.url(&["quotas", project_id, "details"], &[])?)
            .await?;
        v.map(|v| unwrap(v, "quota")).transpose()
    }

    pub async fn create_security_group(
        &self,
        name: &str,
        description: &str,
    ) -> Result<SecurityGroup, Fail> {
        let body = json!({"security_group": {"name": name, "description": description}});
        self.send_json(
            Method::POST,
            self.url(&["security-groups"], &[])?,
            "security_group",
            &body,
        )
        .await
    }

    /// An ingress rule for IPv4: `protocol` with an optional port.
    pub async fn add_ingress_rule(
        &self,
        group_id: &str,
        protocol: &str,
        port: Option<u32>,
    ) -> Result<Rule, Fail> {
        let mut rule = json!({"security_group_id": group_id, "direction": "ingress",
            "ethertype": "IPv4", "protocol": protocol, "remote_ip_prefix": "0.0.0.0/0"});
        if let Some(p) = port {
            rule["port_range_min"] = json!(p);
            rule["port_range_max"] = json!(p);
        }
        let body = json!({ "security_group_rule": rule });
        self.send_json(
            Method::POST,
            self.url(&["security-group-rules"], &[])?,
            "security_group_rule",
            &body,
        )
        .await
    }

    pub async fn security_group(&self, id: &str) -> Result<Option<SecurityGroup>, Fail> {
        self.one("security-groups", "security_group", id).await
    }

    pub async fn security_groups_named(&self, name: &str) -> Result<Vec<SecurityGroup>, Fail> {
        self.list("security-groups", &[("name", name)]).await
    }

    /// True if accepted, false if already gone.
    pub async fn delete_security_group(&self, id: &str) -> Result<bool, Fail> {
        self.svc
            .delete(self.url(&["security-groups", id], &[])?)
            .await
    }

    pub async fn create_floating_ip(
        &self,
        network_id: &str,
        description: &str,
    ) -> Result<FloatingIp, Fail> {
        let body =
            json!({"floatingip": {"floating_network_id": network_id, "description": description}});
        self.send_json(
            Method::POST,
            self.url(&["floatingips"], &[])?,
            "floatingip",
            &body,
        )
        .await
    }

    /// Associate with `port_id`, or disassociate with `None`.
    pub async fn set_floating_ip_port(
        &self,
        id: &str,
        port_id: Option<&str>,
    ) -> Result<FloatingIp, Fail> {
        let body = json!({"floatingip": {"port_id": port_id}});
        self.send_json(
            Method::PUT,
            self.url(&["floatingips", id], &[])?,
            "floatingip",
            &body,
        )
        .await
    }

    pub async fn floating_ip(&self, id: &str) -> Result<Option<FloatingIp>, Fail> {
        self.one("floatingips", "floatingip", id).await
    }

    pub async fn floating_ips_described(&self, description: &str) -> Result<Vec<FloatingIp>, Fail> {
        self.list("floatingips", &[("description", description)])
            .await
    }

    /// Floating IPs bound to a port.
    pub async fn floating_ips_on_port(&self, port_id: &str) -> Result<Vec<FloatingIp>, Fail> {
        self.list("floatingips", &[("port_id", port_id)]).await
    }

    /// True if accepted, false if already gone.
    pub async fn delete_floating_ip(&self, id: &str) -> Result<bool, Fail> {
        self.svc.delete(self.url(&["floatingips", id], &[])?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_room() {
        let q = |limit, used, reserved| QuotaUse {
            limit,
            used,
            reserved,
        };
        assert!(q(-1, 100, 0).room_for(1));
        assert!(q(2, 1, 0).room_for(1));
        assert!(!q(1, 1, 0).room_for(1));
        assert!(!q(2, 1, 1).room_for(1));
        assert!(!q(0, 0, 0).room_for(1));
    }

    #[test]
    fn envelope() {
        let v = json!({"floatingip": {"id": "f1", "floating_ip_address": "1.2.3.4"}});
        let f: FloatingIp = unwrap(v, "floatingip").unwrap();
        assert_eq!(f.floating_ip_address, "1.2.3.4");
        assert!(unwrap::<FloatingIp>(json!({"x": 1}), "floatingip").is_err());
        let Err(f) = unwrap::<FloatingIp>(
            json!({"floatingip": {"id": "<b>x</b>", "status": 3}}),
            "floatingip",
        ) else {
            panic!("a number for a string must fail")
        };
        assert!(!f.message.contains("<b>"), "{}", f.message);
        let Err(f) = unwrap::<FloatingIp>(json!({"floatingip": "<i>nope</i>"}), "floatingip")
        else {
            panic!("a string for an object must fail")
        };
        assert!(
            f.message.contains("invalid type: string \"…\""),
            "{}",
            f.message
        );
    }
}
