//! Amazon EC2/EBS: connection and login options (flags prefixed `--ec2-`).
//! Two logins: static access keys read from files (never on the command
//! line), or federated: the federation's OIDC access token (the AuthArgs
//! token sources) exchanged at STS `AssumeRoleWithWebIdentity` for
//! `--ec2-role-arn`.

use std::path::PathBuf;

use reqwest::Url;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct Ec2Args {
    /// File holding the AWS access key id (static-key login)
    #[arg(long = "ec2-access-key-file", value_name = "FILE")]
    pub access_key_file: Option<PathBuf>,
    /// File holding the AWS secret access key (static-key login)
    #[arg(long = "ec2-secret-key-file", value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Role to assume with the OIDC access token (STS AssumeRoleWithWebIdentity)
    #[arg(long = "ec2-role-arn", value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Session name given to STS [default: fedprobe]
    #[arg(long = "ec2-session-name", value_name = "NAME")]
    pub session_name: Option<String>,
    /// STS endpoint [default: --endpoint]
    #[arg(long = "ec2-sts-endpoint", value_name = "URL")]
    pub sts_endpoint: Option<Url>,
    /// EBS direct API endpoint, for image upload [default: --endpoint]
    #[arg(long = "ec2-ebs-endpoint", value_name = "URL")]
    pub ebs_endpoint: Option<Url>,
    /// Availability zone for VMs and volumes [default: the region's first available]
    #[arg(long = "ec2-availability-zone", value_name = "ZONE")]
    pub availability_zone: Option<String>,
    /// Instance type when --flavor is not given [default: t3.micro]
    #[arg(long = "ec2-instance-type", value_name = "TYPE")]
    pub instance_type: Option<String>,
}
