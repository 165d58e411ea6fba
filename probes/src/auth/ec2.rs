//! Amazon EC2/EBS: connection and login options (flags prefixed `--ec2-`).

#[derive(clap::Args, Clone, Debug, Default)]
pub struct Ec2Args {}
