//! Pure validators and parsers of what sites publish: text in, findings out.
//! No I/O here; the clients fetch, the checks decide.

pub mod accelerators;
pub mod apel;
pub mod freshness;
pub mod glue;
pub mod imagelist;
