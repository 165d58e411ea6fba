//! `fedprobe demo --cloud opennebula|gce`: the repository's fixture servers
//! (ci/peers/one_fixture.py, ci/peers/gce_fixture.py), embedded in the binary,
//! run on a loopback port and stopped by their PID on drop. The OpenNebula
//! fixture runs with `python3` alone (`--unchecked`: its answers are not
//! checked against pyone's bindings, which CI does); the GCE fixture is built
//! on the discovery documents shipped in google-api-python-client, so it needs
//! the venv `ci/peers/gce.sh install` makes, and the demo says so without it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::profile::Profile;

const ONE_FIXTURE: &str = include_str!("../../ci/peers/one_fixture.py");
/// cloud-info-provider's publication of the fixture's site (testdata/glue/README.md).
const ONE_GLUE: &str =
    include_str!("../../testdata/glue/cloud-info-provider-1.2.0-opennebula.json");
const GCE_FIXTURE: &str = include_str!("../../ci/peers/gce_fixture.py");
const GCE_SITE: &str = include_str!("../../testdata/sites/gce.toml");

/// A fixture process, stopped by its PID on drop.
pub struct Fixture {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    site: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn io(at: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", at.display())
}

/// Run `python script args`, its stdout to a file; the second word of its
/// first line is the port or address it listens on.
async fn start(
    python: &str,
    dir: &Path,
    script: &str,
    args: &[&str],
    what: &str,
) -> Result<Child, String> {
    let out = dir.join("fixture.out");
    let file = std::fs::File::create(&out).map_err(io(&out))?;
    let mut cmd = Command::new(python);
    cmd.arg(dir.join(script))
        .args(args)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null());
    cmd.spawn().map_err(|e| format!("{what}: {python}: {e}"))
}

async fn listening(child: &mut Child, dir: &Path, what: &str) -> Result<String, String> {
    let out = dir.join("fixture.out");
    for _ in 0..200 {
        if let Ok(s) = std::fs::read_to_string(&out) {
            if let Some(w) = s.lines().next().and_then(|l| l.split_whitespace().nth(1)) {
                return Ok(w.to_string());
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("{what} exited ({st}) before listening"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(format!("{what} did not listen within 10s"))
}

fn timeout_line(probe_timeout: Option<&str>) -> String {
    probe_timeout
        .map(|t| format!("timeout = \"{t}\"\n"))
        .unwrap_or_default()
}

impl Fixture {
    /// The OpenNebula fixture with `python3` (standard library only).
    pub async fn opennebula(dir: &Path) -> Result<Fixture, String> {
        let at = dir.join("opennebula");
        std::fs::create_dir_all(&at).map_err(io(&at))?;
        std::fs::write(at.join("one_fixture.py"), ONE_FIXTURE).map_err(io(&at))?;
        let session = at.join("one_auth");
        let secret = format!("demo-user:demo-{}", probes::backend::run_id());
        crate::profile::write_private(&session, &secret).map_err(io(&session))?;
        let s = session.display().to_string();
        let what =
            "--cloud opennebula runs the OpenNebula fixture with python3 (standard library only)";
        let mut child = start(
            "python3",
            &at,
            "one_fixture.py",
            &["--port", "0", "--unchecked", "--session-file", &s],
            what,
        )
        .await?;
        let port = listening(&mut child, &at, "the OpenNebula fixture").await;
        let mut fx = Fixture {
            child,
            addr: String::new(),
            site: at.display().to_string(),
        };
        fx.addr = format!("127.0.0.1:{}", port?);
        Ok(fx)
    }

    /// A profile for the OpenNebula fixture: the session login, and
    /// cloud-info-provider's publication of the site (its endpoint URL and
    /// CreationTime made the demo's) for check_glue.
    pub fn opennebula_profile(&self, probe_timeout: Option<&str>) -> Result<Profile, String> {
        let at = PathBuf::from(&self.site);
        let url = format!("http://{}/RPC2", self.addr);
        let mut doc: serde_json::Value =
            serde_json::from_str(ONE_GLUE).map_err(|e| format!("embedded GLUE: {e}"))?;
        let old = doc["CloudComputingEndpoint"][0]["URL"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let now = format!(
            "{}+00:00",
            probes::clock::nova_time(probes::clock::now_secs())
        );
        if let Some(classes) = doc.as_object_mut() {
            for o in classes
                .values_mut()
                .filter_map(|v| v.as_array_mut())
                .flatten()
            {
                o["CreationTime"] = serde_json::Value::String(now.clone());
            }
        }
        let glue = at.join("glue.json");
        let text = doc.to_string();
        let text = if old.is_empty() {
            text
        } else {
            text.replace(&old, &url)
        };
        std::fs::write(&glue, text).map_err(io(&glue))?;
        let text = format!(
            r#"# Generated by `fedprobe demo --cloud opennebula` for the OpenNebula fixture at {url}.
site = "DEMO-ONE"
cloud = "opennebula"
guideline = "{guideline}"
vos = ["ops"]
skip = ["check_object_storage", "check_network"]

[endpoints]
api = "{url}"

[credentials.opennebula_session]
file = "{session}"

[defaults]
{timeout}opennebula-login-token = 600
opennebula-memory = 128

[probe.check_vm_lifecycle]
image = "ttylinux"

[probe.check_glue]
glue-file = "{glue}"
"#,
            guideline = crate::guideline::DEFAULT_ID,
            session = at.join("one_auth").display(),
            timeout = timeout_line(probe_timeout),
            glue = glue.display(),
        );
        Profile::parse(&text, "demo profile DEMO-ONE")
    }

    /// The GCE fixture with the python of `ci/peers/gce.sh install`'s venv.
    pub async fn gce(dir: &Path, python: &Path) -> Result<Fixture, String> {
        if !python.exists() {
            return Err(format!(
                "--cloud gce runs ci/peers/gce_fixture.py, which is built on the discovery documents \
                 shipped in google-api-python-client: no python at {} (make its venv with \
                 `bash ci/peers/gce.sh install`, or give --gce-python)",
                python.display()
            ));
        }
        let py = python.display().to_string();
        let at = dir.join("gce");
        std::fs::create_dir_all(&at).map_err(io(&at))?;
        std::fs::write(at.join("gce_fixture.py"), GCE_FIXTURE).map_err(io(&at))?;
        let key = at.join("sa.json");
        let k = key.display().to_string();
        let made = Command::new(&py)
            .arg(at.join("gce_fixture.py"))
            .args(["--make-key", &k])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("{py}: {e}"))?;
        if !made.success() {
            return Err(format!("{py} gce_fixture.py --make-key failed ({made})"));
        }
        let what = "--cloud gce runs the GCE fixture";
        let mut child = start(
            &py,
            &at,
            "gce_fixture.py",
            &["--port", "0", "--key", &k],
            what,
        )
        .await?;
        let addr = listening(&mut child, &at, "the GCE fixture").await;
        let mut fx = Fixture {
            child,
            addr: String::new(),
            site: at.display().to_string(),
        };
        fx.addr = addr?;
        Ok(fx)
    }

    /// testdata/sites/gce.toml on the fixture (the key login), and
    /// check_token_auth through workload identity federation with a
    /// JWT-shaped OIDC token (the fixture's STS checks its shape and expiry).
    pub fn gce_profile(&self, probe_timeout: Option<&str>) -> Result<Profile, String> {
        let at = PathBuf::from(&self.site);
        let key = at.join("sa.json");
        let token = at.join("oidc-token");
        crate::profile::write_private(&token, &crate::demo::demo_jwt()).map_err(io(&token))?;
        let text = GCE_SITE
            .replace("127.0.0.1:15080", &self.addr)
            .replace(
                "/tmp/fedprobe-peers/gce/sa.json",
                &key.display().to_string(),
            )
            .replace("site = \"GCE-FIXTURE\"", "site = \"DEMO-GCE\"")
            .replace("skip = [\"check_token_auth\", ", "skip = [")
            .replace(
                "[defaults]\n",
                &format!("[defaults]\n{}", timeout_line(probe_timeout)),
            )
            + &format!(
                r#"
[probe.check_token_auth]
gce-key = false
gce-wif-audience = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/egi/providers/checkin"
access-token = "{}"
"#,
                token.display()
            );
        Profile::parse(&text, "demo profile DEMO-GCE")
    }
}
