//! All integration tests of this crate in one binary (as cargo-nextest organises
//! its own): one build, one link, shared support modules.

mod azure_site;
mod clouds;
mod concurrency;
#[cfg(feature = "demo")]
mod demo;
mod ec2_site;
mod engines;
mod gce_site;
mod grading;
mod opennebula;
mod profiles;
mod provider_path;
mod provider_report;
mod real_peers;
mod reports;
#[cfg(feature = "demo")]
mod serve;
