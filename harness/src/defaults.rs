//! Defaults the harness fills in where a profile leaves a value out, and
//! the words that show them in reports. Each rule is read back from the
//! argv alone, so a report says which values were defaults without
//! carrying more state than the command line.

/// The federation's monitoring image, as its registry reference without a
/// tag: the newest active image of any tag matches (the VM probe's rule).
pub const MONITORING_IMAGE: &str = "registry.egi.eu/egi_vm_images/monitoring";

const IMAGE_FLAGS: [&str; 3] = ["--image", "--registry-image", "--appdb-image"];

fn has(argv: &[String], flag: &str) -> bool {
    let eq = format!("{flag}=");
    argv.iter().any(|a| a == flag || a.starts_with(&eq))
}

fn value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1))
        .map(String::as_str)
}

/// Fill the defaults a probe cannot run without; `argv[0]` is the probe.
pub fn apply(argv: &mut Vec<String>) {
    // The block-storage probe boots its own server like the VM probe, unless
    // it is given one to attach to.
    let boots = match argv.first().map(String::as_str) {
        Some("check_vm_lifecycle") => true,
        Some("check_block_storage") => !has(argv, "--server-id"),
        _ => false,
    };
    if boots && !IMAGE_FLAGS.iter().any(|f| has(argv, f)) {
        argv.push("--registry-image".into());
        argv.push(MONITORING_IMAGE.into());
    }
}

/// The defaults in effect for one probe's argv, in words.
pub fn shown(argv: &[String]) -> Vec<String> {
    let Some(probe) = argv.first().map(String::as_str) else {
        return vec![];
    };
    let entry = probes::checks::find(probe);
    let accepts =
        |f: &str| entry.is_some_and(|e| probes::checks::long_flags(e).iter().any(|x| x == f));
    let mut out = Vec::new();
    if accepts("project") {
        match value(argv, "--vo").or_else(|| value(argv, "--project")) {
            None => out.push(
                "project: no VO given; the default rule scopes to the first project whose name contains \"ops\", else the last listed (set vos = [\"VO\"])".into(),
            ),
            Some(vo) => out.push(format!(
                "project: VO {vo:?} by the documented rule: a project with that id or name, a --vo-project mapping, else a project whose name contains it as a word"
            )),
        }
    }
    if probe == "check_vm_lifecycle" {
        if value(argv, "--registry-image") == Some(MONITORING_IMAGE) {
            out.push(format!(
                "image: the federation's monitoring image {MONITORING_IMAGE} (any tag, newest active; set [probe.check_vm_lifecycle] image = \"ID\" to choose)"
            ));
        }
        if !has(argv, "--flavor") {
            out.push(
                "flavor: by rule, fewest vCPUs then least RAM with a disk of at least 8 GB (set [probe.check_vm_lifecycle] flavor = \"NAME\")".into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn the_vm_probe_gets_the_monitoring_image_only_when_none_is_named() {
        let mut a = v("check_vm_lifecycle --endpoint https://k/v3");
        apply(&mut a);
        assert_eq!(value(&a, "--registry-image"), Some(MONITORING_IMAGE));
        assert!(shown(&a).iter().any(|s| s.starts_with("image: ")));
        assert!(shown(&a).iter().any(|s| s.starts_with("flavor: by rule")));
        assert!(shown(&a).iter().any(|s| s.contains("no VO given")));
        let mut b = v("check_vm_lifecycle --image x --flavor m1 --vo ops");
        apply(&mut b);
        assert!(!b.contains(&"--registry-image".to_string()));
        let s = shown(&b);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].contains("VO \"ops\""), "{s:?}");
        let mut c = v("check_glue --glue-file f");
        apply(&mut c);
        assert_eq!(c.len(), 3);
    }
}
