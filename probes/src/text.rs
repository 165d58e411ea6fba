//! Making arbitrary text (site error pages, messages) safe for plugin output.

/// One line, no control characters or ANSI escapes, no `|` (it would start
/// perfdata), at most `max` characters (an ellipsis marks a cut).
pub fn one_line(s: &str, max: usize) -> String {
    let s = strip_escapes(s);
    let mut out = String::with_capacity(s.len().min(max + 4));
    let mut count = 0;
    // What was pushed last; starting at a space drops leading ones.
    let mut last = ' ';
    for c in s.chars() {
        let c = match c {
            '|' => '/',
            c if c.is_whitespace() || c.is_control() => ' ',
            c => c,
        };
        if c == ' ' && last == ' ' {
            continue;
        }
        // ARGO turns a literal `\n` into a newline: break the sequence up
        // (counted, so a cut text is broken up as well).
        let gap = (c == 'n' && last == '\\').then_some(' ');
        for c in gap.into_iter().chain([c]) {
            if count == max {
                out.push('…');
                return out;
            }
            out.push(c);
            count += 1;
        }
        last = c;
    }
    out.truncate(out.trim_end().len());
    out
}

/// Remove ANSI escapes: `ESC [ ... final` sequences and `ESC x` pairs;
/// borrowed when there is none (most texts).
pub fn strip_escapes(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\u{1b}') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out.into()
}

/// Multi-line text made safe line by line.
pub fn lines(s: &str, max_line: usize) -> Vec<String> {
    s.lines()
        .map(|l| one_line(l, max_line))
        .filter(|l| !l.is_empty())
        .collect()
}

/// A number without scientific notation, at most 6 decimals, no trailing zeros.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "U".into();
    }
    if v == v.trunc() && v.abs() < 1e18 {
        return format!("{}", v as i64);
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A short, safe description of a body: an HTML page's title, or the start of the text.
pub fn describe_body(body: &[u8], content_type: &str) -> String {
    if body.is_empty() {
        return "empty body".into();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let lower = text.to_ascii_lowercase();
    let is_html = content_type.contains("html")
        || lower.trim_start().starts_with("<!doctype html")
        || lower.trim_start().starts_with("<html");
    if is_html {
        let title = lower
            .find("<title>")
            .and_then(|s| lower[s + 7..].find("</title>").map(|e| (s + 7, s + 7 + e)))
            .map(|(s, e)| text[s..e].trim().to_string())
            .filter(|t| !t.is_empty());
        return match title {
            Some(t) => format!("HTML page \"{}\"", one_line(&t, 80)),
            None => format!("HTML page: {}", one_line(&strip_tags(&text), 120)),
        };
    }
    format!("\"{}\"", one_line(&text, 160))
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_pipes_and_newlines() {
        assert_eq!(
            one_line("\u{1b}[31mred\u{1b}[0m | x\n  y\r\n\u{7}", 100),
            "red / x y"
        );
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("a\\nb", 10), "a\\ nb");
        assert_eq!(one_line("ünïcödé", 4), "ünïc…");
        // Broken up in a cut text too, the gap counted in the length.
        assert_eq!(one_line("abc\\nd\\n", 5), "abc\\ …");
        assert_eq!(one_line("x\\n\\\\n ", 10), "x\\ n\\\\ n");
        assert_eq!(one_line("  lead  and trail  ", 100), "lead and trail");
    }

    #[test]
    fn html_pages_are_summarised_by_title() {
        let page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
        assert_eq!(
            describe_body(page, "text/html"),
            "HTML page \"502 Bad Gateway\""
        );
        let untitled = b"<html><body><h1>Service   Unavailable</h1></body></html>";
        assert_eq!(
            describe_body(untitled, ""),
            "HTML page: Service Unavailable"
        );
        assert_eq!(describe_body(b"", "application/json"), "empty body");
        let long = "x".repeat(1000);
        assert!(describe_body(long.as_bytes(), "text/plain").len() < 200);
    }
}
