//! JUnit XML: a testsuite per site and capability, a testcase per check.
//! Every string handed to junit-report is made XML-safe first: the crate
//! writes control characters and `]]>` through as they are.

use junit_report::{Duration, OffsetDateTime, ReportBuilder, TestCase, TestSuiteBuilder};
use probes::model::Status;

use super::text::{xml_line, xml_safe};
use super::{Report, SiteReport};
use crate::grade::Verdict;

/// When the site's run started (the crate's default would be "now", which
/// makes the same report render differently each time).
fn started(unix: f64) -> OffsetDateTime {
    let nanos = (unix * 1e9) as i128;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn dur(d: std::time::Duration) -> Duration {
    Duration::milliseconds(d.as_millis().min(i64::MAX as u128) as i64)
}

pub fn render(r: &Report) -> String {
    let mut report = ReportBuilder::new();
    for s in &r.sites {
        add_site(&mut report, s);
    }
    write(report)
}

/// What opens and closes the document around the sites' suites.
pub const OPEN: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?><testsuites>";
pub const CLOSE: &str = "</testsuites>\n";

/// One site's test suites as they appear between [`OPEN`] and [`CLOSE`],
/// numbered from 0, and how many there are: the spool renders sites in
/// parallel and numbers them in order ([`shift_ids`]).
pub fn site_suites(s: &SiteReport) -> (String, usize) {
    let mut report = ReportBuilder::new();
    add_site(&mut report, s);
    let whole = write(report);
    let Some(inner) = whole.strip_prefix(OPEN).and_then(|t| t.strip_suffix(CLOSE)) else {
        return (String::new(), 0);
    };
    (inner.to_string(), inner.matches(SUITE_ID).count())
}

const SUITE_ID: &str = "<testsuite id=\"";

/// `suites` (from [`site_suites`]) with every suite id moved up by `by`.
/// Names and messages are XML-escaped, so only the suites' own attribute
/// matches.
pub fn shift_ids(suites: &str, by: usize) -> String {
    if by == 0 {
        return suites.to_string();
    }
    let mut out = String::with_capacity(suites.len() + 16);
    let mut rest = suites;
    while let Some(i) = rest.find(SUITE_ID) {
        let start = i + SUITE_ID.len();
        let Some(len) = rest[start..].find('"') else {
            break;
        };
        out.push_str(&rest[..start]);
        match rest[start..start + len].parse::<usize>() {
            Ok(id) => out.push_str(&(id + by).to_string()),
            Err(_) => out.push_str(&rest[start..start + len]),
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

fn add_site(report: &mut ReportBuilder, s: &SiteReport) {
    {
        let site = xml_line(&s.run.site, 200);
        // The suite names the API (an OpenStack site reads as before).
        let label = xml_line(&s.run.site_label(), 250);
        for c in &s.grade.capabilities {
            let mut suite = TestSuiteBuilder::new(&xml_line(&format!("{label} / {}", c.id), 300));
            suite.set_timestamp(started(s.run.started_at));
            suite.set_system_out(&xml_safe(&format!(
                "{} capability ({}), requirement {}: {}\nresult: {:?}{}\nfix: {}",
                c.level.as_str(),
                c.title,
                c.requirement,
                c.id,
                c.status,
                c.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                c.fix
            )));
            for ch in &c.checks {
                let req = if ch.requirement.is_empty() {
                    c.requirement.clone()
                } else {
                    ch.requirement.clone()
                };
                let name = xml_line(&format!("{} {} [{req}]", ch.check, ch.name), 300);
                let msg = xml_line(&ch.message, 2000);
                let time = dur(ch.duration);
                let mut tc = if let Some(why) = &ch.flagged {
                    TestCase::skipped_with_cause(&name, "flagged", &xml_line(why, 1000))
                } else {
                    match (ch.outcome, ch.status) {
                        (Verdict::Pass, _) => TestCase::success(&name, time),
                        (Verdict::Warn, _) => {
                            let mut t = TestCase::success(&name, time);
                            t.set_system_out(&xml_safe(&format!("WARNING: {}", ch.message)));
                            t
                        }
                        (Verdict::Fail, st) => TestCase::failure(&name, time, st.as_str(), &msg),
                        (Verdict::Skip, Status::Unknown) => {
                            TestCase::error(&name, time, "UNKNOWN", &msg)
                        }
                        (Verdict::Skip, _) => TestCase::skipped_with_cause(&name, "skipped", &msg),
                        (Verdict::NotConfigured, _) => {
                            TestCase::skipped_with_cause(&name, "not configured", &msg)
                        }
                        (Verdict::NotApplicable, _) => {
                            TestCase::skipped_with_cause(&name, "not applicable", &msg)
                        }
                    }
                };
                tc.set_classname(&xml_line(&format!("{site}.{}.{}", c.id, ch.probe), 300));
                if ch.outcome != Verdict::Warn {
                    tc.set_system_out(&xml_safe(&format!(
                        "{} {} {}: {}",
                        ch.probe, ch.check, ch.status, ch.message
                    )));
                }
                suite.add_testcase(tc);
            }
            report.add_testsuite(suite.build());
        }
        if !s.run.externals.is_empty() {
            let mut suite = TestSuiteBuilder::new(&xml_line(&format!("{site} / external"), 300));
            suite.set_timestamp(started(s.run.started_at));
            for e in &s.run.externals {
                let name = xml_line(&e.name, 200);
                let msg = xml_line(&e.summary, 2000);
                let time = dur(e.duration);
                let mut tc = match e.status {
                    Status::Ok | Status::Warning => TestCase::success(&name, time),
                    Status::Critical => TestCase::failure(&name, time, "CRITICAL", &msg),
                    Status::Unknown => TestCase::error(&name, time, "UNKNOWN", &msg),
                };
                tc.set_classname(&xml_line(&format!("{site}.external"), 300));
                let long = e.long.join("\n");
                tc.set_system_out(&xml_safe(&format!("{}: {}\n{long}", e.status, e.summary)));
                suite.add_testcase(tc);
            }
            report.add_testsuite(suite.build());
        }
    }
}

fn write(report: ReportBuilder) -> String {
    let mut out = Vec::new();
    match report.build().write_xml(&mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned() + "\n",
        Err(e) => format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<testsuites><testsuite name=\"fedprobe\" tests=\"1\" failures=\"0\" errors=\"1\"><testcase name=\"render\"><error type=\"internal\" message=\"{}\"/></testcase></testsuite></testsuites>\n",
            super::text::html(&e.to_string())
        ),
    }
}
