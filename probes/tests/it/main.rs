//! All integration tests of this crate in one binary (as cargo-nextest organises
//! its own): one build, one link, shared support modules.

mod faults;
mod foundation_support;
mod keystone_mock;
mod mockcloud;
mod realpeers;
mod token_auth_support;

mod appliances_real;
mod azure;
mod dropin;
mod ec2;
mod fault_matrix;
mod foundation_deadline;
mod foundation_garbage;
mod foundation_secrets;
mod fuzz_answers;
mod gce;
mod glue_corpus;
mod glue_peers;
mod glue_random;
mod glue_sources;
mod hostile_ids;
mod hostile_stages;
mod icinga;
mod icinga_zones;
mod image_faults;
mod image_real;
mod layers;
mod object_faults;
mod object_real;
mod opennebula;
mod opennebula_real;
mod orchestrator_faults;
mod orchestrator_real;
mod saml_real;
mod token_auth_faults;
mod token_auth_real;
mod token_auth_secrets;
mod usage_apel;
mod usage_peers;
mod usage_probe;
mod usage_random;
mod vm_backend_seam;
mod vm_faults;
mod vm_real;
