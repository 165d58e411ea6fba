//! All integration tests of this crate in one binary (as cargo-nextest organises
//! its own): one build, one link, shared support modules.

mod concurrency;
#[cfg(feature = "demo")]
mod demo;
mod ec2_site;
mod engines;
mod grading;
mod profiles;
mod real_peers;
mod reports;
