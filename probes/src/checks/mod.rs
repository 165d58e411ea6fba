//! Probe logic, one module per probe. Protocol clients live in `clients`,
//! rendering in `nagios`/`json`; this layer only decides what to check.

pub mod glue;
pub mod image_upload;
pub mod token_auth;
pub mod usage;
pub mod vm_lifecycle;
