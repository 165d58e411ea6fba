//! Which cloud API a probe speaks, and each cloud's own connection options.
//! The OIDC credential sources and `--endpoint`/`--region` of [`AuthArgs`]
//! serve every cloud (a federated login exchanges the same access token);
//! what only one cloud needs lives in that cloud's `Args`, with flags
//! prefixed by its name.
//!
//! [`AuthArgs`]: super::AuthArgs

use serde::{Deserialize, Serialize};

/// The APIs the EOSC IaaS guideline names.
#[derive(
    clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum CloudKind {
    #[default]
    #[value(name = "openstack")]
    OpenStack,
    /// Amazon EC2/EBS (and what speaks its API).
    #[value(name = "ec2")]
    Ec2,
    /// Azure Resource Manager: Virtual Machines and Disks.
    #[value(name = "azure")]
    Azure,
    /// Google Compute Engine v1.
    #[value(name = "gce")]
    Gce,
    /// OpenNebula's XML-RPC API.
    #[value(name = "opennebula")]
    OpenNebula,
}

impl CloudKind {
    pub const ALL: [CloudKind; 5] = [
        CloudKind::OpenStack,
        CloudKind::Ec2,
        CloudKind::Azure,
        CloudKind::Gce,
        CloudKind::OpenNebula,
    ];

    /// The `--cloud` value and the profile's `cloud` key.
    pub fn name(self) -> &'static str {
        match self {
            CloudKind::OpenStack => "openstack",
            CloudKind::Ec2 => "ec2",
            CloudKind::Azure => "azure",
            CloudKind::Gce => "gce",
            CloudKind::OpenNebula => "opennebula",
        }
    }

    /// The API's name as reports show it.
    pub fn api(self) -> &'static str {
        match self {
            CloudKind::OpenStack => "OpenStack",
            CloudKind::Ec2 => "Amazon EC2/EBS",
            CloudKind::Azure => "Azure Virtual Machines/Disks",
            CloudKind::Gce => "Google Compute Engine",
            CloudKind::OpenNebula => "OpenNebula XML-RPC",
        }
    }

    pub fn parse(s: &str) -> Option<CloudKind> {
        CloudKind::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl std::fmt::Display for CloudKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in CloudKind::ALL {
            assert_eq!(CloudKind::parse(c.name()), Some(c));
            let v = <CloudKind as clap::ValueEnum>::from_str(c.name(), false).unwrap();
            assert_eq!(v, c);
        }
        assert_eq!(CloudKind::parse("aws"), None);
    }
}
