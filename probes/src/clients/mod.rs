pub mod apel;
pub mod glue;
pub mod keystone;
