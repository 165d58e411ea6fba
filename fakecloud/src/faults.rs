//! The switchable faults, named once: the enum's names are what command
//! lines accept and what help texts list.

use std::collections::BTreeSet;
use std::time::Duration;

use strum::EnumMessage;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumIter,
    strum::EnumMessage,
    strum::VariantArray,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Fault {
    /// Boot takes the slow-boot time instead of the normal boot delay
    SlowBoot,
    /// New servers go to ERROR with a fault
    ErrorState,
    /// Glance records a checksum that does not match the uploaded data
    WrongChecksum,
    /// GLUE objects are older than their Validity; the IS API drops the site
    StaleGlue,
    /// Nova `POST /servers` answers 503 with an HTML page
    #[strum(serialize = "5xx")]
    Http5xx,
    /// Glance image data upload (`PUT .../file`, `.../stage`) never answers
    Hang,
    /// Keystone rejects the federated token exchange (401)
    BadToken,
    /// The site's accounting was last updated 40 days ago (spool and portal)
    StaleAccounting,
    /// New volumes stay `creating` for ever
    VolumeStuckCreating,
    /// Nova accepts a volume attach, then the volume rolls back to available
    AttachFailing,
    /// Cinder's limits show the project's volume quota used up
    VolumeQuotaExhausted,
    /// The project's instances quota is used up: Nova's limits say 0 allowed, `POST /servers` answers 403
    QuotaExhausted,
    /// Neutron's floating IP pool is exhausted: allocation answers 409
    FipExhausted,
    /// The site is served over https with a certificate that expires in 5 days
    CertificateExpiring,
    /// Swift object GET answers bytes differing from those stored (same length, the stored ETag)
    ObjectCorruptedOnRead,
}

impl Fault {
    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn help(self) -> &'static str {
        self.get_documentation().unwrap_or_default()
    }
}

#[cfg(feature = "clap")]
impl clap::ValueEnum for Fault {
    fn value_variants<'a>() -> &'a [Self] {
        <Fault as strum::VariantArray>::VARIANTS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.help()))
    }
}

/// The faults switched on (for all sites of a cloud).
#[derive(Debug, Clone)]
pub struct Faults {
    on: BTreeSet<Fault>,
    /// Boot time under [`Fault::SlowBoot`].
    pub slow_boot: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            on: BTreeSet::new(),
            slow_boot: Duration::from_secs(300),
        }
    }
}

impl Faults {
    pub fn of(faults: impl IntoIterator<Item = Fault>) -> Faults {
        Faults {
            on: faults.into_iter().collect(),
            ..Faults::default()
        }
    }

    pub fn with_slow_boot(mut self, boot: Duration) -> Faults {
        self.slow_boot = boot;
        self
    }

    pub fn has(&self, f: Fault) -> bool {
        self.on.contains(&f)
    }

    pub fn iter(&self) -> impl Iterator<Item = Fault> + '_ {
        self.on.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn names_parse_back_and_carry_help() {
        for f in Fault::iter() {
            assert_eq!(f.name().parse::<Fault>(), Ok(f));
            assert!(!f.help().is_empty(), "{f} has no help");
        }
        assert_eq!(Fault::Http5xx.name(), "5xx");
        assert_eq!(Fault::SlowBoot.to_string(), "slow-boot");
        let names: Vec<&str> = Fault::iter().map(Fault::name).collect();
        assert_eq!(
            names,
            [
                "slow-boot",
                "error-state",
                "wrong-checksum",
                "stale-glue",
                "5xx",
                "hang",
                "bad-token",
                "stale-accounting",
                "volume-stuck-creating",
                "attach-failing",
                "volume-quota-exhausted",
                "quota-exhausted",
                "fip-exhausted",
                "certificate-expiring",
                "object-corrupted-on-read"
            ]
        );
        assert!("fire".parse::<Fault>().is_err());
    }

    #[test]
    fn faults_switched_on() {
        let f = Faults::of([Fault::Hang]).with_slow_boot(Duration::from_secs(9));
        assert!(f.has(Fault::Hang) && !f.has(Fault::BadToken));
        assert_eq!(f.iter().collect::<Vec<_>>(), [Fault::Hang]);
        assert_eq!(f.slow_boot, Duration::from_secs(9));
    }
}
