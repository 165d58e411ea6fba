//! fedprobe probes: one result model, renderers, the deadline-bound runner,
//! protocol clients and the probe logic. Binaries in `src/bin` are thin.

pub mod auth;
pub mod backend;
pub mod checks;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod ctx;
pub mod deadline;
pub mod fail;
pub mod files;
pub mod formats;
pub mod http;
pub mod model;
pub mod poll;
pub mod probe;
pub mod record;
pub mod render;
pub mod runner;
pub mod secret;
pub mod text;
pub mod units;

pub use ctx::{Ctx, Done};
pub use fail::Fail;
pub use model::{CheckId, ProbeResult, Status};
