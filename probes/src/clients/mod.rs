pub mod keystone;
pub mod oidc;
