pub mod apel;
pub mod glue;
pub mod is_api;
pub mod keystone;
pub mod ldap;
pub mod usage;
