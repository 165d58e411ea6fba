//! fedprobe harness: runs whole guidelines over many sites with the probes
//! in-process, grades them RefStack-style and writes aggregate reports.

#[cfg(feature = "mimalloc")]
pub mod allocator;
pub mod app;
pub mod budget;
pub mod checkprofile;
pub mod defaults;
#[cfg(feature = "demo")]
pub mod demo;
#[cfg(feature = "demo")]
pub mod demo_fixtures;
pub mod explain;
pub mod gendocs;
pub mod grade;
pub mod guideline;
pub mod init;
pub mod model;
pub mod profile;
pub mod progress;
pub mod report;
pub mod run;
pub mod serve;
pub mod shelf;
pub mod stages;
