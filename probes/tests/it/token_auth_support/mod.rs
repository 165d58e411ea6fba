//! Running the real check_token_auth binary for the token_auth tests; the
//! fake site they run it against is keystone_mock.
#![allow(dead_code)]

pub use crate::keystone_mock::*;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Run the real binary with `args` (and only the given environment).
pub async fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_check_token_auth"));
    cmd.args(args).env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    // no HOME: no ~/.config/openstack/clouds.yaml from the developer's machine
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run check_token_auth");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A file holding `content`, kept alive with the returned guard.
pub fn file(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, content).expect("write fixture file");
    p.display().to_string()
}
