//! Nagios / Monitoring Plugins output: `LABEL STATUS - summary | perfdata`,
//! long output after it, never more than 16 KB.

use crate::model::{Cleanup, ProbeResult};
use crate::text;

/// ARGO and most consumers cut plugin output at 16 KB.
pub const MAX_OUTPUT: usize = 16 * 1024;
/// Summary length before the `|`; the guidelines ask for a short first line.
pub const MAX_SUMMARY: usize = 200;

/// Render a result for a monitoring system. Verbosity: 0 one line,
/// 1 plus one line per step, 2 plus resources and configuration, 3 plus trace.
pub fn render(r: &ProbeResult, verbosity: u8) -> String {
    let perf: Vec<String> = r.perfdata.iter().map(|p| p.to_string()).collect();
    let first = first_line(&r.label, r.status.as_str(), &r.summary, &perf.join(" "));
    let mut long = Vec::new();
    if verbosity >= 1 {
        for s in &r.steps {
            long.push(format!(
                "[{}] {} {}: {} ({:.2}s)",
                s.status,
                s.check,
                s.name,
                s.message,
                s.duration.as_secs_f64()
            ));
        }
        for res in &r.resources {
            let what = match &res.cleanup {
                Cleanup::Deleted => "deleted".to_string(),
                Cleanup::Failed(why) => format!("NOT deleted: {why}"),
                Cleanup::Leaked => "NOT deleted (left behind)".to_string(),
            };
            long.push(format!("created {} {}: {}", res.kind, res.id, what));
        }
    }
    if verbosity >= 2 {
        long.extend(r.details.iter().cloned());
    }
    let long: Vec<String> = long
        .iter()
        .map(|l| text::one_line(l, 1000))
        .filter(|l| !l.is_empty())
        .collect();
    cap(first, &long)
}

/// The first line: `LABEL STATUS - summary | perfdata`.
pub fn first_line(label: &str, status: &str, summary: &str, perf: &str) -> String {
    let summary = text::one_line(summary, MAX_SUMMARY);
    let label = text::one_line(label, 40).replace(' ', "_");
    let mut line = if label.is_empty() {
        format!("{status} - {summary}")
    } else {
        format!("{label} {status} - {summary}")
    };
    if !perf.is_empty() {
        line.push_str(" | ");
        line.push_str(perf);
    }
    line
}

/// Join the first line and long output, dropping long-output lines (never
/// the first line or its perfdata) so the whole stays under [`MAX_OUTPUT`].
pub fn cap(first: String, long: &[String]) -> String {
    cap_of(first, long, long.len())
}

/// [`cap`] of a long output of `total` lines of which `long` holds the
/// first: a prefix of [`MAX_OUTPUT`] bytes or more cuts where the whole
/// would, so a long output of any length need not be held to be capped.
pub fn cap_of(first: String, long: &[String], total: usize) -> String {
    let mut out = first;
    out.push('\n');
    let budget = MAX_OUTPUT.saturating_sub(1);
    for (i, line) in long.iter().enumerate() {
        let left = total.saturating_sub(i);
        let marker = format!("... {left} more lines cut to stay under 16 KB\n");
        let fits_with_marker = out.len() + line.len() + 1 + marker.len() <= budget;
        let last_fits = i + 1 == total && out.len() + line.len() < budget;
        if fits_with_marker || last_fits {
            out.push_str(line);
            out.push('\n');
        } else {
            if out.len() + marker.len() <= budget {
                out.push_str(&marker);
            }
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Outcome, Perf, Resource, ResourceKind, Status, Step, Uom};
    use std::time::Duration;

    fn result(steps: usize, msg: &str) -> ProbeResult {
        ProbeResult {
            probe: "check_test".into(),
            label: "TEST".into(),
            status: Status::Critical,
            outcome: Outcome::Finished,
            summary: "VM-03 create server: HTTP 502 | <html>".into(),
            steps: (0..steps)
                .map(|i| Step {
                    check: format!("T-{i:02}"),
                    requirement: "REQ".into(),
                    name: "step".into(),
                    status: Status::Ok,
                    message: msg.into(),
                    duration: Duration::from_millis(1234),
                    http: None,
                    transport: None,
                    cut_by_deadline: false,
                })
                .collect(),
            perfdata: vec![
                Perf::new("create time", 1.5, Uom::Seconds).min(0.0),
                Perf::count("n", 3),
            ],
            resources: vec![Resource {
                kind: ResourceKind::Server,
                id: "abc".into(),
                name: None,
                cleanup: Cleanup::Deleted,
                transport: None,
            }],
            started_at: 0.0,
            duration: Duration::from_secs(2),
            http_requests: 0,
            details: vec!["endpoint https://k/v3".into()],
        }
    }

    #[test]
    fn first_line_shape() {
        let out = render(&result(1, "fine"), 0);
        assert_eq!(out.lines().count(), 1);
        assert_eq!(
            out.lines().next().unwrap(),
            "TEST CRITICAL - VM-03 create server: HTTP 502 / <html> | 'create time'=1.5s;;;0 n=3;;;0"
        );
    }

    #[test]
    fn verbosity_levels_add_long_output() {
        let r = result(2, "ok \u{1b}[1mbold\u{1b}[0m");
        let v1 = render(&r, 1);
        assert!(v1.contains("[OK] T-00 step: ok bold (1.23s)"));
        assert!(v1.contains("created server abc: deleted"));
        assert!(!v1.contains("endpoint https://k/v3"));
        assert!(render(&r, 2).contains("endpoint https://k/v3"));
    }

    #[test]
    fn output_is_capped_at_16k_keeping_first_line_and_perfdata() {
        let r = result(2000, &"x".repeat(200));
        let out = render(&r, 3);
        assert!(out.len() <= MAX_OUTPUT, "{}", out.len());
        let first = out.lines().next().unwrap();
        assert!(first.ends_with("| 'create time'=1.5s;;;0 n=3;;;0"));
        assert!(out.contains("more lines cut to stay under 16 KB"));
        // the long output kept is a prefix of the steps, whole lines only
        assert!(out.lines().nth(1).unwrap().starts_with("[OK] T-00 step:"));
    }

    /// A prefix of at least 16 KB cuts where the whole long output does,
    /// for lines of every length around the budget, and so does the whole.
    #[test]
    fn a_prefix_of_the_budget_caps_as_the_whole_does() {
        for width in [1, 37, 999, 5000, MAX_OUTPUT] {
            for n in [0, 1, 2, 400, 2000] {
                let long: Vec<String> = (0..n).map(|i| format!("{i:>width$}")).collect();
                let whole = cap("first".into(), &long);
                let mut held = 0;
                let prefix: Vec<String> = long
                    .iter()
                    .take_while(|l| {
                        let take = held < MAX_OUTPUT;
                        held += l.len() + 1;
                        take
                    })
                    .cloned()
                    .collect();
                assert_eq!(cap_of("first".into(), &prefix, n), whole, "{width} x {n}");
                assert!(whole.len() <= MAX_OUTPUT);
            }
        }
    }

    #[test]
    fn small_output_is_not_marked_cut() {
        let out = render(&result(3, "fine"), 1);
        assert!(!out.contains("cut"));
        assert!(out.ends_with('\n'));
    }

    #[test]
    fn huge_summary_is_shortened_not_the_perfdata() {
        let mut r = result(0, "");
        r.summary = "y".repeat(50_000);
        let out = render(&r, 0);
        assert!(out.len() < 1000);
        assert!(out.trim_end().ends_with("n=3;;;0"));
    }

    /// The exact text at each verbosity, and the JSON form, as snapshots
    /// (probes/src/render/snapshots): a change of format shows in review.
    #[test]
    fn exact_output_at_each_verbosity() {
        let mut r = result(2, "ok \u{1b}[1mbold\u{1b}[0m | pipe");
        r.steps[1].status = Status::Critical;
        r.steps[1].http = Some(crate::model::HttpFacts {
            status: Some(502),
            method: "POST".into(),
            url: "https://nova.example/v2.1/servers".into(),
        });
        for v in 0..=3 {
            insta::assert_snapshot!(format!("nagios_v{v}"), render(&r, v));
        }
        let json = crate::render::json::render(&r).replace(env!("CARGO_PKG_VERSION"), "[version]");
        insta::assert_snapshot!("json", json);
    }
}
