pub mod glance;
pub mod keystone;
pub mod neutron;
pub mod nova;
pub mod oidc;
