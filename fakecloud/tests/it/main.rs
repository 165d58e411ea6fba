//! All integration tests of this crate in one binary (as in probes and harness).

mod services;
