//! APEL accounting messages as cASO writes them to its dirq spool: cloud
//! usage records v0.4 (`Key: Value` lines, `%%` between records) and the JSON
//! public-IP and accelerator kinds. Pure functions: text in, findings out.

use std::collections::{BTreeMap, BTreeSet};

pub const CLOUD_HEADER: &str = "APEL-cloud-message:";
pub const CLOUD_VERSION: &str = "v0.4";
pub const IP_TYPE: &str = "APEL Public IP message";
pub const ACCELERATOR_TYPE: &str = "APEL-accelerator-message";

/// Every field of a v0.4 cloud record, in the order the format lists them.
pub const CLOUD_FIELDS: &[&str] = &[
    "RecordCreateTime",
    "VMUUID",
    "SiteName",
    "CloudComputeService",
    "MachineName",
    "LocalUserId",
    "LocalGroupId",
    "GlobalUserName",
    "FQAN",
    "Status",
    "StartTime",
    "EndTime",
    "SuspendDuration",
    "WallDuration",
    "CpuDuration",
    "CpuCount",
    "NetworkType",
    "NetworkInbound",
    "NetworkOutbound",
    "PublicIPCount",
    "Memory",
    "Disk",
    "BenchmarkType",
    "Benchmark",
    "StorageRecordId",
    "ImageId",
    "CloudType",
];
pub const CLOUD_MANDATORY: &[&str] = &["VMUUID", "SiteName"];
pub const CLOUD_INTEGERS: &[&str] = &[
    "SuspendDuration",
    "WallDuration",
    "CpuDuration",
    "NetworkInbound",
    "NetworkOutbound",
    "PublicIPCount",
    "Memory",
    "Disk",
];
/// Epoch seconds.
pub const CLOUD_TIMES: &[&str] = &["RecordCreateTime", "StartTime", "EndTime"];
pub const CLOUD_FLOATS: &[&str] = &["CpuCount", "Benchmark"];
pub const STATUSES: &[&str] = &[
    "started",
    "completed",
    "error",
    "paused",
    "suspended",
    "stopped",
    "unknown",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Cloud,
    PublicIp,
    Accelerator,
    Storage,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cloud => "cloud",
            Kind::PublicIp => "public-ip",
            Kind::Accelerator => "accelerator",
            Kind::Storage => "storage",
        }
    }
}

/// One thing wrong, with where it is. `record` is 1-based (0: the message
/// itself); `line` is 1-based (0: not tied to a line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub record: usize,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if self.record > 0 {
            write!(f, " record {}", self.record)?;
        }
        if self.line > 0 {
            write!(f, " line {}", self.line)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What one message holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub kind: Option<Kind>,
    pub records: usize,
    pub bad_records: usize,
    pub problems: Vec<Problem>,
    pub sites: BTreeSet<String>,
    /// Newest time (epoch seconds) any record mentions.
    pub newest: Option<i64>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, file: &str, record: usize, line: usize, message: String) {
        self.problems.push(Problem {
            file: file.into(),
            record,
            line,
            message,
        });
    }

    fn saw_time(&mut self, t: i64) {
        if t > 0 {
            self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
        }
    }
}

/// Check one spooled message of any kind; `file` names it in findings.
pub fn check_message(file: &str, bytes: &[u8]) -> Report {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let mut r = Report::default();
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            r.problem(file, 0, line, "not UTF-8 text".into());
            return r;
        }
    };
    let start = text.trim_start();
    if start.starts_with('{') {
        check_json_message(file, text)
    } else if start.starts_with('<') {
        check_storage_message(file, text)
    } else {
        check_cloud_message(file, text)
    }
}

/// A cloud usage message v0.4.
pub fn check_cloud_message(file: &str, text: &str) -> Report {
    let mut r = Report {
        kind: Some(Kind::Cloud),
        ..Report::default()
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    // The header is the first non-blank line.
    let header = lines.by_ref().find(|(_, l)| !l.trim().is_empty());
    match header {
        None => {
            r.problem(file, 0, 0, "empty message".into());
            return r;
        }
        Some((n, l)) => match l.trim().strip_prefix(CLOUD_HEADER) {
            Some(v) if v.trim() == CLOUD_VERSION => {}
            Some(v) => {
                r.problem(
                    file,
                    0,
                    n,
                    format!(
                        "unsupported version {:?} (expected {CLOUD_VERSION})",
                        v.trim()
                    ),
                );
                return r;
            }
            None => {
                r.problem(
                    file,
                    0,
                    n,
                    format!(
                        "no header: expected \"{CLOUD_HEADER} {CLOUD_VERSION}\", found {:?}",
                        crate::text::one_line(l, 60)
                    ),
                );
                return r;
            }
        },
    }
    let mut record: Vec<(usize, &str)> = Vec::new();
    let mut index = 0;
    for (n, line) in lines {
        if line.trim() == "%%" {
            index += 1;
            check_cloud_record(file, index, n, &record, &mut r);
            record.clear();
        } else if !line.trim().is_empty() {
            record.push((n, line));
        }
    }
    if !record.is_empty() {
        index += 1;
        let end = record.last().map_or(0, |(n, _)| *n);
        check_cloud_record(file, index, end, &record, &mut r);
    }
    if r.records == 0 {
        r.problem(file, 0, 0, "message holds no record".into());
    }
    r
}

fn check_cloud_record(
    file: &str,
    index: usize,
    end_line: usize,
    lines: &[(usize, &str)],
    r: &mut Report,
) {
    if lines.is_empty() {
        // A trailing `%%` or two separators in a row: an empty record.
        r.problem(file, index, end_line, "empty record".into());
        r.records += 1;
        r.bad_records += 1;
        return;
    }
    r.records += 1;
    let before = r.problems.len();
    let first = lines[0].0;
    let mut fields: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (n, line) in lines {
        let Some((key, value)) = line.split_once(':') else {
            r.problem(
                file,
                index,
                *n,
                format!(
                    "not a \"Key: Value\" line: {:?}",
                    crate::text::one_line(line, 60)
                ),
            );
            continue;
        };
        let key = key.trim();
        if !CLOUD_FIELDS.contains(&key) {
            r.problem(
                file,
                index,
                *n,
                format!("unknown field {:?}", crate::text::one_line(key, 40)),
            );
            continue;
        }
        if fields.insert(key, (*n, value.trim())).is_some() {
            r.problem(file, index, *n, format!("{key} given twice"));
        }
    }
    for m in CLOUD_MANDATORY {
        match fields.get(m) {
            None => r.problem(file, index, first, format!("mandatory field {m} missing")),
            Some((n, v)) if is_null(v) => {
                r.problem(file, index, *n, format!("mandatory field {m} is empty"))
            }
            Some((_, v)) if *m == "SiteName" => {
                r.sites.insert((*v).to_string());
            }
            _ => {}
        }
    }
    let mut times: BTreeMap<&str, i64> = BTreeMap::new();
    for (key, (n, v)) in &fields {
        if is_null(v) {
            continue;
        }
        if CLOUD_INTEGERS.contains(key) {
            match v.parse::<i64>() {
                Ok(x) if x < 0 => r.problem(file, index, *n, format!("{key} is negative: {x}")),
                Ok(_) => {}
                Err(_) => r.problem(file, index, *n, type_error(key, v, "an integer")),
            }
        } else if CLOUD_TIMES.contains(key) {
            match v.parse::<i64>() {
                Ok(x) if x < 0 => r.problem(file, index, *n, format!("{key} is negative: {x}")),
                Ok(x) => {
                    times.insert(key, x);
                }
                Err(_) => r.problem(file, index, *n, type_error(key, v, "epoch seconds")),
            }
        } else if CLOUD_FLOATS.contains(key) {
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => {}
                _ => r.problem(file, index, *n, type_error(key, v, "a number")),
            }
        } else if *key == "Status" && !STATUSES.contains(v) {
            r.problem(
                file,
                index,
                *n,
                format!(
                    "Status {:?} is not one of {}",
                    crate::text::one_line(v, 40),
                    STATUSES.join(", ")
                ),
            );
        }
    }
    if let (Some(start), Some(end)) = (times.get("StartTime"), times.get("EndTime")) {
        if *end != 0 && end < start {
            let n = fields.get("EndTime").map_or(first, |(n, _)| *n);
            r.problem(
                file,
                index,
                n,
                format!("EndTime {end} is before StartTime {start}"),
            );
        }
    }
    for t in times.values() {
        r.saw_time(*t);
    }
    if r.problems.len() > before {
        r.bad_records += 1;
    }
}

fn is_null(v: &str) -> bool {
    v.is_empty() || v == "None" || v == "NULL"
}

fn type_error(key: &str, v: &str, want: &str) -> String {
    format!(
        "{key} must be {want}, found {:?}",
        crate::text::one_line(v, 40)
    )
}

/// Which fields a JSON record kind needs, and their types.
struct JsonRules {
    mandatory: &'static [&'static str],
    integers: &'static [&'static str],
    floats: &'static [&'static str],
    times: &'static [&'static str],
}

const IP_RULES: JsonRules = JsonRules {
    mandatory: &[
        "MeasurementTime",
        "SiteName",
        "CloudComputeService",
        "LocalGroup",
        "FQAN",
        "IPVersion",
        "IPCount",
    ],
    integers: &["IPVersion", "IPCount"],
    floats: &[],
    times: &["MeasurementTime"],
};

const ACCELERATOR_RULES: JsonRules = JsonRules {
    mandatory: &[
        "MeasurementMonth",
        "MeasurementYear",
        "AssociatedRecord",
        "SiteName",
        "CloudComputeService",
        "FQAN",
        "Count",
        "AvailableDuration",
        "Type",
        "Model",
    ],
    integers: &[
        "MeasurementMonth",
        "MeasurementYear",
        "Count",
        "Cores",
        "ActiveDuration",
        "AvailableDuration",
    ],
    floats: &["Benchmark"],
    times: &[],
};

/// A JSON message: public IP (v0.2) or accelerator (v0.1) records.
pub fn check_json_message(file: &str, text: &str) -> Report {
    let mut r = Report::default();
    let doc: serde_json::Value = match serde_json::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            r.problem(file, 0, e.line(), format!("not JSON: {e}"));
            return r;
        }
    };
    let kind = doc.get("Type").and_then(|t| t.as_str());
    let version = doc.get("Version").and_then(|t| t.as_str());
    let (k, rules, want) = match kind {
        Some(IP_TYPE) => (Kind::PublicIp, &IP_RULES, "0.2"),
        Some(ACCELERATOR_TYPE) => (Kind::Accelerator, &ACCELERATOR_RULES, "0.1"),
        other => {
            r.problem(
                file,
                0,
                1,
                format!(
                    "unknown message Type {:?} (expected {IP_TYPE:?} or {ACCELERATOR_TYPE:?})",
                    other.map(|s| crate::text::one_line(s, 40))
                ),
            );
            return r;
        }
    };
    r.kind = Some(k);
    if version != Some(want) {
        r.problem(
            file,
            0,
            1,
            format!(
                "{} message Version {version:?}, expected {want:?}",
                k.as_str()
            ),
        );
    }
    let Some(records) = doc.get("UsageRecords").and_then(|u| u.as_array()) else {
        r.problem(file, 0, 1, "UsageRecords is missing or not a list".into());
        return r;
    };
    if records.is_empty() {
        r.problem(file, 0, 0, "message holds no record".into());
    }
    for (i, rec) in records.iter().enumerate() {
        r.records += 1;
        let before = r.problems.len();
        check_json_record(file, i + 1, rec, rules, &mut r);
        if r.problems.len() > before {
            r.bad_records += 1;
        }
    }
    r
}

fn check_json_record(
    file: &str,
    index: usize,
    rec: &serde_json::Value,
    rules: &JsonRules,
    r: &mut Report,
) {
    let Some(obj) = rec.as_object() else {
        r.problem(file, index, 0, "record is not a JSON object".into());
        return;
    };
    for m in rules.mandatory {
        match obj.get(*m) {
            None | Some(serde_json::Value::Null) => {
                r.problem(file, index, 0, format!("mandatory field {m} missing"))
            }
            Some(serde_json::Value::String(s)) if s.is_empty() => {
                r.problem(file, index, 0, format!("mandatory field {m} is empty"))
            }
            _ => {}
        }
    }
    if let Some(s) = obj.get("SiteName").and_then(|s| s.as_str()) {
        if !s.is_empty() {
            r.sites.insert(s.to_string());
        }
    }
    for (key, v) in obj {
        if v.is_null() {
            continue;
        }
        let k = key.as_str();
        if rules.integers.contains(&k) || rules.times.contains(&k) {
            match v.as_i64() {
                Some(x) if x < 0 => r.problem(file, index, 0, format!("{k} is negative: {x}")),
                Some(x) => {
                    if rules.times.contains(&k) {
                        r.saw_time(x);
                    }
                }
                None => r.problem(file, index, 0, type_error(k, &v.to_string(), "an integer")),
            }
        } else if rules.floats.contains(&k) && !v.is_number() {
            r.problem(file, index, 0, type_error(k, &v.to_string(), "a number"));
        }
    }
    if let Some(v) = obj.get("IPVersion").and_then(|v| v.as_i64()) {
        if v != 4 && v != 6 {
            r.problem(
                file,
                index,
                0,
                format!("IPVersion must be 4 or 6, found {v}"),
            );
        }
    }
    if let Some(m) = obj.get("MeasurementMonth").and_then(|v| v.as_i64()) {
        if !(1..=12).contains(&m) {
            r.problem(file, index, 0, format!("MeasurementMonth {m} is not 1..12"));
        }
    }
}

/// StAR storage records (XML): recognised and counted, not validated further.
pub fn check_storage_message(file: &str, text: &str) -> Report {
    let mut r = Report {
        kind: Some(Kind::Storage),
        ..Report::default()
    };
    if !text.contains("StorageUsageRecord") {
        let what = crate::text::describe_body(text.as_bytes(), "");
        r.problem(
            file,
            0,
            1,
            format!("not an APEL message (no header, no StorageUsageRecords): {what}"),
        );
        return r;
    }
    r.records = text.matches("<sr:StorageUsageRecord>").count()
        + text.matches("<sr:StorageUsageRecord ").count();
    r
}

/// The sum of several messages' reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub messages: usize,
    pub by_kind: BTreeMap<Kind, usize>,
    pub records: usize,
    pub bad_records: usize,
    pub problems: Vec<Problem>,
    pub sites: BTreeSet<String>,
    pub newest: Option<i64>,
}

impl Summary {
    pub fn add(&mut self, r: Report) {
        self.messages += 1;
        if let Some(k) = r.kind {
            *self.by_kind.entry(k).or_default() += r.records;
        }
        self.records += r.records;
        self.bad_records += r.bad_records;
        self.problems.extend(r.problems);
        self.sites.extend(r.sites);
        if let Some(t) = r.newest {
            self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "APEL-cloud-message: v0.4\nVMUUID: 1\nSiteName: S\nStatus: started\nStartTime: 100\nEndTime: 0\nCpuCount: 2\nMemory: 512\n%%\nVMUUID: 2\nSiteName: S\nStatus: completed\nStartTime: 100\nEndTime: 200\n";

    #[test]
    fn good_cloud_message() {
        let r = check_message("m", GOOD.as_bytes());
        assert_eq!(r.problems, vec![]);
        assert_eq!(r.records, 2);
        assert_eq!(r.newest, Some(200));
        assert!(r.sites.contains("S"));
    }

    #[test]
    fn findings_carry_position() {
        let bad = GOOD.replace("Memory: 512", "Memory: lots");
        let r = check_message("m", bad.as_bytes());
        assert_eq!(r.problems.len(), 1);
        let p = &r.problems[0];
        assert_eq!((p.record, p.line), (1, 8));
        assert!(p.message.contains("Memory must be an integer"), "{p}");
        assert_eq!(
            p.to_string(),
            "m record 1 line 8: Memory must be an integer, found \"lots\""
        );
    }

    #[test]
    fn header_required() {
        let r = check_message("m", b"VMUUID: 1\nSiteName: S\n");
        assert_eq!(r.problems.len(), 1);
        assert!(r.problems[0].message.starts_with("no header"));
        let r = check_message("m", b"APEL-cloud-message: v0.2\nVMUUID: 1\n");
        assert!(r.problems[0].message.contains("unsupported version"));
    }

    #[test]
    fn end_before_start() {
        let bad = GOOD.replace("EndTime: 200", "EndTime: 50");
        let r = check_message("m", bad.as_bytes());
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].record, 2);
        assert!(r.problems[0].message.contains("before StartTime"));
    }

    #[test]
    fn json_kinds() {
        let ip = r#"{"Type":"APEL Public IP message","Version":"0.2","UsageRecords":[{"MeasurementTime":5,"SiteName":"S","CloudComputeService":"c","LocalGroup":"g","FQAN":"/vo","IPVersion":4,"IPCount":1}]}"#;
        let r = check_message("ip", ip.as_bytes());
        assert_eq!(r.problems, vec![]);
        assert_eq!(r.kind, Some(Kind::PublicIp));
        let bad = ip.replace("\"IPCount\":1", "\"IPCount\":\"one\"");
        let r = check_message("ip", bad.as_bytes());
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].message.contains("IPCount must be an integer"));
    }
}
