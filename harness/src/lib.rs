//! fedprobe harness: runs whole guidelines over many sites with the probes
//! in-process, grades them RefStack-style and writes aggregate reports.

pub mod app;
#[cfg(feature = "demo")]
pub mod demo;
pub mod gendocs;
pub mod grade;
pub mod guideline;
pub mod model;
pub mod profile;
pub mod progress;
pub mod report;
pub mod run;
pub mod serve;
