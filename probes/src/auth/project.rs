//! Which project a login scopes to: the VO -> project rule, written down
//! once (docs/provider.md) and named in every message.
//!
//! With `--project`/`--vo` (or `OS_PROJECT_*`, clouds.yaml) = W, in order:
//! 1. `exact`: a project whose id or name is W;
//! 2. `vo-map`: the project a `--vo-project W=P` mapping names (as GLUE
//!    publishes a VO's share with its project id), by id or name;
//! 3. `contains-vo`: projects whose name contains W as a whole word (bounded
//!    by the name's ends or by a character that is not a letter or digit:
//!    `ops` matches `ops.vo.example`, `EGI_ops`, `vo:ops`, not `devops`);
//!    among several, names starting with W first, then the shortest.
//!
//! Without one, production's rule: the first name containing "ops", else
//! the last project listed.

use crate::clients::keystone::Project;
use crate::Fail;

/// The chosen project and the rule that chose it, for messages.
#[derive(Clone, Debug)]
pub struct Pick {
    pub project: Project,
    pub rule: String,
}

/// Parse `VO=PROJECT` mappings; a malformed one is the monitor's trouble.
pub fn parse_map(items: &[String]) -> Result<Vec<(String, String)>, Fail> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(v, p)| (v.trim().to_string(), p.trim().to_string()))
                .filter(|(v, p)| !v.is_empty() && !p.is_empty())
                .ok_or_else(|| Fail::unknown(format!("--vo-project {s:?}: expected VO=PROJECT")))
        })
        .collect()
}

/// `vo` occurs in `name` as a whole word (ASCII case ignored).
pub fn contains_word(name: &str, vo: &str) -> bool {
    if vo.is_empty() || vo.len() > name.len() {
        return false;
    }
    let (n, v) = (name.to_ascii_lowercase(), vo.to_ascii_lowercase());
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
    n.match_indices(&v).any(|(i, _)| {
        boundary(n[..i].chars().next_back()) && boundary(n[i + v.len()..].chars().next())
    })
}

/// Whether a token already scoped to (`id`, `name`) satisfies `wanted`.
pub fn accepts(wanted: &str, id: &str, name: &str, map: &[(String, String)]) -> Option<String> {
    if wanted == id || wanted == name {
        return Some(format!(
            "rule exact: {wanted:?} is the project's id or name"
        ));
    }
    if let Some((_, p)) = map
        .iter()
        .find(|(v, p)| v == wanted && (p == id || p == name))
    {
        return Some(format!("rule vo-map: --vo-project {wanted}={p}"));
    }
    contains_word(name, wanted)
        .then(|| format!("rule contains-vo: the name contains {wanted:?} as a word"))
}

/// Choose among the projects Keystone lists for this user.
pub fn pick(
    projects: &[Project],
    wanted: Option<&str>,
    map: &[(String, String)],
) -> Result<Pick, Fail> {
    let enabled: Vec<&Project> = projects
        .iter()
        .filter(|p| p.enabled != Some(false))
        .collect();
    let names = || {
        enabled
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(w) = wanted else {
        let ops = enabled.iter().find(|p| p.name.contains("ops"));
        let rule = if ops.is_some() {
            "rule default: no --project/--vo given, the first name containing \"ops\""
        } else {
            "rule default: no --project/--vo given and no name contains \"ops\": the last listed"
        };
        return ops
            .or(enabled.last())
            .map(|p| Pick {
                project: (*p).clone(),
                rule: rule.into(),
            })
            .ok_or_else(|| Fail::critical("the federated user has no project"));
    };
    if let Some(p) = enabled.iter().find(|p| p.id == w || p.name == w) {
        return Ok(Pick {
            project: (*p).clone(),
            rule: format!("rule exact: {w:?} is its id or name"),
        });
    }
    let mapped: Vec<&String> = map.iter().filter(|(v, _)| v == w).map(|(_, p)| p).collect();
    for m in &mapped {
        if let Some(p) = enabled.iter().find(|p| &&p.id == m || &&p.name == m) {
            return Ok(Pick {
                project: (*p).clone(),
                rule: format!("rule vo-map: --vo-project {w}={m}"),
            });
        }
    }
    let mut words: Vec<&&Project> = enabled
        .iter()
        .filter(|p| contains_word(&p.name, w))
        .collect();
    words.sort_by_key(|p| {
        let starts = p
            .name
            .to_ascii_lowercase()
            .starts_with(&w.to_ascii_lowercase());
        (!starts, p.name.len(), p.name.clone())
    });
    if let Some(first) = words.first() {
        let others: Vec<&str> = words[1..].iter().map(|p| p.name.as_str()).collect();
        let also = if others.is_empty() {
            String::new()
        } else {
            format!("; also matching: {}", others.join(", "))
        };
        return Ok(Pick {
            project: (**first).clone(),
            rule: format!("rule contains-vo: the name contains {w:?} as a word{also}"),
        });
    }
    let map_note = if mapped.is_empty() {
        "no --vo-project mapping for it".to_string()
    } else {
        let m: Vec<&str> = mapped.iter().map(|s| s.as_str()).collect();
        format!("--vo-project maps it to {}, not listed", m.join(", "))
    };
    Err(Fail::critical(format!(
        "project {w:?} not available to this user (has: {}): no project has that id or name, \
         none contains {w:?} as a word, {map_note}; set --project to one of them or map the VO \
         with --vo-project {w}=PROJECT",
        names()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, name: &str, enabled: Option<bool>) -> Project {
        Project {
            id: id.into(),
            name: name.into(),
            enabled,
        }
    }

    /// The assertions of the former `keystone::pick_project` test, kept.
    #[test]
    fn project_choice_follows_production() {
        let pick_project = |ps: &[Project], w: Option<&str>| pick(ps, w, &[]).map(|x| x.project);
        let ps = vec![
            p("1", "vo.a", None),
            p("2", "ops.vo", Some(true)),
            p("3", "vo.z", None),
        ];
        assert_eq!(pick_project(&ps, None).unwrap().id, "2");
        assert_eq!(pick_project(&ps[..1], None).unwrap().id, "1");
        let no_ops = vec![p("1", "a", None), p("3", "z", None)];
        assert_eq!(pick_project(&no_ops, None).unwrap().id, "3");
        assert_eq!(pick_project(&ps, Some("vo.a")).unwrap().id, "1");
        assert_eq!(pick_project(&ps, Some("3")).unwrap().id, "3");
        let e = pick_project(&ps, Some("nope")).unwrap_err();
        assert!(e.message.contains("nope") && e.message.contains("ops.vo"));
        let disabled = vec![p("9", "ops", Some(false))];
        assert!(pick_project(&disabled, None).is_err());
    }

    #[test]
    fn a_vo_matches_the_names_sites_really_use() {
        let ps = vec![
            p("a", "ops.vo.example", None),
            p("b", "vo.access.egi.eu", None),
            p("c", "devops", None),
        ];
        let got = pick(&ps, Some("ops"), &[]).unwrap();
        assert_eq!(got.project.id, "a");
        assert!(got.rule.contains("contains-vo"), "{}", got.rule);
        assert_eq!(
            pick(&ps, Some("vo.access.egi.eu"), &[]).unwrap().project.id,
            "b"
        );
        for (name, yes) in [
            ("EGI_ops", true),
            ("VO:ops", true),
            ("OPS", true),
            ("devops", false),
            ("opsx", false),
            ("fedcloud.egi.eu", false),
        ] {
            assert_eq!(contains_word(name, "ops"), yes, "{name}");
        }
        // Several: the one starting with the VO, then the shortest.
        let two = vec![p("x", "egi-ops-test", None), p("y", "ops-prod", None)];
        let got = pick(&two, Some("ops"), &[]).unwrap();
        assert_eq!(got.project.id, "y");
        assert!(
            got.rule.contains("also matching: egi-ops-test"),
            "{}",
            got.rule
        );
    }

    #[test]
    fn a_glue_mapping_wins_over_the_name_rule_and_the_failure_says_why() {
        let ps = vec![
            p("id-1", "ops.vo.example", None),
            p("id-2", "monitoring", None),
        ];
        let map = parse_map(&["ops=id-2".into()]).unwrap();
        let got = pick(&ps, Some("ops"), &map).unwrap();
        assert_eq!(got.project.id, "id-2");
        assert!(got.rule.contains("vo-map"), "{}", got.rule);
        let e = pick(&ps, Some("biomed"), &map).unwrap_err();
        assert!(
            e.message.contains("none contains \"biomed\""),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("--vo-project biomed=PROJECT"),
            "{}",
            e.message
        );
        assert!(parse_map(&["novalue".into()]).is_err());
        assert!(accepts("ops", "id-1", "ops.vo.example", &[]).is_some());
        assert!(accepts("ops", "id-2", "monitoring", &map).is_some());
        assert!(accepts("biomed", "id-2", "monitoring", &map).is_none());
    }
}
