//! The last-update date an accounting source answers, for the freshness
//! check: JSON in several shapes, a plain date or epoch seconds.

use crate::clock;

/// The last-update date an accounting source returns: JSON (a string, an
/// epoch number, or an object with a date field) or a plain date. Unix seconds.
pub fn parse_last_update(body: &[u8]) -> Result<i64, String> {
    let text = String::from_utf8_lossy(body);
    let t = text.trim();
    if t.is_empty() {
        return Err("empty answer".into());
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(t) {
        return json_date(&v, 0).ok_or_else(|| {
            format!(
                "no date in JSON answer {}",
                crate::text::one_line(&v.to_string(), 100)
            )
        });
    }
    date_text(t).ok_or_else(|| format!("not a date: {}", crate::text::describe_body(body, "")))
}

/// Field names that hold a last-update date, most specific first.
const DATE_KEYS: &[&str] = &[
    "last_update",
    "lastUpdate",
    "last_updated",
    "LastUpdate",
    "updated",
    "updated_at",
    "date",
    "last_record",
    "LatestEndTime",
    "latest",
];

fn json_date(v: &serde_json::Value, depth: usize) -> Option<i64> {
    use serde_json::Value;
    if depth > 4 {
        return None;
    }
    match v {
        Value::String(s) => date_text(s),
        Value::Number(n) => n.as_i64().filter(|x| *x > 0),
        Value::Object(o) => DATE_KEYS
            .iter()
            .find_map(|k| o.get(*k).and_then(|x| json_date(x, depth + 1)))
            .or_else(|| o.values().find_map(|x| json_date(x, depth + 1))),
        Value::Array(a) if a.len() == 1 => json_date(&a[0], depth + 1),
        _ => None,
    }
}

/// RFC 3339 / ISO date-times, `YYYY-MM-DD` (midnight UTC) or epoch seconds.
pub fn date_text(t: &str) -> Option<i64> {
    let t = t.trim().trim_matches('"');
    if let Some(x) = clock::parse_iso(t) {
        return Some(x);
    }
    if t.len() == 10 {
        return clock::parse_date(t);
    }
    if !t.is_empty() && t.len() <= 12 && t.bytes().all(|c| c.is_ascii_digit()) {
        return t.parse().ok().filter(|x: &i64| *x > 0);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_update_formats() {
        let day = 1709164800; // 2024-02-29
        assert_eq!(parse_last_update(b"2024-02-29"), Ok(day));
        assert_eq!(parse_last_update(b" 2024-02-29T00:00:00Z\n"), Ok(day));
        assert_eq!(parse_last_update(b"\"2024-02-29\""), Ok(day));
        assert_eq!(
            parse_last_update(b"{\"last_update\": \"2024-02-29\"}"),
            Ok(day)
        );
        assert_eq!(
            parse_last_update(b"{\"site\": {\"updated\": 1709164800}}"),
            Ok(day)
        );
        assert_eq!(parse_last_update(b"1709164800"), Ok(day));
        assert!(parse_last_update(b"<html><title>Oops</title></html>")
            .unwrap_err()
            .contains("Oops"));
        assert!(parse_last_update(b"{\"x\": true}").is_err());
        assert!(parse_last_update(b"").is_err());
    }
}
